"""The judge for world v2: reads objects, relation, background and style with plain geometry.

Independent of any CLIP: no learned weights. For an RGB image (resized to the world's
resolution first):
    1. background: backgrounds vary only vertically and objects keep off the outer columns, so
       each row's background is the median of its two leftmost and two rightmost pixels; the
       kind is read off those row colours (dark = night; blue above green = outdoors);
    2. foreground = colour distance from the row's background above FOREGROUND; specks smaller
       than a star-sized blob are dropped, then a one-pixel closing and hole filling turn
       outlines (sketch) and stripes into solid silhouettes; the one or two largest
       silhouettes are the objects;
    3. colour: every strongly covered pixel lies near the segment from its background to its
       object's colour (anti-aliasing and blur mix the two); it votes for the palette colour
       whose segment it is nearest, when that is near enough; the most votes win;
    4. shape: the silhouette's bounding box, stretched to a square, against each shape's
       template (soft IoU); size from the box's longer side, position from the box centre
       (thresholds halfway between the world's sizes and grid centres);
    5. relation of a pair: the axis of the larger offset between the two box centres;
    6. style: pixel art if the image is made of aligned 2 x 2 blocks (pixel differences inside
       blocks much smaller than across them, where the image has edges); otherwise by how much
       of a silhouette's interior has the object's colour (all: plain; about half: stripes;
       little: sketch).
No object (too little contrast) gives "none" for every object attribute.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from . import world_v2 as world

FOREGROUND = 45.0  # colour distance from the background that counts as foreground
MIN_CONTRAST = 60.0  # no pixel this far from the background: no object at all
VOTE_RESIDUAL = 40.0  # how far from a colour's background-to-colour segment a vote may lie
PURE = 0.75  # a voting pixel is at least this much its colour (not background)
PIXEL_ART_RATIO = 0.35  # within-block / across-block differences below this: pixel art
ON_SEGMENT = 20.0  # a pixel this near the background-to-colour segment is colour, bg or a mix
PLAIN_ABOVE = 0.85  # share of the interior in the object's colour above this: plain fill
STRIPES_ABOVE = 0.15  # share of the interior off the segment (white stripes) above: stripes
TEMPLATE_CUT = 0.35  # coverage at which a template pixel counts (matches FOREGROUND's reach)


@dataclass
class ObjectVerdict:
    shape: str
    color: str
    size: str
    position: str
    extent: float  # bounding-box longer side, canvas units
    cx: float  # bounding-box centre, canvas units
    cy: float
    shape_score: float  # soft IoU with the best template
    color_fraction: float  # share of the interior in the object's colour (style cue)


@dataclass
class Verdict:
    objects: list[ObjectVerdict]  # at most 2; a pair in reading order (left/top first)
    background: str
    style: str
    relation: str | None = None  # objects[0] relative to objects[1]: "left of" or "above"
    blockiness: float = field(default=1.0)

    def attributes(self) -> dict[str, str]:
        """In the keys of world_v2.Scene.attributes, single or pair by how many objects."""
        out: dict[str, str]
        if not self.objects:
            out = {k: "none" for k in ("shape", "color", "size", "position")}
        elif len(self.objects) == 1:
            o = self.objects[0]
            out = {"shape": o.shape, "color": o.color, "size": o.size, "position": o.position}
        else:
            a, b = self.objects
            out = {"shape": a.shape, "color": a.color, "shape2": b.shape, "color2": b.color,
                   "relation": str(self.relation)}
        out.update(background=self.background, style=self.style)
        return out


# -- masks without scipy ------------------------------------------------------------------------


def _shift(mask: np.ndarray, dy: int, dx: int, fill: bool) -> np.ndarray:
    out = np.full_like(mask, fill)
    h, w = mask.shape
    out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        mask[max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


_EIGHT = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]


def _dilate(mask: np.ndarray) -> np.ndarray:
    out = mask.copy()
    for dy, dx in _EIGHT:
        out |= _shift(mask, dy, dx, False)
    return out


def _erode(mask: np.ndarray) -> np.ndarray:
    out = mask.copy()
    for dy, dx in _EIGHT:
        out &= _shift(mask, dy, dx, True)
    return out


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """mask plus every region the border cannot reach through non-mask pixels."""
    free = ~mask
    outside = np.zeros_like(mask)
    outside[0], outside[-1], outside[:, 0], outside[:, -1] = free[0], free[-1], free[:, 0], \
        free[:, -1]
    while True:
        grown = outside.copy()
        for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):
            grown |= _shift(outside, dy, dx, False)
        grown &= free
        if np.array_equal(grown, outside):
            return ~outside
        outside = grown


def _label(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """8-connected components: labels (0 = background, 1..n) by minimum propagation."""
    h, w = mask.shape
    big = h * w + 1
    lab = np.where(mask, np.arange(1, h * w + 1).reshape(h, w), big)
    while True:
        low = lab.copy()
        for dy, dx in _EIGHT:
            shifted = np.full_like(lab, big)
            shifted[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
                lab[max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
            low = np.minimum(low, shifted)
        low = np.where(mask, low, big)
        if np.array_equal(low, lab):
            break
        lab = low
    ids = np.unique(lab[mask])
    out = np.zeros((h, w), np.int64)
    for i, v in enumerate(ids, 1):
        out[lab == v] = i
    return out, len(ids)


# -- the judge ----------------------------------------------------------------------------------


def background_kind(rows: np.ndarray) -> str:
    """rows: float [H, 3] background colour per row."""
    if rows.mean(-1).mean() < 90:
        return "night"
    q = len(rows) // 4
    top, bottom = rows[:q].mean(0), rows[-q:].mean(0)
    if top[2] > top[0] + 30 and bottom[1] > bottom[2] + 30 and bottom[1] > bottom[0]:
        return "outdoors"
    return "plain"


def blockiness(img: np.ndarray) -> float:
    """Summed pixel differences inside aligned 2 x 2 blocks over those across block borders:
    ~0 for pixel art, ~1 for smooth renders."""
    inside, across = [], []
    for a in (img, img.transpose(1, 0, 2)):
        d = np.abs(np.diff(a, axis=1)).sum(-1)  # [H, W-1]: difference of x and x+1
        inside.append(d[:, 0::2])
        across.append(d[:, 1::2])
    within = sum(float(x.sum()) for x in inside)
    between = sum(float(x.sum()) for x in across)
    return within / max(between, 1e-6)


def _votes(pixels: np.ndarray, bgs: np.ndarray, palette: np.ndarray, min_a: float = 0.0
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pixel: nearest colour segment index (among those where the pixel's mixing weight a
    is at least min_a, when any is), its residual and a."""
    v = palette[None] - bgs[:, None]  # [N, C, 3]
    p = (pixels - bgs)[:, None]  # [N, 1, 3]
    a = np.clip((p * v).sum(-1) / np.maximum((v * v).sum(-1), 1e-6), 0, 1)  # [N, C]
    res = np.sqrt(((p - a[..., None] * v) ** 2).sum(-1))  # [N, C]
    best = (res + np.where(a < min_a, 1e6, 0.0)).argmin(1)
    idx = np.arange(len(best))
    return best, res[idx, best], a[idx, best]


def _nearest(value: float, centres: dict[str, float]) -> str:
    return min(centres, key=lambda k: abs(centres[k] - value))


def judge(image: np.ndarray | Image.Image,
          config: world.WorldConfig = world.DEFAULT) -> Verdict:
    """image: uint8 [H, W, 3] or a PIL image; other sizes are box-resized to the world's."""
    r = config.resolution
    pil = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
    pil = pil.convert("RGB")
    if pil.size != (r, r):
        pil = pil.resize((r, r), Image.BOX)
    img = np.asarray(pil, np.float32)
    unit = world.CANVAS / r  # canvas units per pixel

    rows = np.median(np.concatenate([img[:, :2], img[:, -2:]], axis=1), axis=1)  # [H, 3]
    background = background_kind(rows)
    block = blockiness(img) if r >= 16 else 1.0
    bg = np.broadcast_to(rows[:, None, :], img.shape)
    dist = np.sqrt(((img - bg) ** 2).sum(-1))
    if dist.max() < MIN_CONTRAST:
        return Verdict([], background, "plain", None, block)

    fg = dist > FOREGROUND
    labels, n = _label(fg)
    min_blob = max(3, round(10 / unit ** 2))
    counts = np.bincount(labels.ravel(), minlength=n + 1)
    fg &= (counts >= min_blob)[labels] & (labels > 0)
    solid = _fill_holes(_erode(_dilate(fg)) | fg)
    labels, n = _label(solid)
    counts = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    order = np.argsort(-counts)
    keep = [i + 1 for i in order[:2]
            if counts[i] >= max(min_blob * 2, 0.2 * counts[order[0]])]
    if not keep:
        return Verdict([], background, "plain", None, block)

    names = list(config.colors)
    palette = np.array([world.COLORS[c] for c in names], np.float32)
    found = [_colour_and_fill(img, bg, fg, labels == lab, palette, unit) for lab in keep]

    # style, from the whole image: blocks, then how the interiors are filled
    coloured = sum(f[1] for f in found)
    off = sum(f[2] for f in found)
    inside = max(sum(f[3] for f in found), 1)
    if block < PIXEL_ART_RATIO:
        style = "pixel"
    elif coloured / inside > PLAIN_ABOVE:
        style = "plain"
    elif off / inside > STRIPES_ABOVE:
        style = "stripes"
    else:
        style = "sketch"

    objects = [_read_object(labels == lab, names[f[0]], (f[1] / max(f[3], 1)), style, r, unit)
               for lab, f in zip(keep, found, strict=True)]
    relation = None
    if len(objects) == 2:
        a, b = objects
        dx, dy = b.cx - a.cx, b.cy - a.cy
        if abs(dx) >= abs(dy):
            objects = sorted(objects, key=lambda o: o.cx)
            relation = "left of"
        else:
            objects = sorted(objects, key=lambda o: o.cy)
            relation = "above"
    return Verdict(objects, background, style, relation, block)


def _colour_and_fill(img: np.ndarray, bg: np.ndarray, fg: np.ndarray, mask: np.ndarray,
                     palette: np.ndarray, unit: float) -> tuple[int, int, int, int]:
    """(palette index, interior pixels in that colour, interior pixels off the
    background-to-colour segment, interior pixels). The interior is the silhouette less a
    one-pixel rim (at 64 px)."""
    strong = mask & fg
    pixels, bgs = img[strong], bg[strong]
    _, res, _ = _votes(pixels, bgs, palette)
    candidates = res < VOTE_RESIDUAL  # colour, background or a mix of the two (not white)
    if candidates.any():
        # only the purest pixels vote: on a dark background a half-covered orange pixel is
        # as brown as a brown one, so edges would outvote the inside of small objects
        d = np.sqrt(((pixels - bgs) ** 2).sum(-1))
        far = candidates & (d >= 0.8 * np.percentile(d[candidates], 95))
        best, _, _ = _votes(pixels[far], bgs[far], palette, min_a=PURE)
        k = int(np.bincount(best, minlength=len(palette)).argmax())
    else:
        mean = img[strong].mean(0) if strong.any() else img[mask].mean(0)
        k = int(((palette - mean) ** 2).sum(-1).argmin())

    interior = mask
    for _ in range(max(1, round(1 / unit))):
        nxt = _erode(interior)
        if not nxt.any():
            break
        interior = nxt
    _, ires, ia = _votes(img[interior], bg[interior], palette[k:k + 1])
    on = ires < ON_SEGMENT
    return k, int((on & (ia > 0.5)).sum()), int((~on).sum()), int(interior.sum())


def _read_object(mask: np.ndarray, color: str, fill: float, style: str, size: int,
                 unit: float) -> ObjectVerdict:
    ys, xs = np.nonzero(mask)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    extent = float(max(y1 - y0, x1 - x0)) * unit
    cx, cy = (x0 + x1) / 2 * unit, (y0 + y1) / 2 * unit
    if style == "sketch":  # the outline is centred on the shape's edge: half of it is outside
        extent -= world.STROKE
    # analysis by synthesis: each shape drawn as the world draws it into the observed box
    slack = (0.0,) if style == "pixel" else (-0.5, 0.25, 1.0)
    scores = {}
    for shape in world.SHAPES:
        best = 0.0
        for d in slack:
            t = world.silhouette(shape, cx, cy, extent - d * unit, size, style) > TEMPLATE_CUT
            best = max(best, float((t & mask).sum() / max((t | mask).sum(), 1)))
        scores[shape] = best
    shape = max(scores, key=scores.__getitem__)
    if style != "pixel":
        extent -= 0.5 * unit  # anti-aliased edge pixels count as foreground
    col = _nearest(cx, world.COLUMNS)
    row = _nearest(cy, world.ROWS)
    return ObjectVerdict(shape, color, _nearest(extent, world.SIZES),
                         world.position_name(col, row), extent, cx, cy, scores[shape], fill)


def score(image: np.ndarray | Image.Image, wanted: dict[str, str],
          config: world.WorldConfig = world.DEFAULT) -> dict[str, bool]:
    """Per-attribute correctness against the attributes a prompt asks for, plus "all".

    For a pair the judged objects are matched to the wanted ones (in whichever order agrees
    on more of shape and colour), then the relation is read in the wanted order."""
    verdict = judge(image, config)
    got = verdict.attributes()
    if "shape2" in wanted and len(verdict.objects) == 2:
        a, b = verdict.objects

        def agree(first: ObjectVerdict, second: ObjectVerdict) -> int:
            return sum((first.shape == wanted.get("shape"), first.color == wanted.get("color"),
                        second.shape == wanted.get("shape2"),
                        second.color == wanted.get("color2")))

        if agree(b, a) > agree(a, b):
            got.update(shape=b.shape, color=b.color, shape2=a.shape, color2=a.color,
                       relation=world.INVERSE[str(verdict.relation)])
    out = {k: got.get(k, "none") == v for k, v in wanted.items()}
    out["all"] = all(out.values())
    return out


def accuracy(n: int = 600, seed: int = 11, blur: float = 0.0,
             config: world.WorldConfig = world.DEFAULT) -> dict[str, float]:
    """Per-attribute accuracy of the judge on n seeded renders of the whole world (optionally
    Gaussian-blurred by `blur` pixels): how far its verdicts can be trusted."""
    from PIL import ImageFilter

    right: dict[str, list[bool]] = {}
    for i, s in enumerate(world.sample_scenes(n, seed, config, held_out=True)):
        img = world.render(s, seed=i, config=config)
        if blur:
            img = img.filter(ImageFilter.GaussianBlur(blur))
        for k, ok in score(img, s.attributes(), config).items():
            right.setdefault(k, []).append(ok)
    return {k: float(np.mean(v)) for k, v in right.items()}


if __name__ == "__main__":  # python -m training.judge_v2 [n] [blur]
    import sys

    args = sys.argv[1:]
    result = accuracy(int(args[0]) if args else 600, blur=float(args[1]) if len(args) > 1 else 0)
    print(" ".join(f"{k} {v:.3f}" for k, v in result.items()))
