"""`make bench`: the Swift engine against the PyTorch reference, same weights, same shapes, one run.

    python training/tools/bench_torch.py --preset gpt2-medium --batch 8 \
        --clipgen .build/release/clipgen --out runs/bench

1. Writes a clipgen model directory of seeded random weights for the preset (once; reused while
   the shapes and seed match): the GPT prior (`gpt.py`), the VQGAN decoder (`vqgan.py`, taming
   names) and CLIP (`clip.py`, OpenAI names), as safetensors, with a byte-level tokenizer.
2. Runs `clipgen bench --model DIR` on it (the engine alone; its JSON goes to clipgen.json).
3. Times the PyTorch reference on the same files, torch.set_num_threads(--threads), sampling as
   HFAiLab's predict.py does (temperature 1, top-k 500, top-p 0.95, `GPT.top_k_top_p` then
   `torch.multinomial`, on f32 logits), all candidates in one batch, at --batch and at batch 1:
   - torch_kv: `GPT.generate(kv_cache=True)`, the reference GPT with a KV cache, f32, eager;
   - PyTorch at its best on this CPU, the same KV-cached `generate` on the same weights
     (--torch-configs picks; all by default, --quick: torch_kv alone):
     torch_kv_bf16: `model.to(torch.bfloat16)`, the CLIP embedding cast to bf16;
     torch_kv_autocast: f32 weights under `torch.autocast("cpu", dtype=torch.bfloat16)`;
     torch_kv_compiled, torch_kv_bf16_compiled: the per-step forward (`GPT.forward_cached`)
     through `torch.compile` (inductor, dynamic shapes, weights frozen), f32 and bf16; compiled
     during a warm-up of a few steps, outside the timed region (its seconds go to `config`).
     A configuration that fails (compile error, unsupported op) is listed under `skipped` with
     the reason; the bench goes on;
   - torch_best: the fastest KV-cached configuration measured (name and tokens/s);
   - torch_recompute: HFAiLab's sampler, the whole sequence re-run at every step
     (`GPT.generate(kv_cache=False)`, f32, eager); at paper scale timed on a sample of steps and
     interpolated over all of them (the step cost grows smoothly with the prefix length);
   - the VQGAN decode of one grid, CLIP text and image encodes: fastest of --repeats.
4. Writes runs/bench/bench.json: {"tokens_per_s": {"clipgen", "torch_kv", "torch_kv_bf16", ...,
   "torch_best": {"config", "tokens_per_s"}, "torch_recompute", "batch_1": {...}},
   "seconds": {"vqgan_decode_clipgen", "vqgan_decode_torch", ...}, "ratios" (clipgen over
   torch_best, and over torch_kv as before), "checks" (the engine's, and the bf16 forward
   against f32: `torch_bf16_logits_max_rel_diff` = max |dlogit| / max |logit|,
   `torch_bf16_argmax_agreement`, likewise `torch_autocast_*`), "skipped", "done_when",
   "config" (torch version, threads, each configuration's settings and compile seconds)}.

Presets: gpt2-medium = GPT 24 layers, d 1024, 16 heads, vocab 16384, block 256, cond 512;
VQGAN f16 (16384 x 256 codes, ch 128, ch_mult [1,1,2,2,4], 2 res blocks, attention at 16, 256^2);
CLIP ViT-B/32. builtin = the built-in model's shapes (samples/model when present, else the tiny
test model's configs).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path


def _omp_wait_policy() -> str:
    """PyTorch's OpenMP threads spin between operations by default. On an oversubscribed machine
    (load average above the core count) a spinning thread waits for a partner that is not
    running, which made each small operation take milliseconds here; passive waiting is much
    faster there. Chosen before torch loads (libgomp reads it once); `--omp-wait-policy` or
    OMP_WAIT_POLICY override it."""
    if "OMP_WAIT_POLICY" in os.environ:
        return os.environ["OMP_WAIT_POLICY"] + " (from the environment)"
    wanted = "auto"
    for i, a in enumerate(sys.argv):
        if a == "--omp-wait-policy" and i + 1 < len(sys.argv):
            wanted = sys.argv[i + 1]
        elif a.startswith("--omp-wait-policy="):
            wanted = a.split("=", 1)[1]
    if wanted == "auto":
        busy = os.getloadavg()[0] > (os.cpu_count() or 1)
        wanted = "passive" if busy else "default"
    if wanted != "default":
        os.environ["OMP_WAIT_POLICY"] = wanted.upper()
    return wanted


OMP_WAIT_POLICY = _omp_wait_policy()

import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from training.reference.clip import CLIP, CLIPConfig
from training.reference.gpt import GPT, GPTConfig, gpt2_medium
from training.reference.vqgan import VQGANConfig, f16_16384

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "Tests" / "ClipGenEngineTests" / "Fixtures" / "tiny_model"
STAMP_VERSION = 1
TOP_K, TOP_P, TEMPERATURE = 500, 0.95, 1.0  # HFAiLab/clip-gen predict.py


# ---------------------------------------------------------------------------------------------
# shapes
# ---------------------------------------------------------------------------------------------


def clip_config_from_hf(cfg: dict) -> CLIPConfig:
    t, v = cfg["text_config"], cfg["vision_config"]
    return CLIPConfig(
        embed_dim=cfg["projection_dim"],
        image_resolution=v["image_size"],
        vision_layers=v["num_hidden_layers"],
        vision_width=v["hidden_size"],
        vision_patch_size=v["patch_size"],
        context_length=t["max_position_embeddings"],
        vocab_size=t["vocab_size"],
        transformer_width=t["hidden_size"],
        transformer_layers=t["num_hidden_layers"],
    )


def preset_shapes(preset: str) -> tuple[GPTConfig, VQGANConfig, CLIPConfig, str]:
    """(gpt, vqgan, clip, where the shapes came from)."""
    if preset == "gpt2-medium":
        return gpt2_medium(), f16_16384(), CLIPConfig(), "paper scale"
    builtin = ROOT / "samples" / "model"
    base = builtin if (builtin / "model.json").exists() else TINY
    manifest = json.loads((base / "model.json").read_text())
    gpt = GPTConfig.load(base / manifest["gpt"]["config"])
    vq = VQGANConfig.load(base / manifest["vqgan"]["config"])
    clip_cfg = manifest["clip"].get("config")
    if clip_cfg is None:
        raise SystemExit(f"{base}: the CLIP config is needed for the builtin preset's shapes")
    clip = clip_config_from_hf(json.loads((base / clip_cfg).read_text()))
    return gpt, vq, clip, str(base.relative_to(ROOT))


# ---------------------------------------------------------------------------------------------
# random weights, saved once as a clipgen model directory
# ---------------------------------------------------------------------------------------------


@torch.no_grad()
def randomize(model: torch.nn.Module, gen: torch.Generator) -> None:
    """Matrices and kernels N(0, 1/fan_in), biases N(0, 0.02^2), norm weights 1 + N(0, 0.1^2),
    embeddings N(0, 0.02^2) (codebooks N(0, 1)): finite, realistic activation scales."""
    norms = {
        n
        for n, m in model.named_modules()
        if isinstance(m, (torch.nn.LayerNorm, torch.nn.GroupNorm))
    }
    for name, p in model.named_parameters():
        owner, _, leaf = name.rpartition(".")
        if owner in norms:
            mean, std = (1.0, 0.1) if leaf == "weight" else (0.0, 0.02)
        elif name.endswith("embedding.weight") and "quantize" in name:
            mean, std = 0.0, 1.0
        elif leaf.endswith("bias") or p.dim() < 2 or "emb" in name:
            mean, std = 0.0, 0.02
        else:
            mean, std = 0.0, 1.0 / math.sqrt(p[0].numel())
        p.copy_(torch.randn(p.shape, generator=gen) * std + mean)


def byte_tokenizer(out: Path) -> None:
    """CLIP BPE files with the 256 byte symbols (plain and with </w>), the specials, no merges."""
    bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    table = dict(zip(bs, (chr(c) for c in cs)))
    symbols = [table[b] for b in range(256)]
    vocab = symbols + [s + "</w>" for s in symbols] + ["<|startoftext|>", "<|endoftext|>"]
    out.mkdir(parents=True, exist_ok=True)
    (out / "vocab.json").write_text(json.dumps({s: i for i, s in enumerate(vocab)}, sort_keys=True))
    (out / "merges.txt").write_text("#version: 0.2\n")


def prepare(directory: Path, gpt_cfg, vq_cfg, clip_cfg, seed: int) -> bool:
    """Writes the model directory unless an identical one exists. Returns whether it wrote."""
    key = json.dumps(
        {
            "v": STAMP_VERSION,
            "seed": seed,
            "gpt": gpt_cfg.to_json(),
            "vqgan": vq_cfg.to_json(),
            "clip": asdict(clip_cfg),
        },
        sort_keys=True,
    )
    stamp = directory / "bench-torch-stamp.json"
    if stamp.exists() and stamp.read_text() == key and (directory / "model.json").exists():
        return False
    directory.mkdir(parents=True, exist_ok=True)
    stamp.unlink(missing_ok=True)
    gen = torch.Generator().manual_seed(seed)

    gpt = GPT(gpt_cfg)
    randomize(gpt, gen)
    sd = {k: v.contiguous() for k, v in gpt.state_dict().items() if not k.endswith(".mask")}
    (directory / "gpt").mkdir(exist_ok=True)
    save_file(sd, str(directory / "gpt" / "model.safetensors"), metadata={"format": "pt"})
    (directory / "gpt" / "config.json").write_text(json.dumps(gpt_cfg.to_json(), indent=2))
    del gpt, sd

    from training.reference.vqgan import VQGAN

    vq = VQGAN(vq_cfg)
    randomize(vq, gen)
    keep = ("decoder.", "quantize.", "post_quant_conv.")
    sd = {k: v.contiguous() for k, v in vq.state_dict().items() if k.startswith(keep)}
    (directory / "vqgan").mkdir(exist_ok=True)
    save_file(sd, str(directory / "vqgan" / "model.safetensors"), metadata={"format": "pt"})
    (directory / "vqgan" / "config.json").write_text(json.dumps(vq_cfg.to_json(), indent=2))
    del vq, sd

    clip = CLIP(clip_cfg)
    randomize(clip, gen)
    with torch.no_grad():
        clip.logit_scale.fill_(math.log(100.0))
    sd = {k: v.contiguous() for k, v in clip.state_dict().items()}
    (directory / "clip").mkdir(exist_ok=True)
    save_file(sd, str(directory / "clip" / "model.safetensors"), metadata={"format": "pt"})
    del clip, sd

    byte_tokenizer(directory / "tokenizer")
    manifest = {
        "format": "clipgen",
        "version": 1,
        "name": f"bench-random-{gpt_cfg.n_layer}x{gpt_cfg.n_embd}",
        "clip": {"layout": "openai", "weights": "clip/model.safetensors"},
        "tokenizer": {
            "vocab": "tokenizer/vocab.json",
            "merges": "tokenizer/merges.txt",
            "context_length": clip_cfg.context_length,
        },
        "gpt": {"config": "gpt/config.json", "weights": "gpt/model.safetensors"},
        "vqgan": {
            "layout": "taming",
            "config": "vqgan/config.json",
            "weights": "vqgan/model.safetensors",
        },
    }
    (directory / "model.json").write_text(json.dumps(manifest, indent=2) + "\n")
    stamp.write_text(key)
    return True


def load_models(directory: Path, gpt_cfg, vq_cfg, clip_cfg):
    from training.reference.vqgan import VQGAN

    gpt = GPT(gpt_cfg)
    missing, unexpected = gpt.load_state_dict(
        load_file(str(directory / "gpt" / "model.safetensors")), strict=False
    )
    assert not unexpected and all(k.endswith(".mask") for k in missing), (
        missing,
        unexpected,
    )
    vq = VQGAN(vq_cfg)
    missing, unexpected = vq.load_state_dict(
        load_file(str(directory / "vqgan" / "model.safetensors")), strict=False
    )
    assert not unexpected and all(k.startswith(("encoder.", "quant_conv.")) for k in missing)
    clip = CLIP(clip_cfg)
    clip.load_state_dict(load_file(str(directory / "clip" / "model.safetensors")), strict=True)
    return gpt.eval(), vq.eval(), clip.eval()


# ---------------------------------------------------------------------------------------------
# timing the reference
# ---------------------------------------------------------------------------------------------


def hfai_choose(top_k: int, top_p: float, gen: torch.Generator):
    """HFAiLab's `GPT.sample` step: temperature, `top_k_top_p`, softmax, multinomial."""

    def choose(logits: torch.Tensor) -> torch.Tensor:
        logits = logits / TEMPERATURE
        v, _ = torch.topk(logits, top_k)
        logits[logits < v[..., [-1]]] = -torch.inf
        if top_p < 1.0:
            sorted_logits, sorted_indices = torch.sort(logits, descending=True)
            cum_probs = torch.cumsum(torch.softmax(sorted_logits, dim=-1), dim=-1)
            mask = cum_probs > top_p
            mask[..., 1:] = mask[..., :-1].clone()
            mask[..., 0] = 0
            mask = mask.scatter(1, sorted_indices, mask)
            logits[mask] = -torch.inf
        probs = torch.softmax(logits, dim=-1)
        return torch.multinomial(probs, num_samples=1, generator=gen).view(-1)

    return choose


def fastest(repeats: int, fn) -> float:
    best = math.inf
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def embed_batch(batch: int, width: int, gen: torch.Generator) -> torch.Tensor:
    e = torch.randn(batch, width, generator=gen)
    return e / e.norm(dim=-1, keepdim=True)


# The KV-cached configurations, the plainest first: name -> what differs from torch_kv.
TORCH_CONFIGS = {
    "kv": "f32 weights, eager",
    "kv_bf16": "bf16 weights (model.to(torch.bfloat16)), the CLIP embedding cast to bf16, eager",
    "kv_autocast": 'f32 weights under torch.autocast("cpu", dtype=torch.bfloat16), eager',
    "kv_compiled": "f32 weights, GPT.forward_cached through torch.compile (inductor)",
    "kv_bf16_compiled": "bf16 weights, GPT.forward_cached through torch.compile (inductor)",
}
COMPILE_OPTIONS = {"backend": "inductor", "dynamic": True, "mode": "default"}
COMPILE_FREEZING = True  # inductor folds the (inference-only) weights in as constants
COMPILE_WARMUP_STEPS = 4  # step 0 (empty cache), step 1, then the dynamic-length graph


def parse_torch_configs(text: str) -> list[str]:
    """`all` or a comma list of TORCH_CONFIGS names (with or without `torch_`); `kv`, the
    baseline every ratio needs, is always included."""
    if text.strip() == "all":
        return list(TORCH_CONFIGS)
    names = {n.strip().removeprefix("torch_") for n in text.split(",") if n.strip()}
    unknown = sorted(names - set(TORCH_CONFIGS))
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown torch configuration(s) {unknown}; known: {', '.join(TORCH_CONFIGS)}"
        )
    return [n for n in TORCH_CONFIGS if n in names or n == "kv"]


def torch_config_settings(name: str) -> dict:
    compiled = name.endswith("_compiled")
    return {
        "what": TORCH_CONFIGS[name],
        "step": "GPT.generate(kv_cache=True) -> GPT.forward_cached",
        "weights": "bfloat16" if "bf16" in name else "float32",
        "autocast": "cpu, bfloat16" if "autocast" in name else None,
        "compile": dict(COMPILE_OPTIONS, freezing=COMPILE_FREEZING) if compiled else None,
        "sampler_logits": "float32",
        "warmup_steps": COMPILE_WARMUP_STEPS if compiled else 2,
    }


def graphs_compiled() -> int:
    try:
        from torch._dynamo.utils import counters

        return int(counters["stats"]["unique_graphs"])
    except Exception:  # noqa: BLE001 - a private counter; without it only a detail is lost
        return -1


class TorchVariant:
    """One KV-cached configuration: the model whose `generate` runs, the input dtype and
    whether autocast wraps it. Models are built lazily and shared (the bf16 copy once)."""

    def __init__(self, gpt: GPT):
        self.gpt = gpt
        self._bf16: GPT | None = None

    def bf16(self) -> GPT:
        if self._bf16 is None:
            self._bf16 = copy.deepcopy(self.gpt).to(torch.bfloat16).eval()
        return self._bf16

    def build(self, name: str) -> tuple[GPT, torch.dtype, bool]:
        dtype = torch.bfloat16 if "bf16" in name else torch.float32
        model = self.bf16() if dtype == torch.bfloat16 else self.gpt
        if name.endswith("_compiled"):
            from torch import _dynamo
            from torch._inductor import config as inductor_config

            _dynamo.reset()
            inductor_config.freezing = COMPILE_FREEZING
            # A shallow copy shares the modules and weights; only its forward_cached differs.
            model = copy.copy(model)
            model.forward_cached = torch.compile(model.forward_cached, **COMPILE_OPTIONS)
        return model, dtype, "autocast" in name


@torch.no_grad()
def time_kv(
    gpt: GPT,
    batch: int,
    steps: int,
    choose,
    dtype: torch.dtype = torch.float32,
    autocast: bool = False,
    warmup_steps: int = 2,
) -> tuple[float, float, int]:
    """(seconds for `steps` tokens of every sequence with the reference KV cache, seconds of
    the warm-up generation of `warmup_steps` tokens (compiling, for a compiled forward),
    graphs compiled inside the timed region (0 when the warm-up covered them all; -1 unknown)).
    The sampler sees f32 logits whatever the model's precision."""
    embed = embed_batch(batch, gpt.config.n_cond_embd, torch.Generator().manual_seed(1))
    embed = embed.to(dtype)

    def pick(logits: torch.Tensor) -> torch.Tensor:
        return choose(logits.float())

    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
    with ctx:
        t = time.perf_counter()
        gpt.generate(embed, warmup_steps, choose=pick, kv_cache=True)
        warm = time.perf_counter() - t
        graphs = graphs_compiled()
        t = time.perf_counter()
        gpt.generate(embed, steps, choose=pick, kv_cache=True)
        seconds = time.perf_counter() - t
    after = graphs_compiled()
    return seconds, warm, (after - graphs if min(graphs, after) >= 0 else -1)


@torch.no_grad()
def logits_agreement(
    gpt: GPT, model: GPT, dtype: torch.dtype, autocast: bool, batch: int
) -> tuple[float, float]:
    """(max |dlogit| / max |logit|, fraction of positions whose argmax agrees) of `model`
    (bf16 weights, or f32 under autocast) against the f32 reference on one batch of
    `batch` sequences of block_size positions, through the KV-cached forward in one pass."""
    cfg = gpt.config
    embed = embed_batch(batch, cfg.n_cond_embd, torch.Generator().manual_seed(5))
    tokens = torch.randint(
        0, cfg.vocab_size, (batch, cfg.block_size - 1), generator=torch.Generator().manual_seed(6)
    )

    def logits(m: GPT, dt: torch.dtype) -> torch.Tensor:
        x_in = torch.cat([m.condition(embed.to(dt)).to(m.pos_emb.dtype), m.tok_emb(tokens)], 1)
        return m.forward_cached(x_in, 0, [None] * len(m.blocks)).float()

    ref = logits(gpt, torch.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16) if autocast else contextlib.nullcontext():
        got = logits(model, dtype)
    rel = ((got - ref).abs().max() / ref.abs().max()).item()
    agree = (got.argmax(-1) == ref.argmax(-1)).float().mean().item()
    return rel, agree


def best_of(tokens_per_s: dict[str, float]) -> dict:
    """{"config": "torch_NAME", "tokens_per_s": the highest} over {NAME: tokens/s}."""
    name = max(tokens_per_s, key=tokens_per_s.__getitem__)
    return {"config": f"torch_{name}", "tokens_per_s": tokens_per_s[name]}


def short_reason(e: BaseException) -> str:
    lines = [line.strip() for line in str(e).strip().splitlines() if line.strip()]
    text = f"{type(e).__name__}: {lines[0] if lines else ''}".strip()
    return text if len(text) <= 400 else text[:397] + "..."


@torch.no_grad()
def time_recompute(gpt: GPT, batch: int, steps: int, choose, samples: int) -> tuple[float, str]:
    """Seconds for HFAiLab's recomputing sampler over `steps` steps: step p runs the forward over
    the condition and p tokens. With `samples` > 0, steps at `samples` evenly spaced prefix
    lengths are timed and the per-step cost is interpolated linearly over all steps."""
    embed = embed_batch(batch, gpt.config.n_cond_embd, torch.Generator().manual_seed(1))
    vocab = gpt.config.vocab_size

    def step(p: int) -> float:
        tokens = torch.randint(0, vocab, (batch, p), generator=torch.Generator().manual_seed(p))
        t = time.perf_counter()
        logits = gpt(tokens, embed)[:, -1]
        choose(logits)
        return time.perf_counter() - t

    step(1)  # warm-up
    if samples <= 0 or samples >= steps:
        t = time.perf_counter()
        gpt.generate(embed, steps, choose=choose, kv_cache=False)
        return time.perf_counter() - t, f"all {steps} steps timed"
    points = sorted({round(i * (steps - 1) / (samples - 1)) for i in range(samples)})
    times = {p: step(p) for p in points}
    total = 0.0
    for p in range(steps):
        hi = next(q for q in points if q >= p)
        lo = max(q for q in points if q <= p)
        w = 0.0 if hi == lo else (p - lo) / (hi - lo)
        total += (1 - w) * times[lo] + w * times[hi]
    detail = ", ".join(f"{p}: {times[p]:.3f} s" for p in points)
    return (
        total,
        f"{len(points)} steps timed (prefix length: seconds: {detail}), linear in between",
    )


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


# ---------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--preset", choices=["builtin", "gpt2-medium"], default="builtin")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "bench")
    ap.add_argument("--clipgen", type=Path, help="the clipgen executable (omit: torch only)")
    ap.add_argument("--clipgen-args", default="", help="extra arguments for clipgen bench")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--recompute-samples",
        type=int,
        default=-1,
        help="prefix lengths timed for torch_recompute (0: every step; default: 6 at paper "
        "scale, every step otherwise)",
    )
    ap.add_argument("--no-batch-one", action="store_true", help="skip the batch-1 runs")
    ap.add_argument(
        "--torch-configs",
        type=parse_torch_configs,
        default=list(TORCH_CONFIGS),
        help="KV-cached torch configurations to time, comma-separated, or all (default): "
        + ", ".join(TORCH_CONFIGS)
        + " (kv always runs)",
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="time torch_kv alone (no bf16, autocast or torch.compile configurations)",
    )
    ap.add_argument(
        "--omp-wait-policy",
        choices=["auto", "default", "active", "passive"],
        default="auto",
        help="OpenMP wait policy for torch (auto: passive when the load average exceeds the cores)",
    )
    return ap


def run_engine(args: argparse.Namespace, model_dir: Path) -> dict:
    """`clipgen bench` on the same files; its JSON."""
    cmd = [
        str(args.clipgen),
        "bench",
        "--model",
        str(model_dir),
        "--batch",
        str(args.batch),
    ]
    cmd += [
        "--json",
        str(args.out / "clipgen.json"),
        "--repeats",
        str(args.repeats),
    ]
    if args.no_batch_one:
        cmd.append("--no-batch-one")
    cmd += args.clipgen_args.split()
    print("$ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    return json.loads((args.out / "clipgen.json").read_text())


def time_torch_configs(variants: TorchVariant, configs: list[str], batches: list[int], B: int,
                       steps: int, choose) -> tuple[dict, dict, dict, dict]:
    """Every KV-cached configuration at each batch size: (settings, skipped, tokens/s at B,
    tokens/s at batch 1) by configuration name; a configuration that fails is skipped, except
    the f32 baseline "kv"."""
    settings: dict[str, dict] = {}
    skipped: dict[str, str] = {}
    kv_tok: dict[str, float] = {}
    kv_tok_1: dict[str, float] = {}
    for name in configs:
        settings[name] = torch_config_settings(name)
        built = None
        for batch in batches:
            key = f"torch_{name}" + ("" if batch == B else "_batch_1")
            try:
                built = built or variants.build(name)
                model, dtype, autocast = built
                sec, warm, extra = time_kv(
                    model, batch, steps, choose, dtype, autocast, settings[name]["warmup_steps"]
                )
            except Exception as e:
                if name == "kv":  # the baseline: nothing to compare against without it
                    raise
                skipped[key] = short_reason(e)
                print(f"torch {name}, batch {batch}: skipped ({skipped[key]})", flush=True)
                break  # batch 1 is not tried where batch B failed
            label = "" if batch == B else "_batch_1"
            settings[name][f"warmup_s{label}"] = warm
            if settings[name]["compile"]:
                settings[name][f"graphs_compiled_while_timed{label}"] = extra
            (kv_tok if batch == B else kv_tok_1)[name] = batch * steps / sec
            print(
                f"torch {name}, batch {batch}: {batch * steps / sec:.1f} tokens/s ({sec:.2f} s; "
                f"warm-up {warm:.1f} s)",
                flush=True,
            )
    return settings, skipped, kv_tok, kv_tok_1


def bf16_checks(variants: TorchVariant, gpt, configs: list[str], skipped: dict, B: int) -> dict:
    """Quality of the yardstick: the bf16 forward against f32 on one batch (a failure is added
    to `skipped`)."""
    checks: dict[str, float] = {}
    for name, prefix in (("kv_bf16", "torch_bf16"), ("kv_autocast", "torch_autocast_bf16")):
        if name not in configs or f"torch_{name}" in skipped:
            continue
        model, dtype, autocast = variants.build(name)
        try:
            rel, agree = logits_agreement(gpt, model, dtype, autocast, B)
        except Exception as e:  # noqa: BLE001 - reported under skipped
            skipped[f"{prefix}_check"] = short_reason(e)
            continue
        checks[f"{prefix}_logits_max_rel_diff"] = rel
        checks[f"{prefix}_argmax_agreement"] = agree
        print(
            f"torch {name} vs f32: max |dlogit| / max |logit| = {rel:.2e}, argmax agrees at "
            f"{agree * 100:.0f}% of positions",
            flush=True,
        )
    return checks


def time_parts(vq, clip, vq_cfg, clip_cfg, repeats: int) -> dict[str, float]:
    """Seconds of one VQGAN decode and one CLIP text and image encode (fastest of repeats)."""
    seconds: dict[str, float] = {}
    with torch.no_grad():
        g = vq_cfg.grid
        idx = torch.randint(
            0, vq_cfg.n_embed, (1, g * g), generator=torch.Generator().manual_seed(3)
        )
        vq.decode_indices(idx)
        seconds["vqgan_decode"] = fastest(repeats, lambda: vq.decode_indices(idx))
        ids = torch.randint(1, 500, (1, clip_cfg.context_length), generator=torch.Generator())
        ids[0, 12] = 513  # EOT (the byte tokenizer's highest id) where the text pools
        ids[0, 13:] = 0
        clip.encode_text(ids)
        seconds["clip_text"] = fastest(repeats, lambda: clip.encode_text(ids))
        r = clip_cfg.image_resolution
        pix = torch.randn(1, 3, r, r, generator=torch.Generator().manual_seed(4))
        clip.encode_image(pix)
        seconds["clip_image"] = fastest(repeats, lambda: clip.encode_image(pix))
    print(
        "torch VQGAN decode {:.3f} s, CLIP text {:.3f} s, image {:.3f} s".format(
            seconds["vqgan_decode"],
            seconds["clip_text"],
            seconds["clip_image"],
        ),
        flush=True,
    )
    return seconds


def torch_entries(torch_res: dict, kv_tok: dict, kv_tok_1: dict, best: dict, checks: dict,
                  skipped: dict) -> dict:
    """bench.json's PyTorch numbers (the engine's are added by add_engine)."""
    s = torch_res["seconds"]
    out: dict = {
        "tokens_per_s": {"torch_kv": torch_res["tokens_per_s"]["kv_batch"]},
        "seconds": {"vqgan_decode_torch": s["vqgan_decode"]},
    }
    for name, value in kv_tok.items():
        out["tokens_per_s"][f"torch_{name}"] = value
    out["tokens_per_s"]["torch_best"] = best
    out["tokens_per_s"]["torch_recompute"] = torch_res["tokens_per_s"]["recompute_batch"]
    out["seconds"]["clip_text_torch"] = s["clip_text"]
    out["seconds"]["clip_image_torch"] = s["clip_image"]
    out["seconds"]["image_end_to_end_torch_estimate"] = s["image_end_to_end_estimate"]
    out["seconds"]["image_end_to_end_torch_best_estimate"] = s["image_end_to_end_best_estimate"]
    if kv_tok_1:
        out["tokens_per_s"]["batch_1"] = {f"torch_{n}": v for n, v in kv_tok_1.items()}
        out["tokens_per_s"]["batch_1"]["torch_best"] = best_of(kv_tok_1)
    if checks:
        out["checks"] = dict(checks)
    out["skipped"] = skipped
    out["peak_rss_mb"] = {"torch": peak_rss_mb()}
    return out


def add_engine(out: dict, engine: dict, B: int, s: dict, best: dict) -> None:
    """The engine's numbers into bench.json, with the ratios and the done-when checks."""
    e_tok, e_sec = engine["tokens_per_s"], engine["seconds"]
    out["tokens_per_s"]["clipgen"] = e_tok[f"batch_{B}"]
    if "batch_1" in e_tok and B != 1:
        out["tokens_per_s"].setdefault("batch_1", {})["clipgen"] = e_tok["batch_1"]
    out["seconds"]["vqgan_decode_clipgen"] = e_sec["vqgan_decode"]
    out["seconds"]["clip_text_clipgen"] = e_sec["clip_text"]
    out["seconds"]["clip_image_clipgen"] = e_sec["clip_image"]
    out["seconds"]["image_end_to_end_clipgen"] = e_sec[f"image_end_to_end_batch_{B}"]
    if "image_end_to_end_batch_1" in e_sec:
        out["seconds"]["image_end_to_end_clipgen_batch_1"] = e_sec["image_end_to_end_batch_1"]
    out["seconds"]["load_clipgen"] = e_sec.get("load")
    out["peak_rss_mb"]["clipgen"] = engine["peak_rss_mb"]
    if f"prior_step_batch_{B}" in e_sec:
        out["seconds"]["prior_step_clipgen"] = e_sec[f"prior_step_batch_{B}"]
    if engine.get("checks"):
        out["checks"] = {**engine["checks"], **out.get("checks", {})}
    tok = out["tokens_per_s"]
    out["ratios"] = {
        "torch_best_config": best["config"],
        "clipgen_over_torch_best": tok["clipgen"] / best["tokens_per_s"],
        "clipgen_over_torch_kv": tok["clipgen"] / tok["torch_kv"],  # f32, eager
        "clipgen_over_torch_recompute": tok["clipgen"] / tok["torch_recompute"],
        "vqgan_decode_torch_over_clipgen": s["vqgan_decode"] / e_sec["vqgan_decode"],
    }
    one = tok.get("batch_1", {})
    if "clipgen" in one and "torch_best" in one:
        out["ratios"]["torch_best_config_batch_1"] = one["torch_best"]["config"]
        out["ratios"]["clipgen_over_torch_best_batch_1"] = (
            one["clipgen"] / one["torch_best"]["tokens_per_s"]
        )
        out["ratios"]["clipgen_over_torch_kv_batch_1"] = one["clipgen"] / one["torch_kv"]
    out["done_when"] = done_when(out["ratios"], e_sec["vqgan_decode"], s["vqgan_decode"])


def done_when(ratios: dict, decode_clipgen: float, decode_torch: float) -> dict:
    """bench.json's goals: faster than PyTorch at its best on this CPU (`torch_best`, at the
    batch measured and at batch 1 where measured), and the earlier goals against its plain
    KV-cached and recomputing loops."""
    goals = {
        "tokens_per_s_faster_than_torch_best": ratios["clipgen_over_torch_best"] > 1,
        "tokens_per_s_at_least_1.5x_torch_kv": ratios["clipgen_over_torch_kv"] >= 1.5,
        "tokens_per_s_at_least_20x_torch_recompute": ratios["clipgen_over_torch_recompute"] >= 20,
        "vqgan_decode_not_slower_than_torch": decode_clipgen <= decode_torch,
    }
    if "clipgen_over_torch_best_batch_1" in ratios:
        goals["tokens_per_s_faster_than_torch_best_batch_1"] = (
            ratios["clipgen_over_torch_best_batch_1"] > 1)
    return goals


def run_config(args, source, steps, top_k, gpt_cfg, vq_cfg, clip_cfg, model_dir, settings,
               method, load_before) -> dict:
    """bench.json's "config": what was measured, how, and on what."""
    return {
        "preset": args.preset,
        "shapes_from": source,
        "batch": args.batch,
        "tokens_per_image": steps,
        "threads": args.threads,
        "sampling": {"temperature": TEMPERATURE, "top_k": top_k, "top_p": TOP_P},
        "gpt": gpt_cfg.to_json(),
        "vqgan": vq_cfg.to_json(),
        "clip": asdict(clip_cfg),
        "weights": str(model_dir),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_mkldnn": torch.backends.mkldnn.is_available(),
        "torch_configs": settings,
        "torch_best": "the fastest of the KV-cached configurations measured "
        "(torch_recompute, another algorithm, is not a candidate)",
        "torch_omp_wait_policy": OMP_WAIT_POLICY,
        "torch_recompute_method": method,
        "cpu": cpu_name(),
        "load_average": {"before": load_before, "after": load_average()},
        "timing": f"sampling: one full generation of {steps} tokens per sequence after a "
        f"warm-up; decodes and encodes: fastest of {args.repeats}",
    }


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    gpt_cfg, vq_cfg, clip_cfg, source = preset_shapes(args.preset)
    args.out.mkdir(parents=True, exist_ok=True)
    model_dir = args.out / "models" / f"{args.preset}-torch"
    t = time.perf_counter()
    if prepare(model_dir, gpt_cfg, vq_cfg, clip_cfg, args.seed):
        print(
            f"wrote random weights to {model_dir} in {time.perf_counter() - t:.1f} s",
            flush=True,
        )
    load_before = load_average()

    # -- the engine, first, on the same files ------------------------------------------------
    engine = run_engine(args, model_dir) if args.clipgen else None

    # -- the PyTorch reference -----------------------------------------------------------------
    gpt, vq, clip = load_models(model_dir, gpt_cfg, vq_cfg, clip_cfg)
    steps = gpt_cfg.block_size
    top_k = min(TOP_K, gpt_cfg.vocab_size)
    choose = hfai_choose(top_k, TOP_P, torch.Generator().manual_seed(args.seed))
    B = args.batch
    torch_res: dict = {"tokens_per_s": {}, "seconds": {}}

    configs = ["kv"] if args.quick else args.torch_configs
    variants = TorchVariant(gpt)
    batches = [B] + ([1] if not args.no_batch_one and B != 1 else [])
    settings, skipped, kv_tok, kv_tok_1 = time_torch_configs(
        variants, configs, batches, B, steps, choose
    )
    torch_res["tokens_per_s"]["kv_batch"] = kv_tok["kv"]
    if "kv" in kv_tok_1:
        torch_res["tokens_per_s"]["kv_batch_1"] = kv_tok_1["kv"]

    # Quality of the yardstick: the bf16 forward against f32 on one batch.
    checks = bf16_checks(variants, gpt, configs, skipped, B)
    samples = args.recompute_samples
    if samples < 0:
        samples = 6 if args.preset == "gpt2-medium" else 0
    rc, method = time_recompute(gpt, B, steps, choose, samples)
    torch_res["tokens_per_s"]["recompute_batch"] = B * steps / rc
    print(
        f"torch recompute, batch {B}: {B * steps / rc:.2f} tokens/s ({method})",
        flush=True,
    )

    torch_res["seconds"].update(time_parts(vq, clip, vq_cfg, clip_cfg, args.repeats))
    # End to end per image from the parts (sampling share of the batch, one decode, one CLIP
    # image encode for reranking, the prompt's text encode shared by the batch).
    s = torch_res["seconds"]
    s["image_end_to_end_estimate"] = (
        steps / torch_res["tokens_per_s"]["kv_batch"]
        + s["vqgan_decode"]
        + s["clip_image"]
        + s["clip_text"] / B
    )
    best = best_of(kv_tok)
    s["image_end_to_end_best_estimate"] = (
        s["image_end_to_end_estimate"] - steps / kv_tok["kv"] + steps / best["tokens_per_s"]
    )

    # -- bench.json -----------------------------------------------------------------------------
    out = torch_entries(torch_res, kv_tok, kv_tok_1, best, checks, skipped)
    if engine:
        add_engine(out, engine, B, s, best)
    out["config"] = run_config(
        args, source, steps, top_k, gpt_cfg, vq_cfg, clip_cfg, model_dir, settings, method,
        load_before
    )
    if engine:
        out["config"]["clipgen"] = engine["config"]
    (args.out / "bench.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({k: out[k] for k in ("tokens_per_s", "seconds") if k in out}, indent=2))
    if "ratios" in out:
        print(json.dumps(out["ratios"], indent=2))
    print(f"wrote {args.out / 'bench.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
