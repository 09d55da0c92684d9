"""The built-in model, generation 2: world v2 -> stand-in CLIP -> VQGAN -> shards -> prior ->
export -> default sampling settings (issue 8).

    python -m training.builtin_v2 --out runs/model-v2 --export samples/model-v2
    OMP_NUM_THREADS=1 python -m torch.distributed.run --standalone --nproc-per-node=2 \\
        -m training.builtin_v2 --threads 1 --out runs/model-v2 --export samples/model-v2

Stages, each resumable (started again, a finished stage is skipped and an interrupted one
continues from its last checkpoint):
    world    world v2 images for the generator (held-out combinations never among them) as
             PNGs in RUN/world/<single|pair>/ + attributes.jsonl; every rank renders its share
    clip     the stand-in CLIP on the whole world, paraphrased captions, hard negatives
             (clip_train.V2Task); metrics in RUN/clip-summary.json
    vqgan    64 px -> 16 x 16 tokens (f4, three levels), 1024 codes, taming layout
    shards   frozen CLIP embeddings + VQGAN tokens of the training images
    prior    GPT over the 256-token sequence, L_emb lambda 0.2, condition noise and dropout
    export   the engine's model directory (+ training-log/)
    defaults model.json "defaults" by a sweep on in-distribution *validation* prompts of world
             v2 (evaluation_prompts with another seed; never the held-out ones), and
             "sample_prompts" (one held-out example among them); skipped when model.json
             already has defaults for these very weights
`--bf16` runs the VQGAN and prior steps under CPU bf16 autocast (AVX-512 BF16; weights,
optimiser state, shards and exports stay float32/float16 as without it).
`--size tiny` is the test configuration (the TINY world, tiny networks: seconds).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal, get_args

import torch

from . import data, defaults, models
from . import world_v2 as w2
from .clip_train import CLIPTrainConfig, V2Task, train_clip
from .common import (
    Dist,
    atomic_write_text,
    init_distributed,
    log,
    set_threads,
    weights_hash,
)
from .pipeline import (
    copy_training_log,
    export_run,
    load_data,
    record_fingerprint,
    run_fingerprints,
    stage_shards,
    stage_vqgan,
)
from .prior_train import PriorTrainConfig, prior_inputs, train_prior
from .vqgan_train import VQGANTrainConfig
from .vqgan_train import evaluate as vq_evaluate

MODEL_NAME = "builtin-shapes-v2"

SizeName = Literal["v2", "tiny"]  # the keys of SIZES
Stage = Literal["clip", "vqgan", "shards", "prior"]  # what --until stops after


# -- sizes ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SizesV2:
    """The networks of one generation-2 configuration."""

    name: SizeName
    world: w2.ConfigName  # "default" (64 px) or "tiny" (32 px, for tests)
    clip: models.CLIPConfig  # vocab_size filled in from the tokenizer
    vqgan: models.VQGANConfig
    n_layer: int  # prior
    n_embd: int
    n_head: int

    @property
    def world_config(self) -> w2.WorldConfig:
        return world_config(self.world)

    def clip_config(self, vocab_size: int) -> models.CLIPConfig:
        return replace(self.clip, vocab_size=vocab_size)

    def gpt_config(self, n_cond_embd: int) -> models.GPTConfig:
        return models.GPTConfig(vocab_size=self.vqgan.n_embed, n_layer=self.n_layer,
                                n_embd=self.n_embd, n_head=self.n_head,
                                block_size=self.vqgan.grid**2, n_cond_embd=n_cond_embd,
                                uncond_embedding=True, dropout=0.0)


def world_config(name: w2.ConfigName) -> w2.WorldConfig:
    return w2.CONFIGS[name]


SIZES: dict[SizeName, SizesV2] = {s.name: s for s in (
    SizesV2(
        "v2", "default",
        # 64 px in 16-px patches (4 x 4 grid, every pixel seen: 2-px pixel-art blocks and
        # 3-px stripes stay visible; 8-px patches cost 3.4x the step for 4x the tokens)
        models.CLIPConfig(embed_dim=128, image_resolution=64, vision_layers=4, vision_width=192,
                          vision_patch_size=16, context_length=77, vocab_size=0,
                          transformer_width=128, transformer_layers=3),
        # 64 px -> 16 x 16 tokens (f4: three levels), 1024 codes; 32 channels at full
        # resolution (64 cost 4x the step: 11.6 s at batch 16 on one loaded thread)
        models.VQGANConfig(embed_dim=32, n_embed=1024, ch=32, out_ch=3, ch_mult=(1, 2, 2),
                           num_res_blocks=1, attn_resolutions=(), in_channels=3, resolution=64,
                           z_channels=64, norm_eps=1e-6),
        6, 256, 8),
    SizesV2(
        "tiny", "tiny",
        models.CLIPConfig(embed_dim=32, image_resolution=32, vision_layers=1, vision_width=64,
                          vision_patch_size=8, context_length=77, vocab_size=0,
                          transformer_width=64, transformer_layers=1),
        models.VQGANConfig(embed_dim=8, n_embed=64, ch=32, out_ch=3, ch_mult=(1, 1, 1),
                           num_res_blocks=1, attn_resolutions=(), in_channels=3, resolution=32,
                           z_channels=32, norm_eps=1e-6),
        1, 32, 2),
)}


# -- configuration ------------------------------------------------------------------------------


@dataclass
class SweepConfig:
    """The defaults sweep (training/defaults.py) at this model's cost."""

    prompts: int = 24  # in-distribution validation prompts (all kinds, stratified)
    repeats: int = 1
    seed: int = 4242
    temperatures: tuple[float, ...] = (0.7, 1.0)
    top_ks: tuple[int, ...] = (0, 32)
    guidances: tuple[float, ...] = (1.0, 2.0, 3.0)
    candidates: tuple[int, ...] = (1, 4, 8)
    finalists: int = 2
    tolerance: float = 0.02

    def grid(self) -> defaults.Grid:
        return defaults.Grid(temperatures=self.temperatures, top_ks=self.top_ks,
                             guidances=self.guidances, candidates=self.candidates,
                             finalists=self.finalists, tolerance=self.tolerance)


@dataclass
class BuiltinV2Config:
    """The generation-2 plan. Steps per stage: see training/README.md (budget)."""

    size: SizeName = "v2"
    images: int = 20000  # world images rendered for the generator
    seed: int = 0
    bf16: bool = False  # VQGAN and prior steps under CPU bf16 autocast (slower here: README)
    hard_negatives: int = 2  # swapped-binding twins per caption in a CLIP batch
    # 1500 steps at lr 1e-3 plateaued for 500 steps and was still falling steeply when the
    # schedule ended (shape 0.31, position 0.12 zero-shot): gentler and longer
    clip: CLIPTrainConfig = field(default_factory=lambda: CLIPTrainConfig(
        steps=3000, batch=128, lr=5e-4, warmup=300, pool=16000, train_context=32,
        n_merges=600, checkpoint_every=100))
    # 2000 steps reached 24.4 dB (L2 flat from step 1400 as the rate decayed); continued to
    # 6000 it reached 31.1 dB with every code in use (training/README.md, "Measured")
    vqgan: VQGANTrainConfig = field(default_factory=lambda: VQGANTrainConfig(
        steps=6000, batch=16, disc_start=1500, checkpoint_every=100))
    # 1500 steps (0.4 steps/s here) drew colour, background and roughly the place right but
    # shapes as blobs (shape 0.25-0.5, style ~0; training/README.md): more steps
    prior: PriorTrainConfig = field(default_factory=lambda: PriorTrainConfig(
        steps=4000, batch=32, emb_lambda=0.2, emb_batch=4, noise=0.75, cond_dropout=0.1,
        checkpoint_every=100))
    sweep: SweepConfig = field(default_factory=SweepConfig)


def tiny_config() -> BuiltinV2Config:
    """Seconds per stage: the tests' configuration."""
    return BuiltinV2Config(
        size="tiny", images=160, bf16=False,
        clip=CLIPTrainConfig(steps=6, batch=16, warmup=2, pool=96, train_context=32,
                             n_merges=120, checkpoint_every=3),
        vqgan=VQGANTrainConfig(steps=6, batch=8, warmup=2, disc_start=4,
                               perceptual_weight=0.1, restart_every=3, checkpoint_every=3),
        prior=PriorTrainConfig(steps=6, batch=8, warmup=2, emb_batch=2, checkpoint_every=3),
        sweep=SweepConfig(prompts=4, temperatures=(1.0,), top_ks=(0,), guidances=(1.0, 2.0),
                          candidates=(1, 2), finalists=1))


def precision(bf16: bool):
    """CPU bf16 autocast (matmuls and convolutions in bf16, losses in float32) or nothing."""
    if bf16:
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


# -- the world as a folder ------------------------------------------------------------------------


def write_world_folder(out: Path, n: int, seed: int, config: w2.WorldConfig, d: Dist) -> None:
    """n generator images of world v2 (never a held-out combination) as
    out/<single|pair>/<i>.png, plus out/attributes.jsonl (ground truth, written last: the
    stage's done marker). Image i depends only on (seed, i); each rank renders every
    world-th image and skips those already there."""
    out = Path(out)
    if (out / "attributes.jsonl").exists():
        return
    scenes = w2.sample_scenes(n, seed, config, held_out=False)

    def rel(i: int, s: w2.Scene) -> str:
        return f"{'pair' if s.is_pair else 'single'}/{i:06d}.png"

    for i in range(d.rank, n, d.world):
        path = out / rel(i, scenes[i])
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        img = w2.render(scenes[i], seed=seed * 1_000_003 + i, config=config)
        tmp = path.with_name(f".{path.name}.tmp.png")
        img.save(tmp, compress_level=1)
        tmp.replace(path)
    d.barrier()
    if d.main:
        rows = [json.dumps({"file": rel(i, s), "prompt": w2.prompt(s), **s.attributes()})
                for i, s in enumerate(scenes)]
        atomic_write_text(out / "attributes.jsonl", "\n".join(rows) + "\n")
        log(f"wrote {n} world v2 images to {out} (no held-out combinations)")
    d.barrier()


# -- the defaults sweep ---------------------------------------------------------------------------


def sweep_defaults(model_dir: Path, cfg: BuiltinV2Config, log_fn=print) -> dict:
    """The sweep on the exported model (Python sampler over the exported weights), written
    into model.json with the v2 sample prompts."""
    conf = world_config(SIZES[cfg.size].world)
    gen, has_guidance = defaults.python_generator(model_dir)
    cases = defaults.v2_cases(cfg.sweep.prompts, cfg.sweep.seed, conf)
    log_fn(f"defaults: sweeping on {len(cases)} in-distribution validation prompts")
    record = defaults.sweep(gen, cases, defaults.v2_judge(conf), cfg.sweep.grid(), has_guidance,
                            cfg.sweep.repeats, cfg.sweep.seed, log=log_fn)
    record["world"] = "v2"
    record["weights"] = _model_fingerprints(model_dir)
    defaults.write_defaults(model_dir, record["defaults"], defaults.v2_sample_prompts(conf),
                            record)
    log_fn(f"defaults: {record['defaults']} (all {record['chosen']['accuracy']:.3f})")
    return record


def _model_fingerprints(model_dir: Path) -> dict | None:
    m = json.loads((Path(model_dir) / "model.json").read_text())
    return m.get("fingerprints")


def _same(a, b) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


# -- the pipeline ---------------------------------------------------------------------------------


STAGES: tuple[Stage, ...] = get_args(Stage)


def build(run: Path, export: Path | None, cfg: BuiltinV2Config, d: Dist,
          sweep: bool = True, until: Stage | None = None) -> dict:
    """Every stage (see the module's docstring), or those up to `until` (one of STAGES; no
    export). Returns the seconds each stage took in this invocation (a skipped stage: about
    0)."""
    run = Path(run)
    run.mkdir(parents=True, exist_ok=True)
    sizes = SIZES[cfg.size]
    conf = sizes.world_config
    times: dict[str, float] = {}
    t_start = t = time.time()
    if d.main:
        atomic_write_text(run / "config.json", json.dumps(asdict(cfg), indent=1) + "\n")

    write_world_folder(run / "world", cfg.images, cfg.seed + 100, conf, d)
    times["world"] = time.time() - t

    t = time.time()
    clip = _stage_clip(run, cfg, d)
    times["clip"] = time.time() - t
    if until == "clip":
        return _stopped(run, times, t_start, d)

    t = time.time()
    f = load_data(run / "world", run, data.DecodeOptions(conf.resolution), d)
    times["load"] = time.time() - t

    t = time.time()
    with precision(cfg.bf16):
        vq = stage_vqgan(f, run, cfg.vqgan, d, sizes.vqgan, clip)
    if d.main and cfg.bf16:  # the summary again in float32 (the numbers the engine gets)
        summary = vq_evaluate(vq, f.val)
        summary.update(images=len(f.val), weights=weights_hash(vq), measured="float32")
        atomic_write_text(run / "vqgan-summary.json", json.dumps(summary) + "\n")
    times["vqgan"] = time.time() - t
    if until == "vqgan":
        return _stopped(run, times, t_start, d)

    t = time.time()
    stage_shards(f, clip, vq, run, d)
    times["shards"] = time.time() - t
    if until == "shards":
        return _stopped(run, times, t_start, d)

    t = time.time()
    gpt_cfg = sizes.gpt_config(clip.config.embed_dim)
    with precision(cfg.bf16):
        gpt = train_prior(run / "shards", run, cfg.prior, d, clip, vq, gpt_cfg)
    if d.main:
        record_fingerprint(run, "prior", {"inputs": prior_inputs(run / "shards", gpt.config),
                                          "weights": weights_hash(gpt)})
    times["prior"] = time.time() - t
    if until == "prior":
        return _stopped(run, times, t_start, d)

    if d.main and export is not None:
        _stage_export(run, Path(export), cfg, clip, vq, gpt, sweep, times, t_start)
    return times


def _stage_clip(run: Path, cfg: BuiltinV2Config, d: Dist) -> models.CLIP:
    """The stand-in CLIP on the whole world (its tokenizer learnt first, so the CLIP's
    vocabulary size is known)."""
    sizes = SIZES[cfg.size]
    task = V2Task(sizes.world_config, cfg.hard_negatives)
    tok_dir = run / "tokenizer"
    vocab = None
    if (tok_dir / "vocab.json").exists():
        vocab = len(models.Tokenizer.from_dir(tok_dir).encoder)
    elif d.main:
        from .reference import tokenizer as bpe

        bpe.write_files(bpe.learn_merges(task.vocabulary_texts(), cfg.clip.n_merges), tok_dir)
    d.barrier()
    vocab = vocab or len(models.Tokenizer.from_dir(tok_dir).encoder)
    clip, _tok = train_clip(run, cfg.clip, d, sizes.clip_config(vocab), task=task)
    return clip


def _stage_export(run: Path, export: Path, cfg: BuiltinV2Config, clip: models.CLIP,
                  vq: models.VQGAN, gpt: models.GPT, sweep: bool, times: dict,
                  t_start: float) -> None:
    """Export (unless `export` holds these very weights) and the defaults sweep (unless
    done for them), then the times and the training log (rank 0 only)."""
    t = time.time()
    fp = run_fingerprints(run, clip, vq, gpt)
    fresh = (export / "model.json").exists() and _same(_model_fingerprints(export), fp)
    if not fresh:
        export_run(run, export, clip, run / "tokenizer", gpt, vq, name=MODEL_NAME)
    times["export"] = time.time() - t
    t = time.time()
    manifest = json.loads((export / "model.json").read_text())
    swept = (export / "training-log" / "defaults-sweep.json").exists()
    if sweep and not (fresh and "defaults" in manifest and swept):
        sweep_defaults(export, cfg, log_fn=lambda m: log(m))
    times["defaults"] = time.time() - t
    times["total"] = time.time() - t_start
    _record_times(run, times)
    copy_training_log(run, export / "training-log")
    log(f"exported the generation-2 built-in model to {export} "
        f"({times['total']:.0f} s in this run)")


def _stopped(run: Path, times: dict, t_start: float, d: Dist) -> dict:
    times["total"] = time.time() - t_start
    if d.main:
        _record_times(run, times)
    return times


def _record_times(run: Path, times: dict) -> None:
    """timings.json: this invocation's stage times, and the sum over every invocation (a
    resumed run adds up)."""
    path = Path(run) / "timings.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    total = {k: old.get("cumulative", {}).get(k, 0.0) + v for k, v in times.items()}
    atomic_write_text(path, json.dumps({**times, "cumulative": total}, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.builtin_v2", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/model-v2"), help="run directory")
    p.add_argument("--export", type=Path, default=None,
                   help="engine model directory to export to (e.g. samples/model-v2)")
    p.add_argument("--size", choices=sorted(SIZES), default="v2",
                   help="v2: the built-in model; tiny: the tests' (seconds)")
    p.add_argument("--threads", type=int, default=None, help="torch threads per process")
    p.add_argument("--bf16", type=lambda s: s.lower() in ("1", "true", "yes", "on"),
                   default=None, metavar="BOOL", help="bf16 autocast of the VQGAN and prior steps (default off: slower on this CPU, see README)")
    p.add_argument("--no-sweep", action="store_true", help="export without the defaults sweep")
    for stage in ("clip", "vqgan", "prior"):
        p.add_argument(f"--{stage}-steps", type=int, default=None,
                       help=f"{stage} steps (default: the plan's)")
    p.add_argument("--until", choices=STAGES, default=None,
                   help="stop after this stage (no export); a later run resumes from there")
    args = p.parse_args(argv)
    set_threads(args.threads)
    d = init_distributed()
    cfg = tiny_config() if args.size == "tiny" else BuiltinV2Config()
    if args.bf16 is not None:
        cfg.bf16 = args.bf16
    for stage in ("clip", "vqgan", "prior"):
        steps = getattr(args, f"{stage}_steps")
        if steps is not None:
            getattr(cfg, stage).steps = steps
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    build(args.out, args.export, cfg, d, sweep=not args.no_sweep, until=args.until)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
