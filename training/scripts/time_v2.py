"""Seconds per training step of the generation-2 built-in model's stages, at its planned sizes.

Runs the real loops (clip_train.train_clip with V2Task, vqgan_train.train_vqgan with the GAN
and perceptual terms on, prior_train.train_prior with L_emb) for a few steps into a temporary
directory, with 1 and 2 torch threads, float32 and bf16 autocast, and reads the time per step
off the loops' own metric logs (the first step, a warm-up, is not counted).

    OMP_NUM_THREADS=1 nice python training/scripts/time_v2.py [--steps 3] [--out runs/time-v2.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from training import builtin_v2 as b2
from training import models
from training import world_v2 as w2
from training.clip_train import V2Task, train_clip
from training.common import Dist, read_jsonl
from training.prior_train import make_shards, train_prior
from training.reference import tokenizer as bpe
from training.vqgan_train import train_vqgan


class _NoMetrics(V2Task):
    def metrics(self, clip, tok, cfg):
        return {}


def per_step(path: Path, steps: int) -> float:
    rows = {r["step"]: r["t"] for r in read_jsonl(path) if "t" in r}
    return (rows[steps - 1] - rows[0]) / (steps - 1)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--size", default="v2")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--stages", nargs="+", default=["clip", "vqgan", "prior"])
    p.add_argument("--precisions", nargs="+", default=["f32", "bf16"], choices=("f32", "bf16"))
    p.add_argument("--emb-lambda", type=float, default=None,
                   help="the prior's L_emb weight (default: the plan's; 0: no L_emb)")
    p.add_argument("--out", type=Path, default=Path("runs/time-v2.json"))
    args = p.parse_args()
    plan = b2.BuiltinV2Config() if args.size == "v2" else b2.tiny_config()
    if args.emb_lambda is not None:
        plan.prior.emb_lambda = args.emb_lambda
    sizes = b2.SIZES[args.size]
    conf = sizes.world_config
    d = Dist()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tok_dir = tmp / "tokenizer"
        bpe.write_files(bpe.learn_merges(w2.vocabulary_texts(conf), plan.clip.n_merges), tok_dir)
        vocab = len(models.Tokenizer.from_dir(tok_dir).encoder)
        clip = models.CLIP(sizes.clip_config(vocab)).eval()
        scenes = w2.sample_scenes(256, 1, conf)
        images = w2.render_many(scenes, 1, conf)
        vq = models.VQGAN(sizes.vqgan).eval()
        make_shards(images, clip, vq, tmp / "shards-run", show_progress=False)
        for threads in args.threads:
            torch.set_num_threads(threads)
            for bf16 in [x == "bf16" for x in args.precisions]:
                for stage in args.stages:
                    run = tmp / f"{stage}-{threads}-{bf16}"
                    if run.exists():
                        continue
                    run.mkdir()
                    t = time.time()
                    with b2.precision(bf16):
                        if stage == "clip":
                            (run / "tokenizer").symlink_to(tok_dir)
                            cfg = replace(plan.clip, steps=args.steps, pool=256,
                                          checkpoint_every=10**6)
                            train_clip(run, cfg, d, sizes.clip_config(vocab),
                                       task=_NoMetrics(conf, plan.hard_negatives))
                        elif stage == "vqgan":
                            cfg = replace(plan.vqgan, steps=args.steps, disc_start=0,
                                          checkpoint_every=10**6)
                            train_vqgan(images, run, cfg, d, sizes.vqgan, clip=clip,
                                        val_images=images[:16])
                        else:
                            cfg = replace(plan.prior, steps=args.steps, checkpoint_every=10**6)
                            train_prior(tmp / "shards-run" / "shards", run, cfg, d, clip, vq,
                                        sizes.gpt_config(clip.config.embed_dim))
                    s = per_step(run / f"{stage}-metrics.jsonl", args.steps)
                    row = {"stage": stage, "threads": threads, "bf16": bf16,
                           "emb_lambda": plan.prior.emb_lambda if stage == "prior" else None,
                           "seconds_per_step": round(s, 3), "batch": cfg.batch,
                           "wall": round(time.time() - t, 1)}
                    results.append(row)
                    print(json.dumps(row), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"size": args.size, "rows": results}, indent=1) + "\n")


if __name__ == "__main__":
    main()
