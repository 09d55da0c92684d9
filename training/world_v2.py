"""The built-in world, generation 2: one or two objects, backgrounds, render styles, paraphrases.

A scene is either one object (shape, colour, size) on a 3 x 3 grid of positions, or a pair of
objects in a spatial relation ("a red circle to the left of a blue square"), on one of three
backgrounds (plain light; dark "at night"; sky over grass "outdoors"), drawn in one of four
styles (plain fill; "pencil sketch" outline; blocky "pixel art"; "stripes" pattern fill).
Geometry lives on a 64-unit canvas and scales to any image size; images are drawn at 4x and
box-filtered down (pixel art instead draws without anti-aliasing on a grid of half the image
size and scales up by nearest neighbour, so its blocks are 2 x 2 pixels).

Held out from the generator's training images (the stand-in CLIP and the judge see the whole
world): shape x colour pairs (no object of that shape in that colour, in any scene), shape x
style pairs (no object of that shape in any scene of that style) and shape pairs (those two
shapes never in one scene). `WorldConfig` carries the vocabulary and the held-out sets;
`TINY` is a 32-pixel world with fewer shapes and colours for fast tests.

The generation-1 world (`world.py`, 32 px, one shape) is unchanged beside this module.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw

from . import world as world_v1

CANVAS = 64.0  # geometry units: every coordinate below is on a 64 x 64 canvas
SUPERSAMPLE = 4

SHAPES = ("circle", "square", "triangle", "diamond", "cross", "star")
# world v1's six colours, and two more
COLORS: dict[str, tuple[int, int, int]] = {
    **world_v1.COLORS,
    "pink": (240, 110, 180),
    "brown": (130, 75, 35),
}
SIZES = {"small": 10.0, "medium": 15.0, "large": 20.0}  # bounding-box side in canvas units
COLUMNS = {"left": 16.0, "middle": 32.0, "right": 48.0}  # centre x
ROWS = {"top": 16.0, "middle": 32.0, "bottom": 48.0}  # centre y
BACKGROUNDS = ("plain", "night", "outdoors")
STYLES = ("plain", "sketch", "pixel", "stripes")
RELATIONS = ("left of", "right of", "above", "below")
INVERSE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
PAIR_SIZE = "medium"  # objects of a pair are medium-sized (size is not captioned for pairs)


def position_name(column: str, row: str) -> str:
    """The 3 x 3 grid's names: "left", "middle", "top", "top left", "bottom right", ..."""
    if row == "middle":
        return column
    if column == "middle":
        return row
    return f"{row} {column}"


POSITIONS: dict[str, tuple[str, str]] = {
    position_name(c, r): (c, r) for r in ROWS for c in COLUMNS
}  # name -> (column, row)

# Jitter (uniform, +-): extent scale, centre x/y (canvas units), colour per channel.
SIZE_JITTER = 0.06
POSITION_JITTER = 1.5
COLOR_JITTER = 10
# Pairs: distance between the two centres along the relation's axis, and across it.
PAIR_DISTANCE = (25.0, 31.0)
PAIR_CROSS_JITTER = 2.0
PAIR_CENTRE_JITTER = 5.0  # the pair as a whole moves this far off the canvas centre
STRIPE_PERIOD = 6.0  # canvas units (3 colour, 3 white), diagonal
STROKE = 1.6  # sketch line width, canvas units, centred on the shape's edge
SKETCH_WOBBLE = 0.3  # how far a sketch's vertices stray, canvas units
STRIPE_EDGE = 1.0  # width of the outline inside a striped shape, canvas units
STRIPE_WHITE = (255, 255, 255)


@dataclass(frozen=True)
class WorldConfig:
    """Vocabulary, image size and held-out sets of one world."""

    resolution: int = 64  # image side in pixels
    shapes: tuple[str, ...] = SHAPES
    colors: tuple[str, ...] = tuple(COLORS)
    sizes: tuple[str, ...] = tuple(SIZES)
    backgrounds: tuple[str, ...] = BACKGROUNDS
    styles: tuple[str, ...] = STYLES
    # Held out from the generator's images:
    held_out_colors: tuple[tuple[str, str], ...] = (  # (shape, colour), any object
        ("triangle", "blue"),
        ("circle", "orange"),
        ("square", "purple"),
        ("cross", "green"),
        ("star", "pink"),
        ("diamond", "brown"),
    )
    held_out_styles: tuple[tuple[str, str], ...] = (  # (shape, style), any object
        ("circle", "pixel"),
        ("triangle", "sketch"),
        ("square", "stripes"),
    )
    held_out_pairs: tuple[tuple[str, str], ...] = (  # two shapes never in one scene (sorted)
        ("star", "triangle"),
        ("cross", "diamond"),
    )
    pair_fraction: float = 0.4  # share of two-object scenes when sampling


DEFAULT = WorldConfig()
TINY = WorldConfig(
    resolution=32,
    shapes=("circle", "square", "triangle", "cross"),
    colors=("red", "green", "blue", "yellow"),
    held_out_colors=(("triangle", "blue"), ("cross", "green")),
    held_out_styles=(("circle", "pixel"), ("square", "sketch")),
    held_out_pairs=(("cross", "triangle"), ("circle", "square")),
)

ConfigName = Literal["default", "tiny"]
CONFIGS: dict[ConfigName, WorldConfig] = {"default": DEFAULT, "tiny": TINY}  # by name (CLIs)


@dataclass(frozen=True)
class Thing:
    """One object: shape, colour and size."""

    shape: str
    color: str
    size: str = PAIR_SIZE


@dataclass(frozen=True)
class Scene:
    """One object at a grid position, or two objects where objects[0] <relation> objects[1]."""

    objects: tuple[Thing, ...]
    position: str | None = None  # single objects: a key of POSITIONS
    relation: str | None = None  # pairs: one of RELATIONS
    background: str = "plain"
    style: str = "plain"

    @staticmethod
    def single(shape: str, color: str, size: str, position: str,
               background: str = "plain", style: str = "plain") -> Scene:
        return Scene((Thing(shape, color, size),), position, None, background, style)

    @staticmethod
    def pair(first: Thing, relation: str, second: Thing,
             background: str = "plain", style: str = "plain") -> Scene:
        return Scene((first, second), None, relation, background, style)

    @property
    def is_pair(self) -> bool:
        return len(self.objects) == 2

    def attributes(self) -> dict[str, str]:
        """What a caption names and the judge reads: single objects shape, color, size,
        position; pairs shape, color, shape2, color2, relation; both background and style."""
        a = self.objects[0]
        out = {"shape": a.shape, "color": a.color}
        if self.is_pair:
            b = self.objects[1]
            out.update(shape2=b.shape, color2=b.color, relation=str(self.relation))
        else:
            out.update(size=a.size, position=str(self.position))
        out.update(background=self.background, style=self.style)
        return out

    def validate(self) -> None:
        if len(self.objects) not in (1, 2):
            raise ValueError(f"a scene has one or two objects, not {len(self.objects)}")
        for t in self.objects:
            if t.shape not in SHAPES or t.color not in COLORS or t.size not in SIZES:
                raise ValueError(f"unknown object {t}")
        if self.is_pair:
            if self.relation not in RELATIONS:
                raise ValueError(f"unknown relation {self.relation!r}")
            a, b = self.objects
            if (a.shape, a.color) == (b.shape, b.color):
                raise ValueError("the two objects of a pair must differ in shape or colour")
        elif self.position not in POSITIONS:
            raise ValueError(f"unknown position {self.position!r}")
        if self.background not in BACKGROUNDS or self.style not in STYLES:
            raise ValueError(f"unknown background or style in {self}")


def canonical(attributes: dict[str, str]) -> dict[str, str]:
    """The same attributes with a pair's relation written as "left of" or "above" (swapping
    the objects): "a red circle right of a blue square" means what "a blue square left of a
    red circle" means."""
    out = dict(attributes)
    if out.get("relation") in ("right of", "below"):
        out["relation"] = INVERSE[out["relation"]]
        for k in ("shape", "color"):
            if k in out or k + "2" in out:
                first, second = out.pop(k, None), out.pop(k + "2", None)
                if second is not None:
                    out[k] = second
                if first is not None:
                    out[k + "2"] = first
    return out


def held_out_reasons(scene: Scene, config: WorldConfig = DEFAULT) -> set[str]:
    """Why the generator may not see `scene`: a subset of {"color", "style", "pair"}."""
    reasons = set()
    for t in scene.objects:
        if (t.shape, t.color) in config.held_out_colors:
            reasons.add("color")
        if (t.shape, scene.style) in config.held_out_styles:
            reasons.add("style")
    if scene.is_pair:
        shapes = tuple(sorted(t.shape for t in scene.objects))
        if shapes in {tuple(sorted(p)) for p in config.held_out_pairs}:
            reasons.add("pair")
    return reasons


def is_held_out(scene: Scene, config: WorldConfig = DEFAULT) -> bool:
    return bool(held_out_reasons(scene, config))


# -- sampling ---------------------------------------------------------------------------------


def random_scene(rng: random.Random, config: WorldConfig = DEFAULT,
                 pair: bool | None = None) -> Scene:
    """A uniformly drawn scene of the world (held-out or not)."""
    if pair is None:
        pair = rng.random() < config.pair_fraction
    background = rng.choice(config.backgrounds)
    style = rng.choice(config.styles)
    if not pair:
        return Scene.single(rng.choice(config.shapes), rng.choice(config.colors),
                            rng.choice(config.sizes), rng.choice(list(POSITIONS)),
                            background, style)
    while True:
        a = Thing(rng.choice(config.shapes), rng.choice(config.colors))
        b = Thing(rng.choice(config.shapes), rng.choice(config.colors))
        if a != b:
            return Scene.pair(a, rng.choice(RELATIONS), b, background, style)


def sample_scenes(n: int, seed: int, config: WorldConfig = DEFAULT,
                  held_out: bool = False, pair_fraction: float | None = None) -> list[Scene]:
    """n seeded scenes. held_out=False (the generator's data) redraws every held-out scene;
    held_out=True (the stand-in CLIP's data) keeps the whole world."""
    if pair_fraction is not None:
        config = _with(config, pair_fraction=pair_fraction)
    rng = random.Random(seed)
    out: list[Scene] = []
    while len(out) < n:
        pair = rng.random() < config.pair_fraction  # drawn first: rejection keeps the share
        s = random_scene(rng, config, pair)
        while not held_out and is_held_out(s, config):
            s = random_scene(rng, config, pair)
        out.append(s)
    return out


def training_scenes(n: int, seed: int, config: WorldConfig = DEFAULT) -> list[Scene]:
    """The generator's scenes: never a held-out combination."""
    return sample_scenes(n, seed, config, held_out=False)


def _with(config: WorldConfig, **changes) -> WorldConfig:
    from dataclasses import replace

    return replace(config, **changes)


# -- evaluation prompts -----------------------------------------------------------------------

Split = Literal["in_distribution", "held_out"]
PromptKind = Literal["single", "pair", "style", "background"]


@dataclass(frozen=True)
class EvalPrompt:
    """A prompt the evaluation generates from, with the attributes the judge checks."""

    text: str
    scene: Scene
    kind: PromptKind
    held_out: tuple[str, ...] = field(default=())  # reasons, empty in-distribution

    def attributes(self) -> dict[str, str]:
        return self.scene.attributes()


def evaluation_prompts(split: Split = "in_distribution", config: WorldConfig = DEFAULT,
                       seed: int = 0) -> list[EvalPrompt]:
    """Fixed prompts per split ("in_distribution" or "held_out"), canonical captions.

    in_distribution: every allowed shape x colour once (plain, random size and position);
    every allowed shape x style once; every shape at night and outdoors; 24 pairs.
    held_out: every held-out shape x colour pair at 3 sizes/positions; every held-out
    shape x style pair in 4 colours; every held-out shape pair in each relation.
    A different seed gives other sizes, positions and colours (validation prompts)."""
    if split not in ("in_distribution", "held_out"):
        raise ValueError(f"split is in_distribution or held_out, not {split!r}")
    rng = random.Random(seed * 7919 + (split == "held_out"))
    want_held = split == "held_out"
    out: list[EvalPrompt] = []

    def add(scene: Scene, kind: str) -> None:
        reasons = held_out_reasons(scene, config)
        assert bool(reasons) == want_held, (scene, reasons)
        out.append(EvalPrompt(prompt(scene), scene, kind, tuple(sorted(reasons))))

    def free_color(shape: str, style: str = "plain") -> str:
        while True:
            c = rng.choice(config.colors)
            if (shape, c) not in config.held_out_colors:
                return c

    def where() -> tuple[str, str]:
        return rng.choice(config.sizes), rng.choice(list(POSITIONS))

    if not want_held:
        for shape, color in itertools.product(config.shapes, config.colors):
            if (shape, color) not in config.held_out_colors:
                add(Scene.single(shape, color, *where()), "single")
        for style, shape in itertools.product(config.styles[1:], config.shapes):
            if (shape, style) not in config.held_out_styles:
                add(Scene.single(shape, free_color(shape), *where(), style=style), "style")
        for bg, shape in itertools.product(config.backgrounds[1:], config.shapes):
            add(Scene.single(shape, free_color(shape), *where(), background=bg), "background")
        n = 0
        while n < 24:
            s = random_scene(rng, _with(config, backgrounds=("plain",), styles=("plain",)),
                             pair=True)
            if not is_held_out(s, config):
                add(s, "pair")
                n += 1
        return out

    for shape, color in config.held_out_colors:
        for _ in range(3):
            add(Scene.single(shape, color, *where()), "single")
    for shape, style in config.held_out_styles:
        for color in rng.sample([c for c in config.colors
                                 if (shape, c) not in config.held_out_colors], 4):
            add(Scene.single(shape, color, *where(), style=style), "style")
    for pair in config.held_out_pairs:
        for relation in RELATIONS:
            a, b = (pair if rng.random() < 0.5 else pair[::-1])
            ca, cb = free_color(a), free_color(b)
            add(Scene.pair(Thing(a, ca), relation, Thing(b, cb)), "pair")
    return out


# -- drawing ----------------------------------------------------------------------------------


def shape_polygon(shape: str, cx: float, cy: float, extent: float) -> list[tuple[float, float]]:
    """Outline of `shape` whose bounding box is centred at (cx, cy) with longer side
    `extent`. Circles come as a 48-gon."""
    r = extent / 2
    if shape == "circle":
        return [(cx + r * math.cos(t), cy + r * math.sin(t))
                for t in (2 * math.pi * i / 48 for i in range(48))]
    if shape in ("square", "triangle", "diamond", "cross"):  # the same outlines as world v1
        return world_v1.shape_polygon(shape, cx, cy, extent)
    if shape == "star":  # five points, inner radius half the outer, one point up
        width = 2 * math.sin(math.radians(72))  # bounding box in outer radii
        height = 1 + math.cos(math.radians(36))
        outer = extent / width
        oy = cy + outer * (1 - height / 2)  # the star's centre, so the box is centred at cy
        pts = []
        for i in range(10):
            rad = outer if i % 2 == 0 else 0.5 * outer
            t = math.radians(-90 + 36 * i)
            pts.append((cx + rad * math.cos(t), oy + rad * math.sin(t)))
        return pts
    raise ValueError(f"unknown shape {shape!r}")


def shape_mask(shape: str, side: int) -> np.ndarray:
    """float [side, side] coverage of `shape` filling its box (the judge's templates)."""
    big = side * 8
    img = Image.new("L", (big, big), 0)
    ImageDraw.Draw(img).polygon(shape_polygon(shape, big / 2, big / 2, big), fill=255)
    return np.asarray(img.resize((side, side), Image.BOX), dtype=np.float32) / 255.0


def _jitter_color(rgb: tuple[int, int, int], rng: random.Random) -> tuple[int, int, int]:
    return tuple(int(np.clip(c + rng.randint(-COLOR_JITTER, COLOR_JITTER), 0, 255))
                 for c in rgb)


def _lerp(a: Sequence[float], b: Sequence[float], t: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    return a + (b - a) * t[:, None]


def background_rows(background: str, height: int, rng: random.Random,
                    bands: int = 0) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Per-row colour [height, 3] (backgrounds vary only vertically) and star positions in
    canvas units (night only). bands > 0 quantises each gradient into that many flat bands."""
    y = (np.arange(height) + 0.5) / height  # 0..1 top to bottom

    def q(t: np.ndarray) -> np.ndarray:
        return np.floor(t * bands) / max(bands - 1, 1) if bands else t

    stars: list[tuple[float, float]] = []
    if background == "plain":
        g = rng.randint(218, 236)
        rows = _lerp((g + 3, g + 3, g + 3), (g - 3, g - 3, g - 3), q(y))
    elif background == "night":
        top = (rng.randint(10, 20), rng.randint(14, 24), rng.randint(36, 50))
        bottom = (top[0] + 22, top[1] + 22, top[2] + 34)
        rows = _lerp(top, bottom, q(y))
        stars = [(rng.uniform(6, 58), rng.uniform(4, 44)) for _ in range(rng.randint(5, 10))]
    elif background == "outdoors":
        horizon = rng.uniform(0.60, 0.70)
        sky_top = (rng.randint(95, 115), rng.randint(160, 180), rng.randint(225, 240))
        sky_low = (rng.randint(175, 195), rng.randint(208, 222), rng.randint(238, 250))
        grass_top = (rng.randint(140, 155), rng.randint(192, 204), rng.randint(88, 100))
        grass_low = (grass_top[0] - 15, grass_top[1] - 14, grass_top[2] - 12)
        sky = _lerp(sky_top, sky_low, q(np.clip(y / horizon, 0, 1)))
        grass = _lerp(grass_top, grass_low, q(np.clip((y - horizon) / (1 - horizon), 0, 1)))
        rows = np.where((y < horizon)[:, None], sky, grass)
    else:
        raise ValueError(f"unknown background {background!r}")
    return np.clip(rows, 0, 255), stars


@dataclass
class _Placed:
    shape: str
    color: tuple[int, int, int]
    cx: float
    cy: float
    extent: float


def _place(scene: Scene, rng: random.Random) -> list[_Placed]:
    """Centres, extents and jittered colours, in canvas units."""
    def extent(t: Thing) -> float:
        return SIZES[t.size] * (1 + rng.uniform(-SIZE_JITTER, SIZE_JITTER))

    if not scene.is_pair:
        t = scene.objects[0]
        col, row = POSITIONS[str(scene.position)]
        cx = COLUMNS[col] + rng.uniform(-POSITION_JITTER, POSITION_JITTER)
        cy = ROWS[row] + rng.uniform(-POSITION_JITTER, POSITION_JITTER)
        return [_Placed(t.shape, _jitter_color(COLORS[t.color], rng), cx, cy, extent(t))]
    d = rng.uniform(*PAIR_DISTANCE)
    across = rng.uniform(-PAIR_CROSS_JITTER, PAIR_CROSS_JITTER)
    mx = 32 + rng.uniform(-PAIR_CENTRE_JITTER, PAIR_CENTRE_JITTER)
    my = 32 + rng.uniform(-PAIR_CENTRE_JITTER, PAIR_CENTRE_JITTER)
    dx, dy = {"left of": (-1, 0), "right of": (1, 0), "above": (0, -1), "below": (0, 1)}[
        str(scene.relation)]
    # "a left of b": a = middle + (dx, dy) * d / 2 (smaller x), b = middle - (dx, dy) * d / 2
    ox, oy = (across, 0.0) if dx == 0 else (0.0, across)
    a, b = scene.objects
    return [
        _Placed(a.shape, _jitter_color(COLORS[a.color], rng),
                mx + dx * d / 2 + ox / 2, my + dy * d / 2 + oy / 2, extent(a)),
        _Placed(b.shape, _jitter_color(COLORS[b.color], rng),
                mx - dx * d / 2 - ox / 2, my - dy * d / 2 - oy / 2, extent(b)),
    ]


def _wobbly(points: list[tuple[float, float]], rng: random.Random,
            amount: float) -> list[tuple[float, float]]:
    return [(x + rng.uniform(-amount, amount), y + rng.uniform(-amount, amount))
            for x, y in points]


def _draw_object(canvas: np.ndarray, obj: _Placed, style: str, scale: float,
                 rng: random.Random) -> None:
    """Draws one object into canvas (float [S, S, 3]; one canvas unit is `scale` of its
    pixels), hard-edged at the canvas's resolution."""
    side = canvas.shape[0]
    pts = [(x * scale, y * scale) for x, y in shape_polygon(obj.shape, obj.cx, obj.cy,
                                                             obj.extent)]
    mask_img = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(mask_img)
    color = np.asarray(obj.color, np.float32)
    if style == "sketch":
        # a hand-drawn closed outline centred on the shape's edge, its vertices wobbling
        if obj.shape == "circle":
            pts = pts[::2]
        shaky = _wobbly(pts, rng, SKETCH_WOBBLE * scale)
        draw.line(shaky + shaky[:1], fill=255, width=max(1, round(STROKE * scale)),
                  joint="curve")
        canvas[np.asarray(mask_img) > 127] = color
        return
    draw.polygon(pts, fill=255)
    mask = np.asarray(mask_img) > 127
    if style == "stripes":
        # diagonal stripes, colour and white, inside an outline (inside the shape) of colour
        yy, xx = np.mgrid[0:side, 0:side]
        period = STRIPE_PERIOD * scale
        on = ((xx + yy + rng.uniform(0, period)) % period) < period / 2
        edge = Image.new("L", (side, side), 0)
        ImageDraw.Draw(edge).line(pts + pts[:1], fill=255,
                                  width=max(1, round(2 * STRIPE_EDGE * scale)), joint="curve")
        on |= np.asarray(edge) > 127
        canvas[mask & on] = color
        canvas[mask & ~on] = STRIPE_WHITE
        return
    canvas[mask] = color


def snap_to_cells(cx: float, cy: float, extent: float, size: int) -> tuple[float, float, float]:
    """Pixel art: the extent to an odd number of grid cells, the centre to a cell centre, so
    sprites come out symmetric (the grid has size // 2 cells a side)."""
    cell = CANVAS / max(1, size // 2)
    cells = 2 * math.floor(extent / cell / 2) + 1  # the odd count nearest extent / cell

    def centre(v: float) -> float:
        return (math.floor(v / cell) + 0.5) * cell

    return centre(cx), centre(cy), cells * cell


def silhouette(shape: str, cx: float, cy: float, extent: float, size: int,
               style: str = "plain") -> np.ndarray:
    """float [size, size] coverage of one object as `render` draws it in `style` (a sketch's
    outline filled in; pixel art's cells; canvas units in, the judge's templates out)."""
    side = size * SUPERSAMPLE
    scale = side / CANVAS
    img = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(img)
    pts = [(x * scale, y * scale) for x, y in shape_polygon(shape, cx, cy, extent)]
    draw.polygon(pts, fill=255)
    if style == "sketch":
        draw.line(pts + pts[:1], fill=255, width=max(1, round(STROKE * scale)), joint="curve")
    if style == "pixel":
        return _point_sample(np.asarray(img), size).astype(np.float32) / 255.0
    return np.asarray(img.resize((size, size), Image.BOX), np.float32) / 255.0


def _point_sample(big: np.ndarray, size: int) -> np.ndarray:
    """big [S, S, ...] sampled at the centres of a (size // 2)-cell grid, each cell then
    2 x 2 pixels (nearest neighbour): pixel art."""
    grid = max(1, size // 2)
    centres = ((np.arange(grid) + 0.5) * big.shape[0] / grid).astype(int)
    small = big[centres][:, centres]
    return np.repeat(np.repeat(small, size // grid, 0), size // grid, 1)


def render(scene: Scene, size: int | None = None, seed: int | random.Random = 0,
           config: WorldConfig = DEFAULT) -> Image.Image:
    """The scene as an RGB image of size x size pixels (default: the config's resolution).
    All randomness (jitter, stars, stripe phase, wobble) comes from `seed`.

    Drawn hard-edged at 4x and box-filtered down; pixel art is drawn at 4x too but point-
    sampled onto a grid of half the image size (no anti-aliasing, no bloat) and scaled up
    by nearest neighbour, over a background quantised into bands."""
    size = size or config.resolution
    rng = seed if isinstance(seed, random.Random) else random.Random(seed)
    pixel = scene.style == "pixel"
    side = size * SUPERSAMPLE
    scale = side / CANVAS
    rows, stars = background_rows(scene.background, side, rng, bands=6 if pixel else 0)
    canvas = np.repeat(rows[:, None, :], side, axis=1).astype(np.float32)
    placed = _place(scene, rng)
    if pixel:
        for p in placed:
            p.cx, p.cy, p.extent = snap_to_cells(p.cx, p.cy, p.extent, size)
    star_side = max(1, round((2 if pixel else 1) * CANVAS / size * scale))  # pixels of a star
    for sx, sy in stars:
        if any(abs(sx - p.cx) < p.extent / 2 + 3 and abs(sy - p.cy) < p.extent / 2 + 3
               for p in placed):
            continue
        v = rng.randint(170, 235)
        y0, x0 = int(sy * scale), int(sx * scale)
        canvas[y0:y0 + star_side, x0:x0 + star_side] = (v, v, min(255, v + 15))
    for obj in placed:
        _draw_object(canvas, obj, scene.style, scale, rng)
    img = Image.fromarray(np.clip(canvas + 0.5, 0, 255).astype(np.uint8))
    if pixel:
        return Image.fromarray(np.ascontiguousarray(_point_sample(np.asarray(img), size)))
    return img.resize((size, size), Image.BOX)


def render_array(scene: Scene, size: int | None = None, seed: int | random.Random = 0,
                 config: WorldConfig = DEFAULT) -> np.ndarray:
    """uint8 [size, size, 3]."""
    return np.asarray(render(scene, size, seed, config), dtype=np.uint8)


def render_many(scenes: Sequence[Scene], seed: int, config: WorldConfig = DEFAULT,
                size: int | None = None) -> np.ndarray:
    """uint8 [N, S, S, 3]; image i depends only on (seed, i)."""
    size = size or config.resolution
    out = np.empty((len(scenes), size, size, 3), dtype=np.uint8)
    for i, s in enumerate(scenes):
        out[i] = render_array(s, size, seed * 1_000_003 + i, config)
    return out


# -- captions ---------------------------------------------------------------------------------

# The first word of every table is the canonical one (`prompt`).
SHAPE_WORDS = {
    "circle": ("circle", "disc", "disk"),
    "square": ("square", "box"),
    "triangle": ("triangle",),
    "diamond": ("diamond", "rhombus"),
    "cross": ("cross", "plus sign"),
    "star": ("star",),
}
COLOR_WORDS = {c: (c,) for c in COLORS} | {"purple": ("purple", "violet")}
SIZE_WORDS = {
    "small": ("small", "little", "tiny"),
    "medium": ("medium", "medium-sized", "mid-sized"),
    "large": ("large", "big", "huge"),
}
POSITION_WORDS = {
    "left": ("on the left", "at the left", "on the left side"),
    "middle": ("in the middle", "in the center", "in the centre", "centered"),
    "right": ("on the right", "at the right", "on the right side"),
    "top": ("at the top", "at the top middle", "near the top"),
    "bottom": ("at the bottom", "at the bottom middle", "near the bottom"),
    **{f"{r} {c}": (f"in the {r} {c}", f"at the {r} {c}", f"in the {r} {c} corner",
                    f"in the {'upper' if r == 'top' else 'lower'} {c}")
       for r in ("top", "bottom") for c in ("left", "right")},
}
RELATION_WORDS = {
    "left of": ("to the left of", "left of", "on the left of"),
    "right of": ("to the right of", "right of", "on the right of"),
    "above": ("above", "over"),
    "below": ("below", "under", "beneath"),
}
# "X on the left and Y on the right": where each object of a pair is, per relation
PAIR_SIDES = {"left of": ("on the left", "on the right"), "right of": ("on the right", "on the left"),
              "above": ("at the top", "at the bottom"), "below": ("at the bottom", "at the top")}
BACKGROUND_WORDS = {
    "plain": ("", "on a plain background", "on a white background"),
    "night": ("at night", "at night time", "under the night sky", "in the dark"),
    "outdoors": ("outdoors", "outside", "in a field", "under a blue sky"),
}
STYLE_FRAMES = {  # {} is the rest of the caption
    "plain": ("{}", "a picture of {}", "an image of {}"),
    "sketch": ("a pencil sketch of {}", "a sketch of {}", "{}, pencil sketch",
               "an outline drawing of {}", "a line drawing of {}"),
    "pixel": ("{} in pixel art", "pixel art of {}", "{}, pixel art", "a pixel art image of {}"),
    "stripes": ("{} with stripes", "{}, striped", "{} in stripes", "{} with a striped pattern"),
}

Choose = Callable[[Sequence[str]], Sequence[str]]


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _noun_phrases(t: Thing, choose: Choose, with_size: bool) -> list[str]:
    out = []
    sizes = choose(SIZE_WORDS[t.size]) if with_size else [""]
    for size, color, shape in itertools.product(sizes, choose(COLOR_WORDS[t.color]),
                                                choose(SHAPE_WORDS[t.shape])):
        words = " ".join(w for w in (size, color, shape) if w)
        out.append(f"{_article(words)} {words}")
    return out


def _cores(scene: Scene, choose: Choose, omit: Iterable[str]) -> list[str]:
    """The object part of a caption (no background, no style)."""
    omit = set(omit)
    if not scene.is_pair:
        t = scene.objects[0]
        nps = _noun_phrases(t, choose, "size" not in omit)
        if "position" in omit:
            return nps
        wheres = choose(POSITION_WORDS[str(scene.position)])
        forms = choose(("{np} {where}", "{where}, {np}"))
        return [f.format(np=n, where=w) for f, n, w in itertools.product(forms, nps, wheres)]
    a, b = scene.objects
    rel = str(scene.relation)
    out = []
    for form in choose(("relation", "inverse", "sides")):
        if form == "sides":
            sa, sb = PAIR_SIDES[rel]
            out += [f"{x} {sa} and {y} {sb}" for x, y in itertools.product(
                _noun_phrases(a, choose, False), _noun_phrases(b, choose, False))]
            continue
        first, second, r = (a, b, rel) if form == "relation" else (b, a, INVERSE[rel])
        out += [f"{x} {w} {y}" for x, w, y in itertools.product(
            _noun_phrases(first, choose, False), choose(RELATION_WORDS[r]),
            _noun_phrases(second, choose, False))]
    return out


def _captions(scene: Scene, choose: Choose, omit: Iterable[str] = ()) -> list[str]:
    out = []
    for core in _cores(scene, choose, omit):
        for bg in choose(BACKGROUND_WORDS[scene.background]):
            text = f"{core} {bg}" if bg else core
            for frame in choose(STYLE_FRAMES[scene.style]):
                out.append(frame.format(text))
    return out


def prompt(scene: Scene) -> str:
    """The canonical caption: "a small red circle on the left", "a red circle to the left of a
    blue square", "a pencil sketch of a large star at the top at night"..."""
    return _captions(scene, lambda opts: opts[:1])[0]


def paraphrases(scene: Scene, omit: Iterable[str] = ()) -> list[str]:
    """Every caption of the scene (synonyms, word orders, articles, inverse relations); the
    first is `prompt(scene)`. omit: "size" and/or "position" left unnamed (single objects)."""
    return _captions(scene, lambda opts: opts, omit)


def caption(scene: Scene, rng: random.Random, omit: Iterable[str] = ()) -> str:
    """One seeded paraphrase (each choice uniform at its own level)."""
    return _captions(scene, lambda opts: [rng.choice(opts)], omit)[0]


def random_caption(scene: Scene, rng: random.Random) -> tuple[str, dict[str, str]]:
    """A caption for CLIP training, sometimes leaving out size and/or position of a single
    object, as people do. Returns (caption, the attributes it names)."""
    omit = []
    if not scene.is_pair:
        if rng.random() < 0.25:
            omit.append("size")
        if rng.random() < 0.25:
            omit.append("position")
    named = {k: v for k, v in scene.attributes().items() if k not in omit}
    return caption(scene, rng, omit), named


def vocabulary_texts(config: WorldConfig = DEFAULT) -> list[str]:
    """Texts a tokenizer learns its merges from: every word the captions use."""
    rng = random.Random(0)
    texts = [prompt(s) for s in sample_scenes(400, 1, config, held_out=True)]
    texts += [caption(s, rng) for s in sample_scenes(4000, 2, config, held_out=True)]
    for table in (SHAPE_WORDS, COLOR_WORDS, SIZE_WORDS, POSITION_WORDS, RELATION_WORDS,
                  BACKGROUND_WORDS, STYLE_FRAMES):
        texts += [" ".join(v).replace("{}", "") for v in table.values()]
    return texts


# -- parsing (which attributes does a free-text prompt ask for?) ----------------------------


def _find_all(words: list[str], table: dict[str, Sequence[str]]) -> list[tuple[int, int, str]]:
    """(start, end, key) of every phrase of `table` in `words`, longest match first."""
    phrases = sorted(((p.split(), k) for k, ps in table.items() for p in ps if p),
                     key=lambda pk: -len(pk[0]))
    hits: list[tuple[int, int, str]] = []
    taken = [False] * len(words)
    for ph, key in phrases:
        n = len(ph)
        for i in range(len(words) - n + 1):
            if words[i:i + n] == ph and not any(taken[i:i + n]):
                hits.append((i, i + n, key))
                for j in range(i, i + n):
                    taken[j] = True
    return sorted(hits)


_STYLE_CUES = {"sketch": ("sketch", "outline", "line drawing", "pencil"),
               "pixel": ("pixel", "pixel art", "8-bit", "16-bit"),
               "stripes": ("stripes", "striped")}
_BACKGROUND_CUES = {"night": ("night", "dark", "night time", "moonlight"),
                    "outdoors": ("outdoors", "outside", "field", "blue sky", "grass")}


def parse_prompt(text: str) -> dict[str, str]:
    """Attributes a free-text prompt names, in the keys of `Scene.attributes` (style and
    background are always given, "plain" when no cue names one)."""
    words = text.lower().replace(",", " ").replace(".", " ").split()
    found: dict[str, str] = {}
    shapes = _find_all(words, SHAPE_WORDS)
    colors = _find_all(words, COLOR_WORDS)
    sizes = _find_all(words, SIZE_WORDS)

    def before(hits, start, end):
        return [k for s, e, k in hits if start <= s and e <= end]

    prev = 0
    for n, (s, e, shape) in enumerate(shapes[:2]):
        suffix = "" if n == 0 else "2"
        found["shape" + suffix] = shape
        c = before(colors, prev, s)
        if c:
            found["color" + suffix] = c[-1]
        z = before(sizes, prev, s)
        if z and n == 0:
            found["size"] = z[-1]
        prev = e
    if len(shapes) >= 2:
        found.pop("size", None)
        middle = words[shapes[0][1]:shapes[1][0]]
        rel = _find_all(middle, RELATION_WORDS)
        if rel:
            found["relation"] = rel[0][2]
        else:  # "X on the left and Y on the right"
            sides = _find_all(words[shapes[0][1]:], {k: v[:1] for k, v in POSITION_WORDS.items()})
            if sides:
                side = sides[0][2]
                found["relation"] = {"left": "left of", "right": "right of",
                                     "top": "above", "bottom": "below"}.get(side, "")
                if not found["relation"]:
                    del found["relation"]
    elif shapes:
        where = _find_all(words, POSITION_WORDS)
        if where:
            found["position"] = where[0][2]
    joined = " " + " ".join(words) + " "
    found["background"] = next((k for k, cues in _BACKGROUND_CUES.items()
                                if any(f" {c} " in joined for c in cues)), "plain")
    found["style"] = next((k for k, cues in _STYLE_CUES.items()
                           if any(f" {c} " in joined for c in cues)), "plain")
    return found
