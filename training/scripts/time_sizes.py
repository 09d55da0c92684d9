"""Seconds per training step of each size at one thread (VQGAN: global batch 8, GAN and
CLIP perceptual term on; prior: batch 16, L_emb on 2 rows), on random images, with the
committed stand-in CLIP. A few steps each: a rough figure for the README.

    OMP_NUM_THREADS=1 PYTHONPATH=. python training/scripts/time_sizes.py [SIZE ...]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from training import common, models, pipeline
from training.prior_train import PriorTrainConfig, make_shards, train_prior
from training.vqgan_train import VQGANTrainConfig, train_vqgan


def per_step(path: Path) -> float:
    rows = [r for r in common.read_jsonl(path) if "t" in r]
    return (rows[-1]["t"] - rows[0]["t"]) / (rows[-1]["step"] - rows[0]["step"])


def main(sizes: list[str], steps: int = 4) -> None:
    torch.set_num_threads(1)
    clip = pipeline.load_clip(ROOT / "samples" / "model")[0]
    d = common.Dist()
    print("| size | resolution | tokens | VQGAN params | prior params | s/step VQGAN | "
          "s/step prior |")
    for name in sizes:
        p = models.size_preset(name)
        vcfg = p.vqgan_config()
        images = np.random.default_rng(0).integers(0, 256, (32, vcfg.resolution,
                                                            vcfg.resolution, 3), np.uint8)
        with tempfile.TemporaryDirectory() as tmp:
            vq = train_vqgan(images, Path(tmp), VQGANTrainConfig(
                steps=steps, batch=8, disc_start=0, checkpoint_every=10**9), d, vcfg, clip,
                val_images=images[:2])
            make_shards(images, clip, vq, Path(tmp), show_progress=False)
            gcfg = p.gpt_config(vcfg.n_embed, vcfg.grid**2, clip.config.embed_dim)
            gpt = train_prior(Path(tmp) / "shards", Path(tmp), PriorTrainConfig(
                steps=steps, batch=16, emb_batch=2, checkpoint_every=10**9), d, clip, vq,
                gcfg)
            n_vq = sum(x.numel() for x in vq.parameters())
            n_gpt = sum(x.numel() for x in gpt.parameters())
            print(f"| {name} | {vcfg.resolution} | {vcfg.grid}x{vcfg.grid} | {n_vq / 1e6:.2f} M | "
                  f"{n_gpt / 1e6:.2f} M | {per_step(Path(tmp) / 'vqgan-metrics.jsonl'):.3f} | "
                  f"{per_step(Path(tmp) / 'prior-metrics.jsonl'):.3f} |", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or ["tiny", "builtin", "laptop"])
