"""The judge: reads shape, colour, size and position off an image with plain geometry.

Independent of any CLIP: no learned weights. Steps, for an RGB uint8 image:
    1. background = median of the border pixels;
    2. coverage = per-pixel colour distance from the background, divided by the distance of
       the most distant pixel (soft mask in [0, 1]); foreground = coverage > 0.5;
    3. colour = the palette colour nearest to the mean of the strongly covered pixels;
    4. position = x of the coverage-weighted centroid (thirds with boundaries halfway between
       the world's position centres); size = bounding-box extent of the foreground (boundary
       halfway between the two sizes);
    5. shape = the shape whose rendering with the observed area (sum of coverage) and the
       observed centroid overlaps the coverage best (soft IoU).
An image with too little foreground, or with several blobs, is judged as "none" everywhere.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from . import world

MIN_CONTRAST = 60.0  # colour distance below which there is no object at all
MIN_PIXELS = 12


@dataclass
class Verdict:
    shape: str
    color: str
    size: str
    position: str
    extent: float
    centroid_x: float
    shape_score: float

    def attributes(self) -> dict[str, str]:
        return {"shape": self.shape, "color": self.color, "size": self.size,
                "position": self.position}


NONE = Verdict("none", "none", "none", "none", 0.0, 0.0, 0.0)

_geometry: dict[str, tuple[float, float]] | None = None


def shape_geometry() -> dict[str, tuple[float, float]]:
    """Per shape: (area / extent^2, centroid y offset from the box centre / extent)."""
    global _geometry
    if _geometry is None:
        _geometry = {}
        for s in world.SHAPES:
            m = world.shape_mask(s, 64)
            dy = float((m.sum(1) * (np.arange(64) + 0.5)).sum() / m.sum()) / 64 - 0.5
            _geometry[s] = (float(m.mean()), dy)
    return _geometry


def template_at(shape: str, area: float, cx: float, cy: float) -> np.ndarray:
    """Coverage [32, 32] of `shape` with the given area (pixels) and centroid, drawn the way
    the world draws (4x supersampled, box filter)."""
    fill, dy = shape_geometry()[shape]
    extent = (area / fill) ** 0.5
    k = world.SUPERSAMPLE
    big = world.RESOLUTION * k
    img = Image.new("L", (big, big), 0)
    world.draw_shape(ImageDraw.Draw(img), shape, cx * k, (cy - dy * extent) * k, extent * k, 255)
    img = img.resize((world.RESOLUTION, world.RESOLUTION), Image.BOX)
    return np.asarray(img, dtype=np.float32) / 255.0


def _blobs(mask: np.ndarray) -> list[int]:
    """Sizes of 4-connected components of a bool mask."""
    seen = np.zeros_like(mask)
    sizes = []
    h, w = mask.shape
    for y in range(h):
        for x in range(w):
            if mask[y, x] and not seen[y, x]:
                stack = [(y, x)]
                seen[y, x] = True
                n = 0
                while stack:
                    cy, cx = stack.pop()
                    n += 1
                    for ny, nx in ((cy + 1, cx), (cy - 1, cx), (cy, cx + 1), (cy, cx - 1)):
                        if 0 <= ny < h and 0 <= nx < w and mask[ny, nx] and not seen[ny, nx]:
                            seen[ny, nx] = True
                            stack.append((ny, nx))
                sizes.append(n)
    return sorted(sizes, reverse=True)


def judge(image: np.ndarray) -> Verdict:
    """image: uint8 [H, W, 3]; other sizes are box-resized to the world's 32 pixels first."""
    r = world.RESOLUTION
    if image.shape[:2] != (r, r):
        image = np.asarray(Image.fromarray(image).convert("RGB").resize((r, r), Image.BOX))
    img = image.astype(np.float32)
    h, w = img.shape[:2]
    border = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]])
    bg = np.median(border, axis=0)
    dist = np.sqrt(((img - bg) ** 2).sum(-1))
    peak = float(dist.max())
    if peak < MIN_CONTRAST:
        return NONE
    cover = np.clip(dist / peak, 0, 1)
    fg = cover > 0.5
    if fg.sum() < MIN_PIXELS:
        return NONE
    blobs = _blobs(fg)
    if len(blobs) > 1 and blobs[1] > 0.25 * blobs[0]:
        return NONE  # two objects, or one torn apart
    core = cover > 0.8
    mean = img[core].mean(axis=0)
    names = list(world.COLORS)
    palette = np.array([world.COLORS[c] for c in names], dtype=np.float32)
    color = names[int(((palette - mean) ** 2).sum(-1).argmin())]

    ys, xs = np.nonzero(fg)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    extent = float(max(y1 - y0, x1 - x0))
    size = "small" if extent < (world.SIZES["small"] + world.SIZES["large"]) / 2 else "large"
    weights = cover * fg
    cx = float((weights.sum(0) * (np.arange(w) + 0.5)).sum() / weights.sum())
    centres = sorted(world.POSITIONS.items(), key=lambda kv: kv[1])
    position = centres[0][0]
    for (_, a), (name, b) in itertools.pairwise(centres):
        if cx >= (a + b) / 2:
            position = name

    area = float(cover.sum())
    cy = float((weights.sum(1) * (np.arange(h) + 0.5)).sum() / weights.sum())
    observed = cover
    best, best_iou = "none", -1.0
    for name in world.SHAPES:
        t = template_at(name, area, cx, cy)
        iou = float(np.minimum(observed, t).sum() / max(np.maximum(observed, t).sum(), 1e-6))
        if iou > best_iou:
            best, best_iou = name, iou
    return Verdict(best, color, size, position, float(extent), cx, best_iou)


def score(image: np.ndarray, wanted: dict[str, str]) -> dict[str, bool]:
    """Per-attribute correctness against the attributes a prompt asks for, plus "all"."""
    got = judge(image).attributes()
    out = {k: got[k] == v for k, v in wanted.items()}
    out["all"] = all(out.values())
    return out
