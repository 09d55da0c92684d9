"""Stage 2: the conditional GPT prior, p(tokens | CLIP image embedding), trained on images.

Shards (`make_shards`): every training image once through the frozen CLIP image encoder
(L2-normalised embedding, float16) and the frozen VQGAN encoder (token grid, raster order,
int16), written as out/shards/shard-XXXXX.npz plus index.json. index.json records the
shards' inputs (the data set's fingerprint, the VQGAN's and the CLIP's weight hashes); shards
whose inputs differ are rebuilt, and a prior checkpoint trained on other shards is set aside
(`<name>.stale.pt`) and trained again, so no stage ever continues on stale tokens.

Loss per step (global batch B; conditioning c = the image's normalised embedding):
    c~      = normalize(c + noise * eps / sqrt(E)),  eps ~ N(0, I)       (LAFITE-style; 0: off)
    dropped = uniform < cond_dropout   -> position 0 gets the learned uncond_emb instead
    logits  = GPT(tokens[:, :-1], c~ | uncond)                          [B, T, K]
    L_nll   = cross-entropy(logits, tokens)
    L_emb   on the first emb_batch non-dropped rows of the global batch:
              y = estimator(logits)  (one-hot straight-through | Gumbel-softmax straight-through
                                      | soft expectation), [b, T, K]
              image = VQGAN.decode(y @ codebook)   (frozen decoder, gradients flow to y)
              e = normalize(CLIP.encode_image(clip_normalize((image + 1) / 2)))
              distance(e, c): 1 - cos (cosine) or |e - c|^2 (l2)
    loss    = L_nll + lambda * L_emb      (lambda = 0.2, the paper's value; 0 switches it off)
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from . import models
from .common import (
    Dist,
    atomic_write_text,
    describe_change,
    log,
    step_generator,
    unwrap,
    weights_hash,
    wrap_ddp,
)
from .loop import TrainLoop

SHARD_SIZE = 4096

# how L_emb differentiates the token choice, and the distance it measures (see the docstring)
Estimator = Literal["straight-through", "gumbel", "soft"]
Distance = Literal["cosine", "l2"]


@dataclass
class PriorTrainConfig:
    steps: int = 1300
    batch: int = 64  # global batch
    lr: float = 1e-3
    warmup: int = 50
    weight_decay: float = 0.01
    emb_lambda: float = 0.2  # weight of L_emb (0: off)
    estimator: Estimator = "straight-through"
    distance: Distance = "cosine"
    tau: float = 1.0  # softmax / Gumbel temperature of the estimator
    emb_batch: int = 8  # rows of the global batch that get L_emb (decode + CLIP: the costly part)
    noise: float = 0.75  # std of the embedding noise, relative to the unit embedding (0: off)
    cond_dropout: float = 0.1  # probability of the unconditional embedding (0: off)
    seed: int = 0
    checkpoint_every: int = 200


HELP = {
    "steps": "optimisation steps (a finished run given more steps resumes and continues)",
    "batch": "global batch (images per step, over all processes)",
    "lr": "peak learning rate (cosine schedule)",
    "warmup": "linear warm-up steps",
    "weight_decay": "AdamW weight decay of the matrices",
    "emb_lambda": "weight of the CLIP embedding loss L_emb (0: off; the paper's 0.2)",
    "estimator": "how L_emb differentiates the token choice: straight-through|gumbel|soft",
    "distance": "L_emb distance: cosine|l2",
    "tau": "softmax / Gumbel temperature of the estimator",
    "emb_batch": "rows of the global batch that get L_emb (decode + CLIP: the costly part)",
    "noise": "std of the noise added to the condition, relative to its unit length (0: off)",
    "cond_dropout": "probability of the unconditional embedding (for guidance; 0: off)",
    "seed": "random seed (data order, noise, dropout)",
    "checkpoint_every": "steps between checkpoints (a run resumes from the last one)",
}


# -- shards -----------------------------------------------------------------------------------


def shard_inputs(images: np.ndarray, clip: models.CLIP, vq: models.VQGAN,
                 data: dict | None = None) -> dict:
    """What the shards are made of: the data set (its fingerprint, or the image count when
    there is none), the VQGAN and the CLIP (weight hashes)."""
    return {"data": data if data is not None else {"count": len(images)},
            "vqgan": weights_hash(vq), "clip": weights_hash(clip)}


@torch.no_grad()
def make_shards(images: np.ndarray, clip: models.CLIP, vq: models.VQGAN, out: Path,
                batch: int = 256, show_progress: bool = True, data: dict | None = None) -> Path:
    """Writes out/shards/ unless shards of the same inputs are there (see shard_inputs)."""
    out = Path(out) / "shards"
    index_path = out / "index.json"
    inputs = shard_inputs(images, clip, vq, data)
    if index_path.exists():
        idx = json.loads(index_path.read_text())
        if idx.get("inputs") == inputs:
            return out
        why = (describe_change(idx["inputs"], inputs) if "inputs" in idx
               else "no record of their inputs")
        log(f"shards: made from other inputs ({why}); making them again")
        index_path.unlink()
        for f in out.glob("shard-*.npz"):
            f.unlink()
    out.mkdir(parents=True, exist_ok=True)
    clip.eval()
    vq.eval()
    from .common import Progress as _P
    from .vqgan_train import to_model_range

    bar = _P(len(images), "shards", enabled=show_progress)
    files = []
    for s0 in range(0, len(images), SHARD_SIZE):
        chunk = images[s0 : s0 + SHARD_SIZE]
        embs, toks = [], []
        for i in range(0, len(chunk), batch):
            part = chunk[i : i + batch]
            embs.append(models.encode_images(clip, part).half())
            toks.append(vq.encode(to_model_range(part))["indices"].to(torch.int16))
            bar.update(len(part))
        name = f"shard-{s0 // SHARD_SIZE:05d}.npz"
        tmp = out / f".{name}.tmp.npz"
        np.savez(tmp, embeddings=torch.cat(embs).numpy(), tokens=torch.cat(toks).numpy())
        tmp.replace(out / name)
        files.append(name)
    atomic_write_text(index_path, json.dumps({
        "count": len(images), "files": files, "embed_dim": clip.config.embed_dim,
        "grid": vq.config.grid, "n_embed": vq.config.n_embed, "inputs": inputs}) + "\n")
    return out


def prior_inputs(shards: Path, mcfg: models.GPTConfig) -> dict:
    """A prior's inputs: its shards' inputs and its sizes."""
    index = json.loads((Path(shards) / "index.json").read_text())
    return {"shards": index.get("inputs"), "model": mcfg.to_json()}


def load_shards(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """(embeddings float32 [N, E], tokens int64 [N, T])."""
    path = Path(path)
    index = json.loads((path / "index.json").read_text())
    e, t = [], []
    for name in index["files"]:
        z = np.load(path / name)
        e.append(torch.from_numpy(z["embeddings"].astype(np.float32)))
        t.append(torch.from_numpy(z["tokens"].astype(np.int64)))
    return torch.cat(e), torch.cat(t)


# -- the loss ---------------------------------------------------------------------------------


def noisy(c: torch.Tensor, noise: float, g: torch.Generator) -> torch.Tensor:
    if noise <= 0:
        return c
    eps = torch.randn(c.shape, generator=g) / c.shape[1] ** 0.5
    return F.normalize(c + noise * eps, dim=-1)


def estimate(logits: torch.Tensor, estimator: Estimator, tau: float,
             u: torch.Tensor | None = None) -> torch.Tensor:
    """Differentiable token choice [b, T, K] from logits [b, T, K]; u: uniform noise of the
    same shape for the Gumbel estimator."""
    if estimator == "soft":
        return (logits / tau).softmax(-1)
    if estimator == "gumbel":
        u = (torch.rand(logits.shape) if u is None else u).clamp(1e-9, 1 - 1e-9)
        logits = logits - torch.log(-torch.log(u))
    elif estimator != "straight-through":
        raise ValueError(f"unknown estimator {estimator!r}")
    soft = (logits / tau).softmax(-1)
    hard = F.one_hot(soft.argmax(-1), soft.shape[-1]).to(soft.dtype)
    return hard + soft - soft.detach()


def embedding_loss(y: torch.Tensor, target: torch.Tensor, vq: models.VQGAN, clip: models.CLIP,
                   distance: Distance) -> torch.Tensor:
    """Per-row distance [b] between CLIP's embedding of the decoded tokens and `target`."""
    g = vq.config.grid
    zq = (y @ vq.quantize.embedding.weight).reshape(len(y), g, g, -1).permute(0, 3, 1, 2)
    img = vq.decoder(vq.post_quant_conv(zq))
    x = models.clip_normalize((img.clamp(-1, 1) + 1) / 2, clip.config.image_resolution)
    e = F.normalize(clip.encode_image(x), dim=-1)
    if distance == "cosine":
        return 1 - (e * target).sum(-1)
    if distance == "l2":
        return ((e - target) ** 2).sum(-1)
    raise ValueError(f"unknown distance {distance!r}")


class PriorStep(torch.nn.Module):
    """GPT forward for training (one module for DDP)."""

    def __init__(self, gpt: models.GPT):
        super().__init__()
        self.gpt = gpt

    def forward(self, tokens, cond, uncond):
        return self.gpt(tokens[:, :-1], cond, uncond)


def train_prior(shards: Path, out: Path, cfg: PriorTrainConfig, d: Dist, clip: models.CLIP,
                vq: models.VQGAN, model_cfg: models.GPTConfig | None = None,
                resume: bool = True, name: str = "prior") -> models.GPT:
    out = Path(out)
    embs, toks = load_shards(shards)
    n_tokens = toks.shape[1]
    mcfg = model_cfg or models.builtin_gpt_config(vq.config.n_embed, n_tokens, embs.shape[1])
    if cfg.cond_dropout > 0 and not mcfg.uncond_embedding:
        raise ValueError("condition dropout needs uncond_embedding=True")
    torch.manual_seed(cfg.seed)
    gpt = models.GPT(mcfg)
    _init_gpt(gpt)
    decay = [p for n, p in gpt.named_parameters() if p.dim() >= 2 and "emb" not in n]
    rest = [p for n, p in gpt.named_parameters() if not (p.dim() >= 2 and "emb" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": rest, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.95))
    loop = TrainLoop(name, out, d, cfg.steps, cfg.checkpoint_every, metrics_every=10)
    inputs = prior_inputs(shards, mcfg)
    ck = _unless_stale(loop.load(resume), loop.path, inputs, name, d)
    if ck is not None:
        loop.resume(ck, model=gpt, opt=opt)
    models.freeze(clip)
    models.freeze(vq)
    model = wrap_ddp(PriorStep(gpt), d)

    def state(done: int) -> dict:
        return {"model": gpt.state_dict(), "opt": opt.state_dict(), "step": done,
                "config": mcfg.to_json(), "train": asdict(cfg), "inputs": inputs}

    for step in loop.steps():
        gpt.train()
        lr = loop.set_lr(opt, step, cfg.lr, cfg.warmup)
        g = step_generator(cfg.seed, step)
        idx = torch.randint(len(embs), (cfg.batch,), generator=g)
        c = embs[idx]
        cn = noisy(c, cfg.noise, g)
        dropped = torch.rand(cfg.batch, generator=g) < cfg.cond_dropout
        s = d.slice(cfg.batch)
        tokens = toks[idx[s]]
        logits = model(tokens, cn[s], dropped[s] if mcfg.uncond_embedding else None)
        nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens.reshape(-1))
        loss = nll
        l_emb = torch.zeros(())
        if cfg.emb_lambda > 0 and cfg.emb_batch > 0:
            term = _embedding_term(logits, c, dropped, s, g, cfg, vq, clip, d)
            if term is not None:
                l_emb = term
                loss = loss + cfg.emb_lambda * l_emb
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(gpt.parameters(), 1.0)
        opt.step()
        if loop.metrics_due(step):
            vals = d.all_reduce_mean(torch.stack([nll, l_emb]).detach())
            loop.write_metrics(step=step, nll=float(vals[0]), l_emb=float(vals[1]), lr=lr)
        loop.end_step(step, state, nll=float(nll.detach()), emb=float(l_emb.detach()))
    return unwrap(gpt).eval()


def _unless_stale(ck: dict | None, path: Path, inputs: dict, name: str, d: Dist) -> dict | None:
    """The checkpoint, or None when it was trained on other inputs (other shards or sizes):
    rank 0 then sets it aside as <name>.stale.pt, and the prior trains again from step 0."""
    if ck is not None and ck.get("inputs") != inputs and d.main:
        why = (describe_change(ck["inputs"], inputs) if ck.get("inputs")
               else "no record of its inputs")
        stale = path.with_suffix(".stale.pt")
        log(f"{name}: {path} was trained on other inputs ({why}); training it again "
            f"from step 0 (the old checkpoint is kept as {stale})")
        path.replace(stale)
    d.barrier()
    if ck is not None and ck.get("inputs") != inputs:
        return None
    return ck


def _embedding_term(logits: torch.Tensor, c: torch.Tensor, dropped: torch.Tensor, s: slice,
                    g: torch.Generator, cfg: PriorTrainConfig, vq: models.VQGAN,
                    clip: models.CLIP, d: Dist) -> torch.Tensor | None:
    """L_emb of this rank's share of the chosen rows (the first emb_batch conditioned ones of
    the global batch), summed per rank and divided by their global count, so the
    DDP-averaged gradient equals one process's; None when none of them is this rank's."""
    chosen = (~dropped).nonzero().flatten()[: cfg.emb_batch]
    u = torch.rand((len(chosen), *logits.shape[1:]), generator=g)
    mine = (chosen >= s.start) & (chosen < s.stop)
    if not (len(chosen) and mine.any()):
        return None
    rows = chosen[mine] - s.start
    y = estimate(logits[rows], cfg.estimator, cfg.tau, u[mine])
    per_row = embedding_loss(y, c[s][rows], vq, clip, cfg.distance)
    return per_row.sum() / len(chosen) * d.world


def _init_gpt(gpt: models.GPT) -> None:
    """GPT-2 style initialisation (normal 0.02); the reference leaves pos_emb at zero."""
    for n, p in gpt.named_parameters():
        if p.dim() >= 2 or n in ("pos_emb", "uncond_emb"):
            torch.nn.init.normal_(p, std=0.02)
        elif n.endswith("bias"):
            torch.nn.init.zeros_(p)
