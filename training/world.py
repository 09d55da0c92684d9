"""The built-in world: seeded scenes of one shape, with captions and ground-truth attributes.

A scene is one shape (5 kinds) in one colour (6) at one size (2) and one horizontal position
(3) on a light grey background, with jitter in every continuous quantity. Images are drawn at
4x and box-filtered down, so edges are anti-aliased.

Held-out combinations: HELD_OUT lists shape x colour pairs (4 of 30, 13%) that never appear in
the images the generator (VQGAN and prior) trains on; the stand-in CLIP and the judge see the
whole world. `prompt` writes the canonical caption the evaluation uses.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image, ImageDraw

RESOLUTION = 32
SUPERSAMPLE = 4

SHAPES = ("circle", "square", "triangle", "diamond", "cross")
COLORS = {
    "red": (215, 35, 35),
    "green": (35, 160, 55),
    "blue": (35, 75, 215),
    "yellow": (235, 200, 30),
    "purple": (140, 50, 180),
    "orange": (245, 130, 25),
}
SIZES = {"small": 9.0, "large": 16.0}  # extent (bounding-box side) in pixels at RESOLUTION 32
POSITIONS = {"left": 9.0, "middle": 16.0, "right": 23.0}  # centre x in pixels
CENTRE_Y = 16.0
POSITION_WORDS = {"left": "on the left", "middle": "in the middle", "right": "on the right"}

# Jitter (uniform, +-): extent scale, centre x/y in pixels, colour per channel, background grey.
SIZE_JITTER = 0.08
X_JITTER = 1.5
Y_JITTER = 2.0
COLOR_JITTER = 10
BACKGROUND = (226, 242)

HELD_OUT: tuple[tuple[str, str], ...] = (
    ("triangle", "blue"),
    ("circle", "orange"),
    ("square", "purple"),
    ("cross", "green"),
)

ATTRIBUTES = ("shape", "color", "size", "position")


@dataclass(frozen=True)
class Scene:
    shape: str
    color: str
    size: str
    position: str

    def attributes(self) -> dict[str, str]:
        return asdict(self)

    @property
    def held_out(self) -> bool:
        return (self.shape, self.color) in HELD_OUT


def all_scenes() -> list[Scene]:
    """Every attribute combination (5 x 6 x 2 x 3 = 180), in a fixed order."""
    return [
        Scene(s, c, z, p) for s in SHAPES for c in COLORS for z in SIZES for p in POSITIONS
    ]


def training_scenes() -> list[Scene]:
    """The combinations the generator may see (held-out shape x colour pairs removed)."""
    return [s for s in all_scenes() if not s.held_out]


def held_out_scenes() -> list[Scene]:
    return [s for s in all_scenes() if s.held_out]


# -- drawing ----------------------------------------------------------------------------------


def shape_polygon(shape: str, cx: float, cy: float, extent: float) -> list[tuple[float, float]]:
    """Outline of `shape` centred at (cx, cy) with bounding-box side `extent` (not circles)."""
    r = extent / 2
    if shape == "square":
        return [(cx - r, cy - r), (cx + r, cy - r), (cx + r, cy + r), (cx - r, cy + r)]
    if shape == "triangle":  # pointing up, as wide as high
        return [(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)]
    if shape == "diamond":
        return [(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)]
    if shape == "cross":  # a plus sign, arms a third of the extent thick
        t = extent / 6
        return [
            (cx - t, cy - r), (cx + t, cy - r), (cx + t, cy - t), (cx + r, cy - t),
            (cx + r, cy + t), (cx + t, cy + t), (cx + t, cy + r), (cx - t, cy + r),
            (cx - t, cy + t), (cx - r, cy + t), (cx - r, cy - t), (cx - t, cy - t),
        ]
    raise ValueError(f"unknown shape {shape!r}")


def draw_shape(
    draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, extent: float, fill
) -> None:
    if shape == "circle":
        r = extent / 2
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    else:
        draw.polygon(shape_polygon(shape, cx, cy, extent), fill=fill)


def render(scene: Scene, rng: random.Random, resolution: int = RESOLUTION) -> np.ndarray:
    """uint8 [resolution, resolution, 3]. All randomness comes from `rng`."""
    k = resolution / RESOLUTION * SUPERSAMPLE
    grey = rng.randint(*BACKGROUND)
    color = tuple(
        int(np.clip(c + rng.randint(-COLOR_JITTER, COLOR_JITTER), 0, 255))
        for c in COLORS[scene.color]
    )
    extent = SIZES[scene.size] * (1 + rng.uniform(-SIZE_JITTER, SIZE_JITTER))
    cx = POSITIONS[scene.position] + rng.uniform(-X_JITTER, X_JITTER)
    cy = CENTRE_Y + rng.uniform(-Y_JITTER, Y_JITTER)
    big = int(resolution * SUPERSAMPLE)
    img = Image.new("RGB", (big, big), (grey, grey, grey))
    draw_shape(ImageDraw.Draw(img), scene.shape, cx * k, cy * k, extent * k, color)
    img = img.resize((resolution, resolution), Image.BOX)
    return np.asarray(img, dtype=np.uint8)


def shape_mask(shape: str, side: int) -> np.ndarray:
    """float [side, side] coverage of `shape` filling its bounding box (judge templates)."""
    big = side * 8
    img = Image.new("L", (big, big), 0)
    draw_shape(ImageDraw.Draw(img), shape, big / 2, big / 2, big, 255)
    return np.asarray(img.resize((side, side), Image.BOX), dtype=np.float32) / 255.0


# -- captions ---------------------------------------------------------------------------------


def prompt(scene: Scene) -> str:
    """The canonical caption, naming all four attributes."""
    return f"a {scene.size} {scene.color} {scene.shape} {POSITION_WORDS[scene.position]}"


SIZE_SYNONYMS = {"small": ("small", "little", "tiny"), "large": ("large", "big")}
POSITION_SYNONYMS = {
    "left": ("on the left", "at the left", "left"),
    "middle": ("in the middle", "in the center", "in the centre", "centered"),
    "right": ("on the right", "at the right", "right"),
}


def random_caption(scene: Scene, rng: random.Random) -> tuple[str, dict[str, str]]:
    """A caption for CLIP training: some attributes dropped, synonyms, a few templates.

    Returns (caption, the attributes it names). Shape is always named."""
    named = {"shape": scene.shape}
    words = []
    if rng.random() < 0.75:
        named["size"] = scene.size
        words.append(rng.choice(SIZE_SYNONYMS[scene.size]) if rng.random() < 0.3 else scene.size)
    if rng.random() < 0.85:
        named["color"] = scene.color
        words.append(scene.color)
    words.append(scene.shape)
    text = " ".join(words)
    if rng.random() < 0.75:
        named["position"] = scene.position
        where = POSITION_WORDS[scene.position]
        if rng.random() < 0.3:
            where = rng.choice(POSITION_SYNONYMS[scene.position])
        text = f"{text} {where}"
    lead = rng.choice(("a", "a", "a", "an image of a", "a picture of a", "one"))
    return f"{lead} {text}", named


def caption_vocabulary_texts() -> list[str]:
    """Texts the stand-in tokenizer learns its merges from (every word the world uses)."""
    rng = random.Random(0)
    texts = [prompt(s) for s in all_scenes()]
    texts += [random_caption(s, rng)[0] for s in all_scenes() for _ in range(8)]
    return texts


# -- prompt parsing (for the judge: which attributes does a prompt ask for?) ----------------


def parse_prompt(text: str) -> dict[str, str]:
    """Attributes named in free text (first match of each kind)."""
    words = text.lower().replace(",", " ").split()
    found: dict[str, str] = {}
    for w in words:
        if w in SHAPES:
            found.setdefault("shape", w)
        if w in COLORS:
            found.setdefault("color", w)
        for size, syn in SIZE_SYNONYMS.items():
            if w in syn:
                found.setdefault("size", size)
        if w in ("left",):
            found.setdefault("position", "left")
        if w in ("right",):
            found.setdefault("position", "right")
        if w in ("middle", "center", "centre", "centered"):
            found.setdefault("position", "middle")
    return found


# -- datasets ---------------------------------------------------------------------------------


def sample_scenes(n: int, seed: int, scenes: list[Scene]) -> list[Scene]:
    """n scenes cycling through `scenes` in seeded shuffled rounds (balanced classes)."""
    rng = random.Random(seed)
    out: list[Scene] = []
    while len(out) < n:
        block = list(scenes)
        rng.shuffle(block)
        out.extend(block)
    return out[:n]


def render_many(scenes: list[Scene], seed: int) -> np.ndarray:
    """uint8 [N, R, R, 3]; image i depends only on (seed, i)."""
    out = np.empty((len(scenes), RESOLUTION, RESOLUTION, 3), dtype=np.uint8)
    for i, s in enumerate(scenes):
        out[i] = render(s, random.Random(seed * 1_000_003 + i))
    return out
