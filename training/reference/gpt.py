"""The conditional GPT prior of HFAiLab/clip-gen (`models/gpt.py`), same parameter names.

Our own code, written to HFAiLab's architecture so its released checkpoint
(`gpt2_medium`: 24 layers, n_embd 1024, 16 heads, vocab 16384, block 256, cond 512) loads
with `load_state_dict(strict=True)`. One addition: an optional learned unconditional
embedding `uncond_emb` [n_embd] for classifier-free guidance (absent unless
`uncond_embedding=True`, so HFAiLab state dicts stay exact).

Sequence layout (d = n_embd, T = number of image tokens given, T + 1 <= block_size):

    position 0      cond_proj(embed)   (embed: [N, n_cond_embd]), or uncond_emb when unconditional
    position 1 + j  tok_emb[tokens[j]]  for j = 0 .. T-1
    x = concat(...) + pos_emb[0, :T+1]                                   [N, T+1, d]
    x = blocks(x)          each block: nn.TransformerEncoderLayer(d, n_head, 4d,
                           activation=F.gelu (exact erf), batch_first, norm_first, eps 1e-5)
                           with a causal mask (position i attends to 0..i)
    logits = head(norm(x))                                               [N, T+1, vocab]

    logits[:, i] is the distribution of image token i (0-based): position 0 (the condition
    alone) predicts token 0, position i (condition + tokens 0..i-1) predicts token i.
    A 16x16 grid has 256 tokens, raster order (index = row * 16 + col); generating all 256
    runs positions 0..255, so block_size = 256 is enough (the last token is never fed back).

Each block, x: [N, S, d] (pre-norm; dropout is inactive at inference):
    h = norm1(x)
    q | k | v = h @ self_attn.in_proj_weight.T + self_attn.in_proj_bias   ([3d, d]: q, k, v rows)
    heads: head_dim = d / n_head; attn = softmax(q k^T / sqrt(head_dim) + causal) v
    x = x + self_attn.out_proj(attn)
    x = x + linear2(gelu(linear1(norm2(x))))     linear1 [4d, d], linear2 [d, 4d]

CLIP embedding normalisation: HFAiLab L2-normalises the CLIP embedding before `cond_proj`,
both in training (train_gpt.py: `normalize_clip = True`, `CLIPWrapper(clip, normalize=True)`
around `encode_image`) and at inference (predict.py / demo.py: the same wrapper around
`encode_text`). So `embed` here is always a unit vector; this module does not normalise it
itself (the caller does, like HFAiLab).

State dict keys:
    tok_emb.weight [vocab, d]            pos_emb [1, block_size, d]
    cond_proj.weight [d, n_cond_embd]    cond_proj.bias [d]
    blocks.{i}.encoder.self_attn.in_proj_weight [3d, d]   .in_proj_bias [3d]
    blocks.{i}.encoder.self_attn.out_proj.weight [d, d]   .bias [d]
    blocks.{i}.encoder.linear1.weight [4d, d] .bias [4d]  linear2.weight [d, 4d] .bias [d]
    blocks.{i}.encoder.norm1.weight/.bias [d]             norm2.weight/.bias [d]
    blocks.{i}.mask  bool [block_size, block_size], True above the diagonal (= not attended);
                     a buffer, saved by HFAiLab, rebuilt here when absent
    norm.weight/.bias [d]                head.weight [vocab, d]  head.bias [vocab]
    uncond_emb [d]                       only with uncond_embedding
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class GPTConfig:
    vocab_size: int = 16384  # = VQGAN codebook size
    n_layer: int = 24
    n_embd: int = 1024
    n_head: int = 16
    block_size: int = 256  # positions: 1 condition + up to 255 tokens fed
    n_cond_embd: int = 512  # CLIP embedding size
    layer_norm_eps: float = 1e-5
    uncond_embedding: bool = False  # learned uncond_emb for classifier-free guidance
    dropout: float = 0.1  # training only; not written to config.json

    def to_json(self) -> dict:
        d = asdict(self)
        d.pop("dropout")
        return d

    @classmethod
    def from_json(cls, d: dict) -> GPTConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    @classmethod
    def load(cls, path: Path) -> GPTConfig:
        return cls.from_json(json.loads(Path(path).read_text()))


def gpt2_medium(vocab_size: int = 16384, n_cond_embd: int = 512) -> GPTConfig:
    """HFAiLab's released COCO prior."""
    return GPTConfig(vocab_size, 24, 1024, 16, 256, n_cond_embd)


class Block(nn.Module):
    """Keys: encoder.* (nn.TransformerEncoderLayer) and the `mask` buffer."""

    def __init__(self, c: GPTConfig):
        super().__init__()
        self.encoder = nn.TransformerEncoderLayer(
            c.n_embd,
            c.n_head,
            4 * c.n_embd,
            c.dropout,
            activation=F.gelu,
            layer_norm_eps=c.layer_norm_eps,
            batch_first=True,
            norm_first=True,
        )
        mask = ~torch.tril(torch.ones(c.block_size, c.block_size, dtype=torch.bool))
        self.register_buffer("mask", mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[1]
        return self.encoder(x, self.mask[:n, :n])


class GPT(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        c = config
        self.config = c
        self.tok_emb = nn.Embedding(c.vocab_size, c.n_embd)
        self.pos_emb = nn.Parameter(torch.zeros(1, c.block_size, c.n_embd))
        self.cond_proj = nn.Linear(c.n_cond_embd, c.n_embd)
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.Sequential(*[Block(c) for _ in range(c.n_layer)])
        self.norm = nn.LayerNorm(c.n_embd, eps=c.layer_norm_eps)
        self.head = nn.Linear(c.n_embd, c.vocab_size)
        if c.uncond_embedding:
            self.uncond_emb = nn.Parameter(torch.zeros(c.n_embd))
        else:
            self.uncond_emb = None

    # -- position 0 ------------------------------------------------------------------------

    def condition(
        self, embed: torch.Tensor | None, uncond: torch.Tensor | bool | None = None, n: int = 1
    ) -> torch.Tensor:
        """Position-0 input [N, 1, d] (before pos_emb).

        embed: [N, n_cond_embd] (L2-normalised CLIP embedding) or None (all unconditional).
        uncond: None, a bool, or a bool tensor [N]: rows that use uncond_emb instead.
        """
        if embed is None or uncond is True:
            if self.uncond_emb is None:
                raise ValueError("this model has no uncond_emb")
            rows = n if embed is None else embed.shape[0]
            return self.uncond_emb.view(1, 1, -1).expand(rows, 1, -1)
        x = self.cond_proj(embed).unsqueeze(1)  # [N, 1, d]
        if isinstance(uncond, torch.Tensor):
            if self.uncond_emb is None:
                raise ValueError("this model has no uncond_emb")
            x = torch.where(uncond.view(-1, 1, 1), self.uncond_emb.view(1, 1, -1).to(x), x)
        return x

    # -- full (recompute) forward -----------------------------------------------------------

    def forward(
        self,
        idx: torch.Tensor,
        embed: torch.Tensor | None,
        uncond: torch.Tensor | bool | None = None,
        states: list | None = None,
    ) -> torch.Tensor:
        """idx: int64 [N, T] (T may be 0); returns logits [N, T+1, vocab]."""
        cond = self.condition(embed, uncond, idx.shape[0])
        x = torch.cat([cond.to(self.pos_emb.dtype), self.tok_emb(idx)], dim=1)  # [N, T+1, d]
        if x.shape[1] > self.config.block_size:
            raise ValueError(f"sequence of {x.shape[1]} exceeds block_size")
        x = self.drop(x + self.pos_emb[:, : x.shape[1]])
        for block in self.blocks:
            x = block(x)
            if states is not None:
                states.append(x)
        return self.head(self.norm(x))

    # -- explicit math with a KV cache (same weights; used for speed and as documentation) ---

    def _block_cached(
        self, layer: nn.TransformerEncoderLayer, x: torch.Tensor, kv: tuple | None
    ) -> tuple[torch.Tensor, tuple]:
        """x: [N, t, d] new positions; kv: cached (k, v) [N, H, t0, hd] or None."""
        n, t, d = x.shape
        heads = self.config.n_head
        hd = d // heads
        h = layer.norm1(x)
        qkv = F.linear(h, layer.self_attn.in_proj_weight, layer.self_attn.in_proj_bias)
        q, k, v = (p.reshape(n, t, heads, hd).transpose(1, 2) for p in qkv.split(d, dim=-1))
        if kv is not None:
            k = torch.cat([kv[0], k], dim=2)
            v = torch.cat([kv[1], v], dim=2)
        total = k.shape[2]
        allowed = torch.ones(t, total, dtype=torch.bool, device=x.device).tril(total - t)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(hd)  # [N, H, t, total]
        att = att.masked_fill(~allowed, float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(n, t, d)
        x = x + layer.self_attn.out_proj(y)
        x = x + layer.linear2(F.gelu(layer.linear1(layer.norm2(x))))
        return x, (k, v)

    def forward_cached(self, x_in: torch.Tensor, start: int, cache: list) -> torch.Tensor:
        """x_in: [N, t, d] input embeddings (before pos_emb) of positions start..start+t-1.
        cache: list with one (k, v) per layer (None entries at start), updated in place."""
        x = x_in + self.pos_emb[:, start : start + x_in.shape[1]]
        for i, block in enumerate(self.blocks):
            x, cache[i] = self._block_cached(block.encoder, x, cache[i])
        return self.head(self.norm(x))

    @torch.no_grad()
    def generate(
        self,
        embed: torch.Tensor | None,
        steps: int,
        choose: Callable[[torch.Tensor], torch.Tensor] | None = None,
        uncond: torch.Tensor | bool | None = None,
        kv_cache: bool = False,
        n: int = 1,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Autoregressive decoding of `steps` tokens.

        choose: logits [N, vocab] -> int64 [N]; default argmax (greedy).
        kv_cache=False recomputes the whole prefix every step (HFAiLab's `sample` loop);
        kv_cache=True runs the same math incrementally.
        Returns (tokens [N, steps], step_logits [N, steps, vocab]).
        """
        choose = choose or (lambda z: z.argmax(dim=-1))
        cond = self.condition(embed, uncond, n)
        rows = cond.shape[0]
        tokens = torch.zeros(rows, 0, dtype=torch.long, device=cond.device)
        all_logits = []
        cache: list = [None] * len(self.blocks)
        for step in range(steps):
            if kv_cache:
                x_in = cond if step == 0 else self.tok_emb(tokens[:, -1:])
                logits = self.forward_cached(x_in.to(self.pos_emb.dtype), step, cache)[:, -1]
            else:
                logits = self.forward(tokens, embed, uncond)[:, -1]
            all_logits.append(logits)
            tokens = torch.cat([tokens, choose(logits).view(-1, 1)], dim=1)
        return tokens, torch.stack(all_logits, dim=1)


def strip_masks(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """State dict without the `blocks.{i}.mask` buffers (they are derived from block_size)."""
    return {k: v for k, v in sd.items() if not (k.startswith("blocks.") and k.endswith(".mask"))}


def load_gpt(sd: dict[str, torch.Tensor], config: GPTConfig) -> GPT:
    """Loads HFAiLab-named weights; `blocks.{i}.mask` may be present or absent."""
    model = GPT(config)
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [k for k in missing if not k.endswith(".mask")]
    if missing or unexpected:
        raise KeyError(f"GPT state dict mismatch: missing {missing}, unexpected {unexpected}")
    return model.eval()
