"""The stand-in CLIP: a small BPE vocabulary and contrastive training on the world.

It plays the part of a pretrained CLIP, so it sees the whole world (held-out pairs
included), with captions that name some or all of a scene's attributes. Because the world
is small, a batch often holds several images a caption describes equally well; the loss
is therefore InfoNCE with *multiple positives*: the target distribution of an image's row
is uniform over the captions in the batch consistent with it (and likewise per caption).
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import models, world
from .common import (
    Dist,
    MetricLog,
    Progress,
    atomic_save,
    cosine_lr,
    load_checkpoint,
    log,
    step_generator,
)
from .reference import tokenizer as bpe


@dataclass
class CLIPTrainConfig:
    steps: int = 300  # optimisation steps
    batch: int = 128  # global batch (images = captions)
    lr: float = 1e-3
    warmup: int = 100
    weight_decay: float = 0.05
    pool: int = 12000  # rendered images to draw batches from
    train_context: int = 16  # text positions used in training (causal: longer is unused)
    n_merges: int = 400  # BPE merges learned from the world's captions
    seed: int = 0
    checkpoint_every: int = 200


def build_tokenizer(out_dir: Path, n_merges: int) -> bpe.Tokenizer:
    merges = bpe.learn_merges(world.caption_vocabulary_texts(), n_merges)
    bpe.write_files(merges, out_dir)
    return bpe.Tokenizer.from_dir(out_dir)


def compatible(a: dict[str, str], b: dict[str, str]) -> bool:
    return all(b.get(k, v) == v for k, v in a.items())


def make_batch(pool_scenes, pool_images, tok, cfg: CLIPTrainConfig, step: int):
    """(pixels [B, 3, R, R] CLIP-normalised, ids [B, L], targets [B, B]) for the global batch."""
    g = step_generator(cfg.seed, step)
    idx = torch.randint(len(pool_scenes), (cfg.batch,), generator=g).tolist()
    rng = random.Random(int(torch.randint(2**31, (1,), generator=g)))
    scenes = [pool_scenes[i] for i in idx]
    caps = [world.random_caption(s, rng) for s in scenes]
    ids = models.tokenize(tok, [c for c, _ in caps], cfg.train_context)
    named = [n for _, n in caps]
    attrs = [s.attributes() for s in scenes]
    match = torch.tensor([[compatible(named[j], attrs[i]) for j in range(len(idx))]
                          for i in range(len(idx))], dtype=torch.float32)  # [img, txt]
    x = models.clip_normalize(models.uint8_to_unit(pool_images[idx]), world.RESOLUTION)
    return x, ids, match


def contrastive_loss(img: torch.Tensor, txt: torch.Tensor, scale: torch.Tensor,
                     match: torch.Tensor) -> torch.Tensor:
    logits = scale * F.normalize(img, dim=-1) @ F.normalize(txt, dim=-1).t()
    t_img = match / match.sum(1, keepdim=True)
    t_txt = match.t() / match.t().sum(1, keepdim=True)
    li = -(t_img * logits.log_softmax(1)).sum(1).mean()
    lt = -(t_txt * logits.t().log_softmax(1)).sum(1).mean()
    return (li + lt) / 2


@torch.no_grad()
def zero_shot_top1(clip, tok, images: np.ndarray, scenes: list[world.Scene]) -> float:
    """Fraction of images whose best-scoring caption among all 180 canonical captions is
    their own."""
    clip.eval()
    everything = world.all_scenes()
    t = models.encode_texts(clip, tok, [world.prompt(s) for s in everything])
    e = models.encode_images(clip, images)
    pred = (e @ t.t()).argmax(1)
    want = torch.tensor([everything.index(s) for s in scenes])
    return float((pred == want).float().mean())


def train_clip(out: Path, cfg: CLIPTrainConfig, d: Dist, model_cfg=None,
               resume: bool = True) -> tuple[models.CLIP, bpe.Tokenizer]:
    """Trains the stand-in CLIP into out/ (tokenizer/, clip.pt, clip-metrics.jsonl)."""
    out = Path(out)
    tok_dir = out / "tokenizer"
    if d.main and not (tok_dir / "merges.txt").exists():
        build_tokenizer(tok_dir, cfg.n_merges)
    d.barrier()
    tok = bpe.Tokenizer.from_dir(tok_dir)
    mcfg = model_cfg or models.builtin_clip_config(len(tok.encoder))
    torch.manual_seed(cfg.seed)
    clip = models.CLIP(mcfg)
    opt = torch.optim.AdamW(clip.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                            betas=(0.9, 0.98))
    ckpt_path = out / "clip.pt"
    start = 0
    ck = load_checkpoint(ckpt_path) if resume else None
    if ck is not None:
        clip.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        start = ck["step"]
        log(f"clip: resuming at step {start}", d)
    if start >= cfg.steps:
        return clip.eval(), tok

    pool_scenes = world.sample_scenes(cfg.pool, cfg.seed + 11, world.all_scenes())
    pool_images = world.render_many(pool_scenes, cfg.seed + 11)
    val_scenes = world.sample_scenes(720, cfg.seed + 12, world.all_scenes())
    val_images = world.render_many(val_scenes, cfg.seed + 12)

    metrics = MetricLog(out / "clip-metrics.jsonl", d.main, truncate_after=start or None)
    bar = Progress(cfg.steps, "clip", start, d.main)
    t0 = time.time()
    for step in range(start, cfg.steps):
        clip.train()
        for group in opt.param_groups:
            group["lr"] = cosine_lr(step, cfg.steps, cfg.lr, cfg.warmup)
        x, ids, match = make_batch(pool_scenes, pool_images, tok, cfg, step)
        s = d.slice(cfg.batch)
        # Each rank encodes its slice and gathers the others' embeddings (without their
        # graphs): the rank's backward yields its rows' share of the full gradient; summing
        # the shares over ranks (loss x world, then averaged) gives one process's gradient.
        # logit_scale sees the whole matrix on every rank, so its gradient is not scaled.
        img_all = _gather(clip.encode_image(x[s]), d)
        txt_all = _gather(clip.encode_text(ids[s]), d)
        scale = clip.logit_scale.exp().clamp(max=100)
        loss = contrastive_loss(img_all, txt_all, scale, match)
        opt.zero_grad(set_to_none=True)
        (loss * d.world).backward()
        _sync_grads(clip, d)
        if d.world > 1:
            clip.logit_scale.grad /= d.world
        opt.step()
        if step % 20 == 0 or step == cfg.steps - 1:
            metrics.write(step=step, loss=float(loss.detach()), scale=float(scale.detach()),
                          t=time.time() - t0)
        bar.update(loss=float(loss.detach()))
        if ((step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps) and d.main:
            atomic_save({"model": clip.state_dict(), "opt": opt.state_dict(),
                         "step": step + 1, "config": asdict(mcfg)}, ckpt_path)
    if d.main:
        acc = zero_shot_top1(clip, tok, val_images, val_scenes)
        metrics.write(step=cfg.steps, zero_shot_top1=acc)
        (out / "clip-summary.json").write_text(json.dumps({"zero_shot_top1": acc}) + "\n")
        log(f"clip: zero-shot caption top-1 {acc:.3f}", d)
    return clip.eval(), tok


def _gather(t: torch.Tensor, d: Dist) -> torch.Tensor:
    """All ranks' rows in rank order; the local rows keep their gradient."""
    if d.world == 1:
        return t
    import torch.distributed as dist

    parts = [torch.empty_like(t) for _ in range(d.world)]
    dist.all_gather(parts, t.detach().contiguous())
    parts[d.rank] = t
    return torch.cat(parts)


def _sync_grads(model: torch.nn.Module, d: Dist) -> None:
    """Averages gradients across ranks (the CLIP loop is not wrapped by DDP because its loss
    needs the gathered embeddings)."""
    if d.world == 1:
        return
    import torch.distributed as dist

    for p in model.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad /= d.world
