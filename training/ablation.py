"""Ablation of lambda (L_emb), embedding noise and guidance, from short prior runs.

Self-contained from an exported model directory: its CLIP and VQGAN are frozen, fresh world
images (training combinations only) are encoded into shards, and one short prior is trained
per variant with everything else equal (same seed, steps, batch, data). Guidance is a
sampling setting, so it is measured on the baseline prior. Each variant is scored with the
Python sampler (same weights and sampling steps as the engine) on the 24 held-out prompts
and 24 in-distribution prompts, without reranking (candidates 1, `n` images per prompt) and
with it (best of 16).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing as mp
import shutil
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

from . import world
from .common import Dist, atomic_write_text, log, read_jsonl
from .evaluate import quick_accuracy
from .export import load_model_dir
from .prior_train import PriorTrainConfig, make_shards, train_prior

VARIANTS = {
    "baseline": {},
    "lambda=0 (no L_emb)": {"emb_lambda": 0.0},
    "noise=0": {"noise": 0.0},
    "no condition dropout": {"cond_dropout": 0.0},
    "estimator=gumbel": {"estimator": "gumbel"},
    "estimator=soft": {"estimator": "soft"},
}
DEFAULT_VARIANTS = ("baseline", "lambda=0 (no L_emb)", "noise=0")
GUIDANCE = (1.0, 2.0, 3.0)
SAMPLING = {"temperature": 0.7, "top_k": 20}  # as make eval


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, default=Path("samples/model"))
    p.add_argument("--out", type=Path, default=Path("runs/ablation"))
    p.add_argument("--images", type=int, default=8000)
    p.add_argument("--steps", type=int, default=900)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--variants", default=",".join(DEFAULT_VARIANTS),
                   help=f"comma-separated, from: {', '.join(VARIANTS)}")
    p.add_argument("--n", type=int, default=4, help="images per prompt")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=3, help="variants trained at once (processes)")
    p.add_argument("--prompts", type=int, default=24, help="prompts per split")


def run_ablation(args) -> dict:
    out = Path(args.out)
    t0 = time.time()
    _reuse_or_wipe(out, args)
    clip, _, _, vq = load_model_dir(args.model)
    scenes = world.sample_scenes(args.images, 4242, world.training_scenes())
    make_shards(world.render_many(scenes, 4242), clip, vq, out)
    base = PriorTrainConfig(steps=args.steps, batch=args.batch, seed=args.seed,
                            checkpoint_every=10**9)
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variants {unknown}; known: {list(VARIANTS)}")
    jobs = [(name, replace(base, **VARIANTS[name]), args) for name in names]
    if args.jobs > 1 and len(jobs) > 1:
        ctx = mp.get_context("spawn")
        with ctx.Pool(min(args.jobs, len(jobs))) as pool:
            results = pool.starmap(_variant, jobs)
    else:
        results = [_variant(*j) for j in jobs]
    rows = [r for rs in results for r in rs]
    result = {"how": _how(args), "rows": rows, "seconds": time.time() - t0}
    atomic_write_text(out / "ablation.json", json.dumps(result, indent=1) + "\n")
    return result


def _reuse_or_wipe(out: Path, args) -> None:
    """Shards and finished priors in `out` are reused only when they were made from the same
    model weights and settings; anything else is removed first."""
    h = hashlib.sha1()
    for f in sorted(Path(args.model).rglob("*.safetensors")):
        h.update(f.read_bytes())
    h.update(json.dumps([args.images, args.steps, args.batch, args.seed]).encode())
    stamp = out / "fingerprint.txt"
    if out.exists() and (not stamp.exists() or stamp.read_text() != h.hexdigest()):
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    stamp.write_text(h.hexdigest())


def _variant(name: str, cfg: PriorTrainConfig, args) -> list[dict]:
    """Trains one variant's prior and scores it (in its own process when --jobs > 1)."""
    torch.set_num_threads(1)
    out = Path(args.out)
    clip, tok, _, vq = load_model_dir(args.model)
    held = world.held_out_scenes()[: args.prompts]
    ind = world.sample_scenes(args.prompts, 31, world.training_scenes())
    tag = "".join(ch if ch.isalnum() else "_" for ch in name)
    t = time.time()
    gpt = train_prior(out / "shards", out, cfg, Dist(), clip, vq, name=f"prior-{tag}")
    train_s = time.time() - t
    nll = [r["nll"] for r in read_jsonl(out / f"prior-{tag}-metrics.jsonl") if "nll" in r]
    rows = []
    guidances = GUIDANCE if name == "baseline" and cfg.cond_dropout > 0 else (1.0,)
    for gs in guidances:
        row = {"name": name if gs == 1.0 else f"{name}, guidance {gs:g}",
               "config": asdict(cfg), "guidance": gs, "train_seconds": train_s,
               "final_nll": sum(nll[-3:]) / max(len(nll[-3:]), 1)}
        for cand in (1, 16):
            key = "" if cand == 1 else "_rerank16"
            row[f"held_out{key}"] = quick_accuracy(clip, tok, gpt, vq, held, args.n, cand,
                                                   seed=args.seed, guidance=gs, **SAMPLING)
            row[f"in_distribution{key}"] = quick_accuracy(clip, tok, gpt, vq, ind, 1, cand,
                                                          seed=args.seed, guidance=gs,
                                                          **SAMPLING)
        rows.append(row)
        log(f"ablation {row['name']}: held-out all {row['held_out']['all']:.3f} "
            f"(rerank {row['held_out_rerank16']['all']:.3f}), in-dist all "
            f"{row['in_distribution']['all']:.3f}")
    return rows


def _how(args) -> str:
    return (f"Short priors ({args.steps} steps, global batch {args.batch}, seed {args.seed}) "
            f"trained on {args.images} fresh world images with the exported model's frozen "
            f"CLIP and VQGAN; one setting changed per row. Scored by the judge with the Python "
            f"sampler (temperature 0.7, top-k 20, as make eval) on the 24 held-out prompts "
            f"({args.n} images each) and 24 in-distribution prompts (1 image each): plain "
            f"samples, and the best of 16 by CLIP score (_rerank16). Guidance rows reuse the "
            f"baseline prior.")


