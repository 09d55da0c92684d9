"""Stage 1: the VQGAN (taming architecture) trained on images alone.

Loss (per step, images x in [-1, 1]):
    rec    = |x - x^|_1 + |x - x^|_2^2                 (L1 for sharpness, L2 for PSNR)
           + perceptual_weight * perceptual(x, x^)      optional, see below
    vq     = |sg(z) - z_q|^2 + beta |z - sg(z_q)|^2     codebook + commitment
    adv    = -D(x^) (hinge generator loss), weighted by
             w = disc_weight * |grad_last rec| / (|grad_last adv| + 1e-4), clamped to [0, 1e4]
             (taming's adaptive weight; grad_last = gradient w.r.t. decoder.conv_out.weight),
             and only from step disc_start on
    D      = mean(relu(1 - D(x))) + mean(relu(1 + D(x^)))  (hinge), from disc_start on
Perceptual term: no pretrained LPIPS/VGG weights can be had offline, so when a CLIP is given
its image tower serves as the perceptual network: the squared distance between the token
states of every vision layer (each divided by its feature size) of x and x^.
Codebook kept alive: a code that no vector chose during the last `restart_every` steps is
replaced by an encoder output drawn from the current global batch (plus a little noise).
Usage is reported as the fraction of codes used on a validation set.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import models
from .common import (
    Dist,
    UserError,
    atomic_write_text,
    describe_change,
    log,
    step_generator,
    unwrap,
    weights_hash,
    wrap_ddp,
)
from .loop import TrainLoop


@dataclass
class VQGANTrainConfig:
    steps: int = 1200
    batch: int = 16  # global batch
    lr: float = 1e-3
    warmup: int = 50
    beta: float = 0.25  # commitment
    disc_start: int = 900  # step at which the adversarial terms switch on (-1: never)
    disc_weight: float = 0.1
    disc_lr: float = 2e-4
    perceptual_weight: float = 0.1  # needs a CLIP (its vision tower is the feature network)
    restart_every: int = 50  # dead-code restart period (0: off)
    seed: int = 0
    checkpoint_every: int = 250


HELP = {
    "steps": "optimisation steps (a finished run given more steps resumes and continues)",
    "batch": "global batch (images per step, over all processes)",
    "lr": "peak learning rate (cosine schedule)",
    "warmup": "linear warm-up steps",
    "beta": "commitment loss weight",
    "disc_start": "step at which the GAN terms switch on (-1: never)",
    "disc_weight": "adversarial weight (times taming's adaptive weight)",
    "disc_lr": "discriminator learning rate",
    "perceptual_weight": "CLIP-feature perceptual term (needs --clip; 0: off)",
    "restart_every": "dead-code restart period in steps (0: off)",
    "seed": "random seed (data order, restarts)",
    "checkpoint_every": "steps between checkpoints (a run resumes from the last one)",
}


def to_model_range(images_u8) -> torch.Tensor:
    return models.uint8_to_unit(images_u8) * 2 - 1


def perceptual(clip: models.CLIP, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    r = clip.config.image_resolution
    fx = clip.visual.forward_states(models.clip_normalize((x + 1) / 2, r))["layers"]
    fy = clip.visual.forward_states(models.clip_normalize((y.clamp(-1, 1) + 1) / 2, r))["layers"]
    return sum(F.mse_loss(a, b.detach()) for a, b in zip(fy, fx, strict=True)) / len(fx)


@torch.no_grad()
def evaluate(vq: models.VQGAN, images: np.ndarray, batch: int = 256) -> dict:
    """PSNR (dB, on 8-bit pixels after decoding) and codebook usage over `images`."""
    vq.eval()
    used = torch.zeros(vq.config.n_embed, dtype=torch.bool)
    se, count = 0.0, 0
    for i in range(0, len(images), batch):
        x = to_model_range(images[i : i + batch])
        idx = vq.encode(x)["indices"]
        used[idx.flatten()] = True
        y = vq.decode_indices(idx)
        yq = ((y.clamp(-1, 1) + 1) / 2 * 255).round()
        xq = torch.as_tensor(np.array(images[i : i + batch])).permute(0, 3, 1, 2).float()
        se += float(((yq - xq) ** 2).sum())
        count += xq.numel()
    mse = se / count
    return {"psnr_db": 10 * math.log10(255**2 / max(mse, 1e-10)),
            "codebook_usage": float(used.float().mean()), "codes_used": int(used.sum())}


def train_vqgan(images: np.ndarray, out: Path, cfg: VQGANTrainConfig, d: Dist,
                model_cfg: models.VQGANConfig | None = None, clip: models.CLIP | None = None,
                resume: bool = True, val_images: np.ndarray | None = None,
                inputs: dict | None = None) -> models.VQGAN:
    """Trains on uint8 [N, R, R, 3] images; writes out/vqgan.pt, vqgan-metrics.jsonl,
    vqgan-summary.json (PSNR and codebook usage on `val_images`, the held-out files).
    `inputs` (the data set's fingerprint) is stored in the checkpoint; resuming a checkpoint
    whose inputs or sizes differ raises UserError: its weights belong to another data set."""
    out = Path(out)
    mcfg = model_cfg or models.builtin_vqgan_config()
    if images.shape[1] != mcfg.resolution:
        raise ValueError(f"images are {images.shape[1]}px, the VQGAN wants {mcfg.resolution}")
    if val_images is None or len(val_images) == 0:
        val_images = images[: max(1, int(len(images) * 0.05))]
    torch.manual_seed(cfg.seed)
    vq = models.VQGAN(mcfg)
    disc = models.PatchDiscriminator()
    opt = torch.optim.Adam(vq.parameters(), lr=cfg.lr, betas=(0.5, 0.9))
    dopt = torch.optim.Adam(disc.parameters(), lr=cfg.disc_lr, betas=(0.5, 0.9))
    usage = torch.zeros(mcfg.n_embed)
    loop = TrainLoop("vqgan", out, d, cfg.steps, cfg.checkpoint_every, metrics_every=10)
    ck = loop.load(resume)
    if ck is not None:
        _check_resume(ck, loop.path, mcfg, inputs, d)
        loop.resume(ck, model=vq, disc=disc, opt=opt, dopt=dopt)
        usage = ck["usage"]
    if clip is not None and cfg.perceptual_weight > 0:
        models.freeze(clip)
    model = wrap_ddp(AutoencoderStep(vq, cfg.beta), d)
    dmodel = wrap_ddp(disc, d)
    inputs = inputs or (ck or {}).get("inputs")

    def state(done: int) -> dict:
        return {"model": vq.state_dict(), "disc": disc.state_dict(), "opt": opt.state_dict(),
                "dopt": dopt.state_dict(), "usage": usage, "step": done,
                "config": mcfg.to_json(), "inputs": inputs}

    for step in loop.steps():
        vq.train()
        lr = loop.set_lr(opt, step, cfg.lr, cfg.warmup)
        g = step_generator(cfg.seed, step)
        idx = torch.randint(len(images), (cfg.batch,), generator=g)
        x = to_model_range(images[idx[d.slice(cfg.batch)].numpy()])
        losses = _train_step(vq, model, disc, dmodel, opt, dopt, x, cfg, clip,
                             gan=0 <= cfg.disc_start <= step, d=d)

        # -- keep the codebook alive
        counts = torch.bincount(losses.codes.flatten(), minlength=mcfg.n_embed).float()
        usage += d.all_reduce_mean(counts) * d.world
        if cfg.restart_every and (step + 1) % cfg.restart_every == 0:
            _restart_dead(vq, usage, losses.z, g, d)
            usage.zero_()

        if loop.metrics_due(step):
            # the global batch's means (every rank joins the reduction)
            vals = d.all_reduce_mean(torch.stack([losses.l1, losses.l2, losses.qloss,
                                                  losses.d_loss]).detach())
            loop.write_metrics(step=step, l1=float(vals[0]), l2=float(vals[1]),
                               vq=float(vals[2]), adv_weight=float(losses.adv_w),
                               d_loss=float(vals[3]), lr=lr)
        loop.end_step(step, state, l1=float(losses.l1.detach()))
    vq.eval()
    if d.main:
        summary = evaluate(vq, val_images)
        summary.update(images=len(val_images), weights=weights_hash(vq))
        loop.metrics.write(step=cfg.steps, **summary)
        atomic_write_text(out / "vqgan-summary.json", json.dumps(summary) + "\n")
        log(f"vqgan: PSNR {summary['psnr_db']:.2f} dB, codebook usage "
            f"{summary['codebook_usage']:.3f} ({summary['codes_used']} codes) on "
            f"{len(val_images)} held-out images", d)
    return vq


@dataclass
class StepLosses:
    """What one step's metrics and codebook upkeep need from the training step."""

    l1: torch.Tensor
    l2: torch.Tensor
    qloss: torch.Tensor
    d_loss: torch.Tensor
    adv_w: torch.Tensor
    codes: torch.Tensor
    z: torch.Tensor


def _train_step(vq: models.VQGAN, model: torch.nn.Module, disc: torch.nn.Module,
                dmodel: torch.nn.Module, opt: torch.optim.Optimizer,
                dopt: torch.optim.Optimizer, x: torch.Tensor, cfg: VQGANTrainConfig,
                clip: models.CLIP | None, gan: bool, d: Dist) -> StepLosses:
    """One optimisation step: the autoencoder (reconstruction + VQ + adaptively weighted
    adversarial term), then the discriminator (from disc_start on)."""
    xr, qloss, codes, z = model(x)
    l1 = (x - xr).abs().mean()
    l2 = F.mse_loss(xr, x)
    rec = l1 + l2
    if clip is not None and cfg.perceptual_weight > 0:
        rec = rec + cfg.perceptual_weight * perceptual(clip, x, xr)
    loss = rec + qloss
    adv_w = torch.zeros(())
    if gan:
        last = vq.decoder.conv_out.weight
        for p in disc.parameters():
            p.requires_grad_(False)
        g_loss = -unwrap(dmodel)(xr).mean()
        for p in disc.parameters():
            p.requires_grad_(True)
        gr = torch.autograd.grad(rec, last, retain_graph=True)[0]
        gg = torch.autograd.grad(g_loss, last, retain_graph=True)[0]
        gr, gg = d.all_reduce_mean(gr), d.all_reduce_mean(gg)
        adv_w = (gr.norm() / (gg.norm() + 1e-4)).clamp(0, 1e4).detach() * cfg.disc_weight
        loss = loss + adv_w * g_loss
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()

    d_loss = torch.zeros(())
    if gan:
        logits = dmodel(torch.cat([x, xr.detach()]))  # one forward (DDP)
        real, fake = logits.chunk(2)
        d_loss = F.relu(1 - real).mean() + F.relu(1 + fake).mean()
        dopt.zero_grad(set_to_none=True)
        d_loss.backward()
        dopt.step()
    return StepLosses(l1, l2, qloss, d_loss, adv_w, codes, z)


def _check_resume(ck: dict, path: Path, mcfg: models.VQGANConfig, inputs: dict | None,
                  d: Dist) -> None:
    how = (f"train into a new --out, or delete {path} to train stage 1 again (the shards and "
           f"the prior follow)")
    if ck["config"] != mcfg.to_json():
        change = describe_change(ck["config"], mcfg.to_json())
        raise UserError(f"{path} has other VQGAN sizes ({change}); {how}")
    old = ck.get("inputs")
    if inputs is None:
        return
    if old is None:
        log(f"vqgan: {path} has no record of its data set (an older run); assuming this one", d)
    elif old != inputs:
        raise UserError(f"{path} was trained on another data set ({describe_change(old, inputs)})"
                        f"; {how}")


class AutoencoderStep(torch.nn.Module):
    """Wraps the VQGAN so DDP sees one forward that returns what the training step needs."""

    def __init__(self, vq: models.VQGAN, beta: float):
        super().__init__()
        self.vq = vq
        self.beta = beta

    def forward(self, x):
        vq = self.vq
        z = vq.quant_conv(vq.encoder(x))
        zq, qloss, codes = models.quantize(vq, z, self.beta)
        xr = vq.decoder(vq.post_quant_conv(zq))
        return xr, qloss, codes, z


@torch.no_grad()
def _restart_dead(vq: models.VQGAN, usage: torch.Tensor, z: torch.Tensor, g: torch.Generator,
                  d: Dist) -> None:
    dead = (usage == 0).nonzero().flatten()
    if len(dead) == 0:
        return
    flat = z.detach().permute(0, 2, 3, 1).reshape(-1, z.shape[1])
    flat = d.all_gather_rows(flat)
    pick = torch.randint(len(flat), (len(dead),), generator=g)
    noise = torch.randn(len(dead), flat.shape[1], generator=g) * 0.01
    vq.quantize.embedding.weight.data[dead] = flat[pick] + noise
