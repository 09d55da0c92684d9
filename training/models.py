"""Model sizes for the built-in world and the helpers the loops share.

The architectures themselves are the PyTorch references in `training/reference/` (the ones
the Swift engine is checked against), so what we train is exactly what the engine runs:
    CLIP   reference.clip.CLIP        (OpenAI names; exported in Hugging Face's layout)
    GPT    reference.gpt.GPT          (HFAiLab/clip-gen names, + uncond_emb)
    VQGAN  reference.vqgan.VQGAN      (taming names)
This file adds: the built-in sizes, CLIP's image normalisation as a differentiable op,
tokenisation to tensors, the quantiser used while training the VQGAN (straight-through
gradients, commitment loss, dead-code restarts) and the VQGAN's patch discriminator.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .reference.clip import CLIP, CLIPConfig
from .reference.gpt import GPT, GPTConfig
from .reference.tokenizer import Tokenizer
from .reference.vqgan import VQGAN, VQGANConfig

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

__all__ = [
    "CLIP",
    "GPT",
    "SIZES",
    "VQGAN",
    "CLIPConfig",
    "GPTConfig",
    "SizePreset",
    "Tokenizer",
    "VQGANConfig",
    "builtin_clip_config",
    "builtin_gpt_config",
    "builtin_vqgan_config",
]


def builtin_clip_config(vocab_size: int) -> CLIPConfig:
    """A small CLIP: 32-pixel images in 8-pixel patches (4 x 4 grid), width 128 (2 heads)."""
    return CLIPConfig(
        embed_dim=64,
        image_resolution=32,
        vision_layers=3,
        vision_width=128,
        vision_patch_size=8,
        context_length=77,
        vocab_size=vocab_size,
        transformer_width=128,
        transformer_layers=2,
    )


def builtin_vqgan_config() -> VQGANConfig:
    """32 x 32 images -> 8 x 8 tokens (f4) from a 512-code codebook."""
    return VQGANConfig(
        embed_dim=32,
        n_embed=512,
        ch=32,
        out_ch=3,
        ch_mult=(1, 1, 2),
        num_res_blocks=1,
        attn_resolutions=(),
        in_channels=3,
        resolution=32,
        z_channels=64,
        norm_eps=1e-6,
    )


def builtin_gpt_config(vocab_size: int, tokens: int, n_cond_embd: int) -> GPTConfig:
    return GPTConfig(
        vocab_size=vocab_size,
        n_layer=4,
        n_embd=128,
        n_head=4,
        block_size=tokens,
        n_cond_embd=n_cond_embd,
        uncond_embedding=True,
        dropout=0.0,
    )


# -- named sizes ------------------------------------------------------------------------------


SizeName = Literal["tiny", "builtin", "laptop", "gpt2_medium"]  # the keys of SIZES


@dataclass(frozen=True)
class SizePreset:
    """A VQGAN + prior size. The VQGAN's downsampling factor is fixed; `--resolution` picks
    the image size (a multiple of the factor) and so the token grid (resolution / factor)."""

    name: SizeName
    resolution: int  # default image size (px)
    vqgan: VQGANConfig  # at `resolution`; attention (if any) at the latent grid
    n_layer: int  # prior
    n_embd: int
    n_head: int
    note: str
    # measured seconds per training step at one thread, per image (VQGAN, default resolution)
    # and per row (prior, default tokens): training/scripts/time_sizes.py; None: not measured
    vq_s_per_image: float | None = None
    prior_s_per_row: float | None = None

    def estimate_s(self, resolution: int, vq_steps: int, vq_batch: int, prior_steps: int,
                   prior_batch: int, processes: int = 1) -> float | None:
        """A rough time for both stages on CPUs (pixels and tokens scale the step time)."""
        if self.vq_s_per_image is None or self.prior_s_per_row is None:
            return None
        area = (resolution / self.resolution) ** 2
        vq = vq_steps * vq_batch * self.vq_s_per_image * area
        prior = prior_steps * prior_batch * self.prior_s_per_row * area
        return (vq + prior) / max(processes, 1)

    @property
    def factor(self) -> int:
        return 2 ** (len(self.vqgan.ch_mult) - 1)

    def vqgan_config(self, resolution: int | None = None) -> VQGANConfig:
        r = resolution or self.resolution
        if r % self.factor or r < self.factor:
            raise ValueError(f"--resolution {r} is not a multiple of the {self.name} VQGAN's "
                             f"downsampling factor {self.factor}")
        attn = (r // self.factor,) if self.vqgan.attn_resolutions else ()
        return replace(self.vqgan, resolution=r, attn_resolutions=attn)

    def gpt_config(self, vocab_size: int, tokens: int, n_cond_embd: int) -> GPTConfig:
        return GPTConfig(vocab_size=vocab_size, n_layer=self.n_layer, n_embd=self.n_embd,
                         n_head=self.n_head, block_size=tokens, n_cond_embd=n_cond_embd,
                         uncond_embedding=True, dropout=0.0)


def _vq(embed_dim, n_embed, ch, ch_mult, num_res_blocks, z, attn=()) -> VQGANConfig:
    return VQGANConfig(embed_dim=embed_dim, n_embed=n_embed, ch=ch, out_ch=3, ch_mult=ch_mult,
                       num_res_blocks=num_res_blocks, attn_resolutions=attn, in_channels=3,
                       resolution=32, z_channels=z, norm_eps=1e-6)


SIZES: dict[SizeName, SizePreset] = {p.name: p for p in (
    SizePreset("tiny", 32, _vq(16, 64, 32, (1, 1, 1), 1, 32), 1, 32, 2,
               "for tests: seconds per run", 0.027, 0.0035),
    SizePreset("builtin", 32, builtin_vqgan_config(), 4, 128, 4,
               "the committed model's sizes: f4, 512 codes; prior 4 x 128",
               0.036, 0.0125),
    SizePreset("laptop", 64, _vq(64, 1024, 64, (1, 1, 2, 2), 1, 64), 8, 256, 8,
               "f8, 1024 codes; prior 8 x 256: a night on a laptop's CPU",
               0.16, 0.042),
    SizePreset("gpt2_medium", 256, _vq(256, 16384, 128, (1, 1, 2, 2, 4), 2, 256, (16,)),
               24, 1024, 16, "the paper's: f16, 16384 codes; GPT-2 medium prior: GPUs",
               34.0, None),
)}


def size_preset(name: SizeName) -> SizePreset:
    if name not in SIZES:
        raise KeyError(f"unknown size {name!r} (one of {', '.join(SIZES)})")
    return SIZES[name]


# -- CLIP helpers -----------------------------------------------------------------------------


def clip_normalize(x01: torch.Tensor, resolution: int) -> torch.Tensor:
    """Images in [0, 1], [B, 3, H, W] -> CLIP's input: bicubic resize of the shorter side to
    `resolution`, centre crop, mean/std normalisation. Differentiable."""
    h, w = x01.shape[-2:]
    if (h, w) != (resolution, resolution):
        s = resolution / min(h, w)
        nh, nw = max(resolution, round(h * s)), max(resolution, round(w * s))
        x01 = F.interpolate(x01, size=(nh, nw), mode="bicubic", align_corners=False,
                            antialias=True).clamp(0, 1)
        top, left = (nh - resolution) // 2, (nw - resolution) // 2
        x01 = x01[..., top : top + resolution, left : left + resolution]
    mean = x01.new_tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = x01.new_tensor(CLIP_STD).view(1, 3, 1, 1)
    return (x01 - mean) / std


def uint8_to_unit(images) -> torch.Tensor:
    """uint8 [B, H, W, 3] (numpy or tensor) -> float [B, 3, H, W] in [0, 1]."""
    if isinstance(images, np.ndarray) and not images.flags.writeable:
        images = np.array(images)  # a read-only memory map: torch wants its own copy
    t = torch.as_tensor(images)
    return t.permute(0, 3, 1, 2).float() / 255.0


def tokenize(tok: Tokenizer, texts: list[str], context: int) -> torch.Tensor:
    return torch.tensor([tok.context(t, context) for t in texts], dtype=torch.long)


@torch.no_grad()
def encode_images(clip: CLIP, images, batch: int = 256) -> torch.Tensor:
    """uint8 [N, H, W, 3] -> L2-normalised CLIP image embeddings [N, E]."""
    out = []
    for i in range(0, len(images), batch):
        x = clip_normalize(uint8_to_unit(images[i : i + batch]), clip.config.image_resolution)
        out.append(F.normalize(clip.encode_image(x), dim=-1))
    return torch.cat(out)


@torch.no_grad()
def encode_texts(clip: CLIP, tok: Tokenizer, texts: list[str]) -> torch.Tensor:
    ids = tokenize(tok, texts, clip.config.context_length)
    return F.normalize(clip.encode_text(ids), dim=-1)


def freeze(m: nn.Module) -> nn.Module:
    m.eval()
    for p in m.parameters():
        p.requires_grad_(False)
    return m


# -- VQGAN training parts ---------------------------------------------------------------------


def quantize(vq: VQGAN, z: torch.Tensor, beta: float = 0.25):
    """z: pre-quantisation latent [B, E, h, w] ->
    (z_q with straight-through gradient, codebook + commitment loss, indices [B, h*w])."""
    d = vq.quantize.distances(z)  # [B, h*w, K]
    idx = d.argmin(dim=-1)
    zq = vq.quantize.lookup(idx, (z.shape[-2], z.shape[-1]))
    loss = F.mse_loss(zq, z.detach()) + beta * F.mse_loss(z, zq.detach())
    zq = z + (zq - z).detach()
    return zq, loss, idx


class PatchDiscriminator(nn.Module):
    """A small PatchGAN (pix2pix/taming style) without batch norm: strided 4x4 convs with
    leaky ReLU, one logit per patch."""

    def __init__(self, in_ch: int = 3, ch: int = 32, layers: int = 2):
        super().__init__()
        mods: list[nn.Module] = [nn.Conv2d(in_ch, ch, 4, 2, 1), nn.LeakyReLU(0.2)]
        c = ch
        for _ in range(layers - 1):
            mods += [nn.Conv2d(c, c * 2, 4, 2, 1), nn.GroupNorm(8, c * 2), nn.LeakyReLU(0.2)]
            c *= 2
        mods += [nn.Conv2d(c, c, 3, 1, 1), nn.GroupNorm(8, c), nn.LeakyReLU(0.2),
                 nn.Conv2d(c, 1, 3, 1, 1)]
        self.net = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
