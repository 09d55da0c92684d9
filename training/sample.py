"""A Python sampler over the same weights the engine runs (for development and comparison).

Same steps as the engine: normalised CLIP text embedding -> GPT with a KV cache (temperature,
top-k, top-p, optional classifier-free guidance with the unconditional embedding) -> VQGAN
decode -> pixels (x + 1) / 2 * 255; with `candidates` M > n, M images are drawn and the n
whose CLIP image embeddings are closest to the prompt's are kept.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from . import models


def filter_logits(logits: torch.Tensor, temperature: float, top_k: int | None,
                  top_p: float) -> torch.Tensor:
    logits = logits / max(temperature, 1e-6)
    if top_k:
        kth = logits.topk(min(top_k, logits.shape[-1]), dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(-1)
        cum = probs.cumsum(-1)
        remove = cum - probs > top_p
        sorted_logits = sorted_logits.masked_fill(remove, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    return logits


@torch.no_grad()
def sample_tokens(gpt: models.GPT, cond: torch.Tensor, g: torch.Generator,
                  temperature: float = 1.0, top_k: int | None = None, top_p: float = 1.0,
                  guidance: float = 1.0) -> torch.Tensor:
    """cond: normalised embeddings [N, E] -> tokens [N, block_size]."""
    n = cond.shape[0]
    steps = gpt.config.block_size
    guided = guidance != 1.0
    if guided and gpt.uncond_emb is None:
        raise ValueError("guidance needs a model with an unconditional embedding")
    embed = torch.cat([cond, cond]) if guided else cond
    uncond = torch.arange(len(embed)) >= n if guided else None

    def choose(logits: torch.Tensor) -> torch.Tensor:
        if guided:
            c, u = logits[:n], logits[n:]
            logits = u + guidance * (c - u)
        probs = filter_logits(logits, temperature, top_k, top_p).softmax(-1)
        tok = torch.multinomial(probs, 1, generator=g).flatten()
        return torch.cat([tok, tok]) if guided else tok

    tokens, _ = gpt.generate(embed, steps, choose=choose, uncond=uncond, kv_cache=True)
    return tokens[:n]


def to_pixels(images: torch.Tensor) -> np.ndarray:
    """Decoder output [N, 3, R, R] in [-1, 1] -> uint8 [N, R, R, 3]."""
    x = ((images.clamp(-1, 1) + 1) / 2 * 255).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy()


@torch.no_grad()
def generate(clip: models.CLIP, tok: models.Tokenizer, gpt: models.GPT, vq: models.VQGAN,
             prompt: str, n: int = 1, candidates: int = 1, seed: int = 0,
             temperature: float = 1.0, top_k: int | None = None, top_p: float = 1.0,
             guidance: float = 1.0, batch: int = 64) -> tuple[np.ndarray, list[float]]:
    """Returns (uint8 [n, R, R, 3], CLIP scores) for one prompt."""
    g = torch.Generator().manual_seed(seed)
    text = models.encode_texts(clip, tok, [prompt])  # [1, E]
    m = max(n, candidates)
    images, scores = [], []
    for i in range(0, m, batch):
        k = min(batch, m - i)
        toks = sample_tokens(gpt, text.expand(k, -1), g, temperature, top_k, top_p, guidance)
        img = to_pixels(vq.decode_indices(toks))
        images.append(img)
        e = models.encode_images(clip, img)
        scores.append((e @ text.t()).flatten())
    images_np = np.concatenate(images)
    s = torch.cat(scores)
    order = s.argsort(descending=True)[:n] if m > n else torch.arange(n)
    return images_np[order.numpy()], [float(s[j]) for j in order]


def embed_with_noise(c: torch.Tensor, noise: float, g: torch.Generator) -> torch.Tensor:
    return F.normalize(c + noise * torch.randn(c.shape, generator=g) / c.shape[1] ** 0.5, dim=-1)
