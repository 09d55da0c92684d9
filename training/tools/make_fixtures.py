"""Writes the parity fixtures under Tests/ClipGenEngineTests/Fixtures/ (deterministic).

    python -m tools.make_fixtures            (from training/; or `make fixtures`)

Weights are drawn in float32 from fixed seeds with a spread that keeps outputs well
conditioned (std ~ 1/sqrt(fan_in), non-trivial norm affines and biases). Every expected
output is computed in float64 from exactly the stored float32 inputs and weights, then
stored as float32. Greedy decoding and vector quantisation are re-seeded until no step is
a near-tie, so a correct float32 engine must reproduce them exactly.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from safetensors.torch import load_file, save_file
from torch import nn

from reference.clip import CLIP, CLIPConfig, hf_config, load_hf, load_openai, to_hf_state_dict
from reference.gpt import GPT, GPTConfig, load_gpt, strip_masks
from reference.tokenizer import Tokenizer, learn_merges, write_files
from reference.vqgan import VQGAN, VQGANConfig, load_vqgan, taming_to_hfai

from .fixtures_readme import write_readme

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "Tests" / "ClipGenEngineTests" / "Fixtures"

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

N_MERGES = 100
MIN_LOGIT_GAP = 1e-3  # greedy: top-1 minus top-2 logit, every step
MIN_CODE_MARGIN = 5e-3  # VQ: second-nearest minus nearest squared distance, every position
MIN_CODES_USED = 12  # encode fixture must use at least this many distinct codes
# encoder.conv_in / decoder.conv_in are scaled down so the GroupNorm right after them sees a
# variance of ~1e-5: then eps 1e-6 (taming) vs 1e-5 (HFAiLab) changes outputs visibly.
EPS_PROBE_SCALE = 3e-3

CAPTIONS_FOR_FIXTURE = ["a red circle on the left", "a small blue square at the top right"]

TOKENIZER_CASES = [
    "a red circle on the left",
    "a small blue square at the top right",
    "A  Large   GREEN Triangle\tin the CENTRE.",
    "two yellow stars, 3 purple circles & one &amp;lt;orange&amp;gt; square!",
    "it's a zebra's café: naïve déjà-vu",
    "red_circle #42 left-of blue/square",
    "Ünïcödé ½ x² 7th",
    "",
    "   ",
    "the circle <|endoftext|> and <|startoftext|> tokens",
    " ".join(["a red circle on the left of a big green square"] * 8),  # > 77: truncation
]


def training_captions() -> list[str]:
    """A few dozen captions of the built-in world's kind, to learn a tiny BPE vocabulary."""
    colours = [
        "red",
        "green",
        "blue",
        "yellow",
        "purple",
        "orange",
        "white",
        "black",
        "pink",
        "brown",
        "grey",
        "cyan",
    ]
    shapes = ["circle", "square", "triangle", "star", "diamond", "hexagon"]
    sizes = ["small", "large", "big", "tiny"]
    places = [
        "on the left",
        "on the right",
        "at the top",
        "at the bottom",
        "in the centre",
        "at the top right",
        "at the bottom left",
        "near the middle",
        "above a line",
        "below the corner",
    ]
    out = []
    for i in range(48):
        c, s, z, p = colours[i % 12], shapes[(i // 2) % 6], sizes[(i // 3) % 4], places[i % 10]
        out.append(f"a {z} {c} {s} {p}" if i % 3 else f"a {c} {s} {p}")
    return out


# ---------------------------------------------------------------------------------------------
# initialisation
# ---------------------------------------------------------------------------------------------


def _randn(gen: torch.Generator, shape, std: float, mean: float = 0.0) -> torch.Tensor:
    return torch.randn(tuple(shape), generator=gen) * std + mean


@torch.no_grad()
def init_weights(model: nn.Module, gen: torch.Generator, special: dict[str, float]) -> None:
    """Linear/conv weights ~ N(0, 1/fan_in); biases ~ N(0, 0.1^2); norm weights ~ 1 + N(0, 0.2^2),
    norm biases ~ N(0, 0.1^2); `special` maps a parameter name (suffix) to a std."""
    norms = {n for n, m in model.named_modules() if isinstance(m, (nn.LayerNorm, nn.GroupNorm))}
    for name, p in model.named_parameters():
        owner, _, leaf = name.rpartition(".")
        hit = [v for k, v in special.items() if name == k or name.endswith("." + k)]
        if hit:
            p.copy_(_randn(gen, p.shape, hit[0]))
        elif owner in norms:
            p.copy_(
                _randn(gen, p.shape, 0.2, 1.0) if leaf == "weight" else _randn(gen, p.shape, 0.1)
            )
        elif leaf.endswith("bias"):
            p.copy_(_randn(gen, p.shape, 0.1))
        elif p.dim() >= 2:
            fan_in = p[0].numel()
            p.copy_(_randn(gen, p.shape, 1.0 / math.sqrt(fan_in)))
        else:
            raise ValueError(f"no init rule for {name}")


def as64(model: nn.Module) -> nn.Module:
    """A float64 copy (the float32 original stays untouched)."""
    return copy.deepcopy(model).double().eval()


def f32(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to(torch.float32).contiguous()


def save(tensors: dict[str, torch.Tensor], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.contiguous() for k, v in tensors.items()}
    # one metadata entry only: safetensors writes metadata in hash-map order (not reproducible)
    save_file(tensors, str(path), metadata={"format": "pt"})


def write_json(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2) + "\n")


# ---------------------------------------------------------------------------------------------
# images (drawn, then stored as PNG so an engine test can start from the file)
# ---------------------------------------------------------------------------------------------


def draw_scene(size: int, which: int) -> np.ndarray:
    """uint8 [size, size, 3]: simple shapes with a little deterministic texture."""
    s = size
    img = Image.new("RGB", (s, s), (30, 30, 40) if which == 0 else (200, 190, 150))
    d = ImageDraw.Draw(img)
    if which == 0:
        d.ellipse([s * 0.05, s * 0.3, s * 0.45, s * 0.7], fill=(220, 40, 40))
        d.rectangle([s * 0.6, s * 0.05, s * 0.95, s * 0.4], fill=(40, 200, 70))
    else:
        d.rectangle([s * 0.55, s * 0.05, s * 0.9, s * 0.4], fill=(40, 60, 220))
        d.polygon([(s * 0.1, s * 0.9), (s * 0.3, s * 0.5), (s * 0.5, s * 0.9)], fill=(240, 200, 0))
    arr = np.asarray(img).astype(np.int32)
    rng = np.random.default_rng(1234 + which)
    arr = arr + rng.integers(-12, 13, size=arr.shape)
    return np.clip(arr, 0, 255).astype(np.uint8)


def to_chw(arr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(arr.astype(np.float64)).permute(2, 0, 1)  # [3, H, W], 0..255


# ---------------------------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------------------------


def make_tokenizer(out: Path) -> Tokenizer:
    merges = learn_merges(training_captions(), N_MERGES)
    assert len(merges) == N_MERGES, len(merges)
    write_files(merges, out / "tiny_model" / "tokenizer")
    tok = Tokenizer.from_dir(out / "tiny_model" / "tokenizer")
    assert tok.eot_id == max(tok.encoder.values())
    cases = []
    for text in TOKENIZER_CASES:
        cases.append(
            {
                "text": text,
                "tokens": tok.encode_symbols(text),
                "ids": tok.encode(text),
                "input_ids": tok.context(text, 77),
            }
        )
    write_json(
        {
            "vocab": "tiny_model/tokenizer/vocab.json",
            "merges": "tiny_model/tokenizer/merges.txt",
            "bos_id": tok.bos_id,
            "eot_id": tok.eot_id,
            "context_length": 77,
            "truncation": "ids = [BOS] + bpe + [EOT]; if longer than 77 keep the first 77 and set "
            "the last to EOT; pad with 0",
            "cases": cases,
        },
        out / "io" / "tokenizer_cases.json",
    )
    return tok


def make_clip(out: Path, tok: Tokenizer, stats: dict) -> tuple[CLIP, dict]:
    cfg = CLIPConfig(
        embed_dim=64,
        image_resolution=32,
        vision_layers=2,
        vision_width=128,
        vision_patch_size=8,
        context_length=77,
        vocab_size=len(tok.encoder),
        transformer_width=128,
        transformer_layers=2,
    )
    gen = torch.Generator().manual_seed(101)
    model = CLIP(cfg).eval()
    init_weights(
        model,
        gen,
        {
            "token_embedding.weight": 1.0,
            "positional_embedding": 0.5,
            "visual.class_embedding": 1.0,
            "visual.positional_embedding": 0.5,
            "text_projection": 128**-0.5,
            "visual.proj": 128**-0.5,
            "logit_scale": 0.0,
        },
    )
    with torch.no_grad():
        model.logit_scale.fill_(math.log(1 / 0.07))
    sd = {k: v.contiguous() for k, v in model.state_dict().items()}

    # weights: OpenAI names (clip_openai/) and HF names + config (tiny_model/clip/)
    save(sd, out / "clip_openai" / "model.safetensors")
    hf_sd = to_hf_state_dict(sd)
    save(hf_sd, out / "tiny_model" / "clip" / "model.safetensors")
    cfg_json = hf_config(cfg, tok.bos_id, tok.eot_id, 0)
    write_json(cfg_json, out / "tiny_model" / "clip" / "config.json")
    # both files must load back to identical weights
    a = load_openai(load_file(str(out / "clip_openai" / "model.safetensors")))
    b = load_hf(load_file(str(out / "tiny_model" / "clip" / "model.safetensors")), cfg_json)
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]) and torch.equal(v, sd[k]), k

    # inputs
    input_ids = torch.tensor([tok.context(t, 77) for t in CAPTIONS_FOR_FIXTURE], dtype=torch.long)
    raw = [draw_scene(32, i) for i in range(2)]
    for i, arr in enumerate(raw):
        Image.fromarray(arr).save(out / "io" / f"clip_image_{i}.png")
    mean = torch.tensor(CLIP_MEAN, dtype=torch.float64).view(3, 1, 1)
    std = torch.tensor(CLIP_STD, dtype=torch.float64).view(3, 1, 1)
    pixel_values = f32(torch.stack([(to_chw(a) / 255.0 - mean) / std for a in raw]))

    m64 = as64(model)
    with torch.no_grad():
        ts = m64.encode_text_states(input_ids)
        vs = m64.visual.forward_states(pixel_values.double())
        logits_per_image, _ = m64(pixel_values.double(), input_ids)
        t32 = model.encode_text(input_ids)
        i32 = model.encode_image(pixel_values)
    stats["clip_f32_text"] = float((t32 - ts["text_embeds"]).abs().max())
    stats["clip_f32_image"] = float((i32 - vs["image_embeds"]).abs().max())
    stats["clip_vocab"] = cfg.vocab_size
    print(
        f"clip: float32 vs float64 max |diff| text {stats['clip_f32_text']:.2e}"
        f" image {stats['clip_f32_image']:.2e}"
    )
    io = {
        "input_ids": input_ids,
        "text_embeddings": f32(ts["embeddings"]),
        "text_layer_0": f32(ts["layers"][0]),
        "text_last_hidden": f32(ts["last_hidden"]),
        "text_pooled": f32(ts["pooled"]),
        "text_embeds": f32(ts["text_embeds"]),
        "pixel_values": pixel_values,
        "image_embeddings": f32(vs["embeddings"]),
        "image_pre_layernorm": f32(vs["pre_layernorm"]),
        "image_layer_0": f32(vs["layers"][0]),
        "image_pooled": f32(vs["pooled"]),
        "image_embeds": f32(vs["image_embeds"]),
        "logits_per_image": f32(logits_per_image),
    }
    save(io, out / "io" / "clip.safetensors")
    return model, io


def make_gpt(out: Path, cond: torch.Tensor, stats: dict) -> tuple[dict, dict]:
    """cond: [2, 64] float32, L2-normalised (like HFAiLab's CLIPWrapper)."""
    cfg = GPTConfig(
        vocab_size=64,
        n_layer=2,
        n_embd=64,
        n_head=4,
        block_size=256,
        n_cond_embd=cond.shape[1],
        layer_norm_eps=1e-5,
        uncond_embedding=True,
    )
    for seed in range(200, 300):
        gen = torch.Generator().manual_seed(seed)
        model = GPT(cfg).eval()
        init_weights(
            model,
            gen,
            {
                "tok_emb.weight": 1.0,
                "pos_emb": 0.5,
                "cond_proj.weight": 1.0,
                "uncond_emb": 1.0,
                "head.weight": 2.0 / math.sqrt(cfg.n_embd),
            },
        )
        m64 = as64(model)
        with torch.no_grad():
            tokens, step_logits = m64.generate(cond.double(), 256)
        top2 = step_logits.topk(2, dim=-1).values
        gaps = top2[..., 0] - top2[..., 1]  # [2, 256]
        if gaps.min() > MIN_LOGIT_GAP:
            break
        print(f"gpt seed {seed}: min greedy gap {gaps.min():.2e}, re-seeding")
    else:
        raise RuntimeError("no GPT seed without near-ties")
    print(
        f"gpt: seed {seed}, min greedy top-2 gap {gaps.min():.4f}, "
        f"distinct tokens {[len(set(r.tolist())) for r in tokens]}"
    )

    sd = strip_masks({k: v.contiguous() for k, v in model.state_dict().items()})
    save(sd, out / "tiny_model" / "gpt" / "model.safetensors")
    write_json(cfg.to_json(), out / "tiny_model" / "gpt" / "config.json")
    assert all(torch.equal(v, load_gpt(sd, cfg).state_dict()[k]) for k, v in sd.items())

    with torch.no_grad():
        # same greedy result from the float32 model and from the KV-cache path
        t32, _ = model.generate(cond, 256)
        tkv, _ = m64.generate(cond.double(), 256, kv_cache=True)
        assert torch.equal(t32, tokens) and torch.equal(tkv, tokens)
        gen = torch.Generator().manual_seed(7)
        prefix = torch.randint(0, cfg.vocab_size, (2, 100), generator=gen)
        states: list = []
        logits = m64(prefix, cond.double(), states=states)
        logits_uncond = m64(prefix, cond.double(), uncond=True)
        l32 = model(prefix, cond)
    stats["gpt_seed"] = seed
    stats["gpt_min_gap"] = float(gaps.min())
    stats["gpt_distinct"] = [len(set(r.tolist())) for r in tokens]
    stats["gpt_f32_logits"] = float((l32 - logits).abs().max())
    print(f"gpt: float32 vs float64 max |logit diff| {stats['gpt_f32_logits']:.2e}")
    io = {
        "cond_embeds": cond,
        "prefix_tokens": prefix,
        "logits": f32(logits),
        "hidden_block_0": f32(states[0]),
        "logits_uncond": f32(logits_uncond),
        "greedy_tokens": tokens,
        "greedy_logits": f32(step_logits),
        "greedy_min_gap": f32(gaps.min(dim=1).values),
    }
    save(io, out / "io" / "gpt.safetensors")
    return cfg.to_json(), io


def vq_margin(distances: torch.Tensor) -> torch.Tensor:
    two = distances.topk(2, dim=-1, largest=False).values
    return two[..., 1] - two[..., 0]


def vqgan_io(model64: VQGAN, tokens: torch.Tensor, image: torch.Tensor) -> dict:
    with torch.no_grad():
        dec = model64.decode_states(tokens)
        enc = model64.encode(image.double())
    return {
        "decode_tokens": tokens,
        "decode_z_q": f32(dec["z_q"]),
        "decode_post_quant": f32(dec["post_quant"]),
        "decode_mid": f32(dec["mid"]),
        "decoded": f32(dec["image"]),
        "encode_image": image,
        "encode_latent": f32(enc["latent"]),
        "encode_indices": enc["indices"],
        "encode_margin": f32(vq_margin(enc["distances"])),
    }


def make_vqgan(out: Path, tokens: torch.Tensor, stats: dict) -> None:
    cfg = VQGANConfig(
        embed_dim=16,
        n_embed=64,
        ch=32,
        out_ch=3,
        ch_mult=(1, 1, 2),
        num_res_blocks=1,
        attn_resolutions=(16,),
        in_channels=3,
        resolution=64,
        z_channels=16,
        norm_eps=1e-6,
    )
    raw = [draw_scene(64, i) for i in range(2)]
    for i, arr in enumerate(raw):
        Image.fromarray(arr).save(out / "io" / f"vqgan_image_{i}.png")
    image = f32(torch.stack([to_chw(a) / 127.5 - 1.0 for a in raw]))
    hfai_cfg = VQGANConfig(**{**cfg.__dict__, "norm_eps": 1e-5})

    for seed in range(300, 400):
        gen = torch.Generator().manual_seed(seed)
        model = VQGAN(cfg).eval()
        init_weights(model, gen, {"quantize.embedding.weight": 1.0})
        with torch.no_grad():  # make the first GroupNorm of each tower eps-sensitive
            for conv, scale in (
                (model.decoder.conv_in, EPS_PROBE_SCALE),
                (model.encoder.conv_in, 2 * EPS_PROBE_SCALE),
            ):
                conv.weight.mul_(scale)
                conv.bias.mul_(scale)
        io = vqgan_io(as64(model), tokens, image)
        hfai = load_vqgan(model.state_dict(), hfai_cfg)
        io_h = vqgan_io(as64(hfai), tokens, image)
        used = min(len(set(r.tolist())) for r in io["encode_indices"])
        margin = min(io["encode_margin"].min(), io_h["encode_margin"].min())
        if margin > MIN_CODE_MARGIN and used >= MIN_CODES_USED:
            break
        print(f"vqgan seed {seed}: margin {margin:.2e}, codes used {used}, re-seeding")
    else:
        raise RuntimeError("no VQGAN seed without near-ties")
    with torch.no_grad():
        e32 = model.encode(image)["indices"]
        d32 = model.decode_indices(tokens)
    assert torch.equal(e32, io["encode_indices"])
    stats["vq_seed"] = seed
    stats["vq_margin"] = float(margin)
    stats["vq_used"] = used
    stats["vq_f32_decode"] = float((d32 - io["decoded"]).abs().max())
    stats["vq_eps_decode"] = float((io["decoded"] - io_h["decoded"]).abs().max())
    stats["vq_eps_indices"] = float((io["encode_indices"] != io_h["encode_indices"]).float().mean())
    print(
        f"vqgan: seed {seed}, min code margin {margin:.4f}, codes used per image {used}, "
        f"float32 vs float64 decode max |diff| {(d32 - io['decoded']).abs().max():.2e}, "
        f"eps 1e-6 vs 1e-5 decode max |diff| {(io['decoded'] - io_h['decoded']).abs().max():.2e}"
    )

    sd = {k: v.contiguous() for k, v in model.state_dict().items()}
    save(sd, out / "tiny_model" / "vqgan" / "model.safetensors")
    write_json(cfg.to_json(), out / "tiny_model" / "vqgan" / "config.json")
    save(io, out / "io" / "vqgan.safetensors")

    hsd = taming_to_hfai(sd, cfg)
    save(hsd, out / "vqgan_hfai" / "model.safetensors")
    write_json(hfai_cfg.to_json(), out / "vqgan_hfai" / "config.json")
    save(io_h, out / "vqgan_hfai" / "io.safetensors")


def main(out: Path = FIXTURES) -> None:
    torch.set_num_threads(1)
    (out / "io").mkdir(parents=True, exist_ok=True)
    tok = make_tokenizer(out)
    stats: dict = {
        "min_gap": MIN_LOGIT_GAP,
        "min_margin": MIN_CODE_MARGIN,
        "captions": CAPTIONS_FOR_FIXTURE,
    }
    _, clip_io = make_clip(out, tok, stats)
    cond = f32(F.normalize(clip_io["text_embeds"].double(), dim=-1))
    _, gpt_io = make_gpt(out, cond, stats)
    make_vqgan(out, gpt_io["greedy_tokens"], stats)
    write_json(
        {
            "format": "clipgen",
            "version": 1,
            "name": "tiny-fixture",
            "clip": {
                "layout": "hf",
                "config": "clip/config.json",
                "weights": "clip/model.safetensors",
            },
            "tokenizer": {
                "vocab": "tokenizer/vocab.json",
                "merges": "tokenizer/merges.txt",
                "context_length": 77,
            },
            "gpt": {"config": "gpt/config.json", "weights": "gpt/model.safetensors"},
            "vqgan": {
                "layout": "taming",
                "config": "vqgan/config.json",
                "weights": "vqgan/model.safetensors",
            },
        },
        out / "tiny_model" / "model.json",
    )
    write_readme(out, stats)
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"fixtures written to {out} ({total / 1e6:.2f} MB)")


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=FIXTURES, help="fixture directory")
    main(parser.parse_args().out)
