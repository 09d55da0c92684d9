"""The stand-in CLIP: a small BPE vocabulary and contrastive training on the world.

It plays the part of a pretrained CLIP, so it sees the whole world (held-out pairs
included), with captions that name some or all of a scene's attributes. Because the world
is small, a batch often holds several images a caption describes equally well; the loss
is therefore InfoNCE with *multiple positives*: the target distribution of an image's row
is uniform over the captions in the batch consistent with it (and likewise per caption).

What the loop trains on comes from a *task*: `V1Task` (the generation-1 world, the default)
or `V2Task` (world v2: paraphrased captions over the larger vocabulary, and hard negatives:
each caption brings its swapped-binding twins into the batch as extra text columns, so the
loss must tell "a red circle left of a blue square" from "a blue circle left of a red
square" and from "a red circle right of a blue square"). V2Task's metrics: zero-shot caption
top-1 on single objects, text->image retrieval on pairs, binding accuracy.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import models, world
from .common import (
    Dist,
    log,
    step_generator,
)
from .loop import TrainLoop
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
    """match [images, texts]: 1 where a text describes an image. Texts may outnumber images
    (hard negatives); a text that describes no image of the batch only serves as a negative
    in the image -> text direction."""
    logits = scale * F.normalize(img, dim=-1) @ F.normalize(txt, dim=-1).t()
    t_img = match / match.sum(1, keepdim=True)
    li = -(t_img * logits.log_softmax(1)).sum(1).mean()
    has = match.sum(0) > 0  # texts with at least one image
    t_txt = match.t()[has] / match.t()[has].sum(1, keepdim=True)
    lt = -(t_txt * logits.t()[has].log_softmax(1)).sum(1).mean()
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


class V1Task:
    """The generation-1 world (32 px, one shape): captions, pool, batches, metrics."""

    def vocabulary_texts(self) -> list[str]:
        return world.caption_vocabulary_texts()

    def pool(self, cfg: CLIPTrainConfig):
        scenes = world.sample_scenes(cfg.pool, cfg.seed + 11, world.all_scenes())
        return scenes, world.render_many(scenes, cfg.seed + 11)

    def batch(self, pool, tok, cfg: CLIPTrainConfig, step: int):
        """(pixels [B, 3, R, R], ids [B, T, L] (T texts per image, here 1), match [B, B*T])."""
        x, ids, match = make_batch(pool[0], pool[1], tok, cfg, step)
        return x, ids[:, None], match

    def metrics(self, clip, tok, cfg: CLIPTrainConfig) -> dict:
        scenes = world.sample_scenes(720, cfg.seed + 12, world.all_scenes())
        images = world.render_many(scenes, cfg.seed + 12)
        return {"zero_shot_top1": zero_shot_top1(clip, tok, images, scenes)}


def train_clip(out: Path, cfg: CLIPTrainConfig, d: Dist, model_cfg=None,
               resume: bool = True, task=None) -> tuple[models.CLIP, bpe.Tokenizer]:
    """Trains the stand-in CLIP into out/ (tokenizer/, clip.pt, clip-metrics.jsonl,
    clip-summary.json). task: V1Task() (default) or V2Task(config)."""
    out = Path(out)
    task = task or V1Task()
    tok_dir = out / "tokenizer"
    if d.main and not (tok_dir / "merges.txt").exists():
        bpe.write_files(bpe.learn_merges(task.vocabulary_texts(), cfg.n_merges), tok_dir)
    d.barrier()
    tok = bpe.Tokenizer.from_dir(tok_dir)
    mcfg = model_cfg or models.builtin_clip_config(len(tok.encoder))
    torch.manual_seed(cfg.seed)
    clip = models.CLIP(mcfg)
    opt = torch.optim.AdamW(clip.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                            betas=(0.9, 0.98))
    loop = TrainLoop("clip", out, d, cfg.steps, cfg.checkpoint_every, metrics_every=20)
    ck = loop.load(resume)
    if ck is not None:
        loop.resume(ck, model=clip, opt=opt)
    if loop.done:
        return clip.eval(), tok

    pool = task.pool(cfg)

    def state(done: int) -> dict:
        return {"model": clip.state_dict(), "opt": opt.state_dict(), "step": done,
                "config": asdict(mcfg)}

    for step in loop.steps():
        clip.train()
        loop.set_lr(opt, step, cfg.lr, cfg.warmup)
        x, ids, match = task.batch(pool, tok, cfg, step)  # ids [B, T, L]
        loss, scale = _train_step(clip, opt, x, ids, match, d.slice(cfg.batch), d)
        if loop.metrics_due(step):
            loop.write_metrics(step=step, loss=float(loss.detach()),
                               scale=float(scale.detach()))
        loop.end_step(step, state, loss=float(loss.detach()))
    if d.main:
        summary = task.metrics(clip.eval(), tok, cfg)
        loop.metrics.write(step=cfg.steps, **summary)
        (out / "clip-summary.json").write_text(json.dumps(summary) + "\n")
        flat = {**summary, **{f"zero-shot {k}": v
                              for k, v in summary.get("zero_shot_attributes", {}).items()}}
        log("clip: " + ", ".join(f"{k} {v:.3f}" for k, v in flat.items()
                                 if isinstance(v, float)), d)
    return clip.eval(), tok


def _train_step(clip: models.CLIP, opt: torch.optim.Optimizer, x: torch.Tensor,
                ids: torch.Tensor, match: torch.Tensor, s: slice,
                d: Dist) -> tuple[torch.Tensor, torch.Tensor]:
    """One contrastive step on this rank's slice `s` of the global batch; (loss, scale).

    Each rank encodes its slice and gathers the others' embeddings (without their graphs):
    the rank's backward yields its rows' share of the full gradient; summing the shares over
    ranks (loss x world, then averaged) gives one process's gradient. logit_scale sees the
    whole matrix on every rank, so its gradient is not scaled. Texts are ordered image-major
    ([B, T] flattened), so a rank's slice of images carries its own captions and their hard
    negatives."""
    img_all = d.all_gather_rows(clip.encode_image(x[s]), keep_grad=True)
    txt_all = d.all_gather_rows(clip.encode_text(ids[s].flatten(0, 1)), keep_grad=True)
    scale = clip.logit_scale.exp().clamp(max=100)
    loss = contrastive_loss(img_all, txt_all, scale, match)
    opt.zero_grad(set_to_none=True)
    (loss * d.world).backward()
    d.average_gradients(clip)  # not wrapped by DDP: the loss needs the gathered embeddings
    if d.world > 1:
        clip.logit_scale.grad /= d.world
    opt.step()
    return loss, scale


# -- world v2 ---------------------------------------------------------------------------------


def binding_twins(scene, config=None, rng: random.Random | None = None,
                  unnamed: set[str] | frozenset[str] = frozenset()) -> list:
    """A scene's swapped-binding twins, the hard negatives of its captions.

    Pairs: the colours swapped between the two objects, and the relation reversed (the same
    objects, the other way round). When the colours are equal (swapping changes nothing)
    the second object's colour is changed instead. Single objects: two of shape, colour,
    size, position and style changed (chosen with rng among those not in `unnamed`, the
    attributes a caption leaves out; without rng, the next colour and the next shape)."""
    from . import world_v2 as w2

    config = config or w2.DEFAULT
    a = scene.objects[0]
    if scene.is_pair:
        b = scene.objects[1]
        if a.color != b.color:
            swapped = w2.Scene.pair(w2.Thing(a.shape, b.color), str(scene.relation),
                                    w2.Thing(b.shape, a.color), scene.background, scene.style)
        else:
            other = _next(config.colors, b.color)
            swapped = w2.Scene.pair(a, str(scene.relation), w2.Thing(b.shape, other),
                                    scene.background, scene.style)
        reversed_ = w2.Scene.pair(a, w2.INVERSE[str(scene.relation)], b, scene.background,
                                  scene.style)
        return [swapped, reversed_]
    attrs = single_attributes(scene)
    if rng is None:  # the next colour and the next shape
        changes = [("color", _next(config.colors, a.color)),
                   ("shape", _next(config.shapes, a.shape))]
    else:  # two attributes, each changed to a random other value
        names = rng.sample(sorted(set(SINGLE_TWIN_ATTRIBUTES) - set(unnamed)), 2)
        changes = [(n, rng.choice([v for v in _single_values(config)[n] if v != attrs[n]]))
                   for n in names]
    return [w2.Scene.single(**{**attrs, name: value}) for name, value in changes]


# What a single object's hard negatives change (one attribute each): a contrastive batch of
# random scenes is told apart by colour and background alone, so without these the model
# never learns shape, position or size (measured: shape 0.31, position 0.12 with colour and
# shape twins only).
SINGLE_TWIN_ATTRIBUTES = ("shape", "color", "size", "position", "style")


def single_attributes(scene) -> dict[str, str]:
    """A single-object scene as the keyword arguments of world_v2.Scene.single."""
    a = scene.objects[0]
    return {"shape": a.shape, "color": a.color, "size": a.size,
            "position": str(scene.position), "background": scene.background,
            "style": scene.style}


def _single_values(config) -> dict[str, list[str]]:
    from . import world_v2 as w2

    return {"shape": list(config.shapes), "color": list(config.colors),
            "size": list(config.sizes), "position": list(w2.POSITIONS),
            "background": list(config.backgrounds), "style": list(config.styles)}


def _next(options, value):
    return options[(options.index(value) + 1) % len(options)]


def _key(attributes: dict) -> dict:
    """Attributes compared for a caption-image match: canonical relation order, and how many
    objects (a single object's caption never matches a pair)."""
    from . import world_v2 as w2

    out = w2.canonical(attributes)
    out["objects"] = "2" if "shape2" in attributes else "1"
    return out


class V2Task:
    """World v2 for the stand-in CLIP: the whole world (held-out combinations included, as a
    pretrained CLIP would have seen them), random paraphrases that sometimes leave out size
    or position, and `hard_negatives` swapped-binding twins per caption (0: none)."""

    def __init__(self, config=None, hard_negatives: int = 2, eval_images: int = 600):
        from . import world_v2 as w2

        self.w = w2
        self.config = config or w2.DEFAULT
        self.hard_negatives = hard_negatives
        self.eval_images = eval_images

    def vocabulary_texts(self) -> list[str]:
        return self.w.vocabulary_texts(self.config)

    def pool(self, cfg: CLIPTrainConfig):
        scenes = self.w.sample_scenes(cfg.pool, cfg.seed + 11, self.config, held_out=True)
        return scenes, self.w.render_many(scenes, cfg.seed + 11, self.config)

    def batch(self, pool, tok, cfg: CLIPTrainConfig, step: int):
        """(pixels [B, 3, R, R], ids [B, 1 + hard_negatives, L], match [B, B * (1 + h)]):
        text j * (1 + h) is image j's caption, the h after it its twins' captions."""
        scenes_all, images = pool
        g = step_generator(cfg.seed, step)
        idx = torch.randint(len(scenes_all), (cfg.batch,), generator=g).tolist()
        rng = random.Random(int(torch.randint(2**31, (1,), generator=g)))
        scenes = [scenes_all[i] for i in idx]
        texts, named = [], []
        for s in scenes:
            cap, attrs = self.w.random_caption(s, rng)
            texts.append(cap)
            named.append(_key(attrs))
            omitted = set(s.attributes()) - set(attrs)
            for twin in binding_twins(s, self.config, rng, omitted)[: self.hard_negatives]:
                texts.append(self.w.caption(twin, rng, omitted))
                named.append(_key({k: v for k, v in twin.attributes().items()
                                   if k not in omitted}))
        per = 1 + self.hard_negatives
        ids = models.tokenize(_memoized(tok), texts, cfg.train_context).view(len(idx), per, -1)
        keys = [_key(s.attributes()) for s in scenes]
        match = torch.tensor([[compatible(n, k) for n in named] for k in keys],
                             dtype=torch.float32)  # [img, txt]
        x = models.clip_normalize(models.uint8_to_unit(images[idx]), self.config.resolution)
        return x, ids, match

    @torch.no_grad()
    def metrics(self, clip, tok, cfg: CLIPTrainConfig) -> dict:
        return clip_metrics_v2(clip, tok, self.config, self.eval_images, cfg.seed + 12)


def _memoized(tok):
    """The tokenizer with its BPE of a word cached (a pure function of the word): the world's
    few hundred words are merged once instead of 400 times a batch (half of a step's time)."""
    if not getattr(tok, "_bpe_cached", False):
        cache: dict[str, list[str]] = {}
        bpe_word = tok.bpe

        def cached(piece: str) -> list[str]:
            if piece not in cache:
                cache[piece] = bpe_word(piece)
            return cache[piece]

        tok.bpe = cached
        tok._bpe_cached = True
    return tok


def single_scenes(config) -> list:
    """Every single-object scene of a world v2 configuration (held-out ones included)."""
    from . import world_v2 as w2

    return [w2.Scene.single(sh, c, z, p, bg, st) for sh in config.shapes for c in config.colors
            for z in config.sizes for p in w2.POSITIONS for bg in config.backgrounds
            for st in config.styles]


@torch.no_grad()
def clip_metrics_v2(clip, tok, config, n: int = 600, seed: int = 12) -> dict:
    """The stand-in CLIP on world v2 (whole world, held-out combinations included):
    zero_shot_top1: single objects, the best of every single-object canonical caption of the
        world is the image's own (all six attributes right);
    zero_shot_attributes: single objects, per attribute: the image's own caption scores above
        every caption that changes only that attribute;
    pair_retrieval_top1: pairs, text -> image: a pair caption's best image (among n/2 pair
        images) shows that pair;
    binding_accuracy: pairs, the image's caption scores above both swapped-binding twins."""
    w2 = _w2()
    clip.eval()
    singles = w2.sample_scenes(n // 2, seed, config, held_out=True, pair_fraction=0.0)
    pairs = w2.sample_scenes(n // 2, seed + 1, config, held_out=True, pair_fraction=1.0)
    everything = single_scenes(config)
    index = {s: i for i, s in enumerate(everything)}
    t = torch.cat([models.encode_texts(clip, tok, [w2.prompt(s) for s in everything[i:i + 2048]])
                   for i in range(0, len(everything), 2048)])
    e = models.encode_images(clip, w2.render_many(singles, seed, config))
    scores = e @ t.t()
    pred = scores.argmax(1)
    want = torch.tensor([index[s] for s in singles])
    top1 = float((pred == want).float().mean())
    per_attribute = {}
    for name, values in _single_values(config).items():
        # the image's own caption against those that change only this attribute
        rows = [[index[w2.Scene.single(**{**single_attributes(s), name: v})] for v in values]
                for s in singles]
        best = scores.gather(1, torch.tensor(rows)).argmax(1).tolist()
        truth = [values.index(single_attributes(s)[name]) for s in singles]
        per_attribute[name] = float(np.mean([b == w for b, w in zip(best, truth)]))

    pe = models.encode_images(clip, w2.render_many(pairs, seed + 1, config))
    pt = models.encode_texts(clip, tok, [w2.prompt(s) for s in pairs])
    keys = [json.dumps(_key(s.attributes()), sort_keys=True) for s in pairs]
    best_image = (pt @ pe.t()).argmax(1).tolist()
    retrieval = float(np.mean([keys[j] == keys[i] for i, j in enumerate(best_image)]))

    twins = [binding_twins(s, config) for s in pairs]
    tt = models.encode_texts(clip, tok, [w2.prompt(x) for ts in twins for x in ts])
    tt = tt.view(len(pairs), -1, tt.shape[-1])
    own = (pe * pt).sum(-1)
    other = (tt @ pe[:, :, None]).squeeze(-1).max(1).values
    binding = float((own > other).float().mean())
    return {"zero_shot_top1": top1, "zero_shot_attributes": per_attribute,
            "pair_retrieval_top1": retrieval,
            "binding_accuracy": binding, "single_images": len(singles),
            "pair_images": len(pairs), "single_captions": len(everything)}


def _w2():
    from . import world_v2

    return world_v2
