"""`make gallery`: a labelled grid of prompts generated through the CLI with a model's own
defaults, for the README (docs/gallery.png).

    python -m training.gallery --model samples/model --out docs/gallery.png

Prompts: the model's `sample_prompts` (model.json) when it has them, else world v2's in-
distribution examples (a single object, pairs, styles, backgrounds) and held-out ones (a
shape x colour, a shape x style and a shape pair never in the generator's images); `--prompt`
(repeatable) gives them by hand. Held-out prompts are marked "held out" under the image.
Each prompt is one CLI call (`clipgen generate PROMPT --model M --seed S`), so the grid shows
exactly what a user gets.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import textwrap
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from . import world_v2 as w2
from .evaluate import generate_cli

CELL = 160  # pixels per image in the grid (nearest-neighbour upscaling)
LABEL_LINES = 3
LINE = 13
PAD = 8
HELD_COLOR = (200, 60, 20)


def default_prompts(config: w2.WorldConfig = w2.DEFAULT, seed: int = 5
                    ) -> list[tuple[str, bool]]:
    """(prompt, held out?): two of each in-distribution kind, then one held-out prompt of each
    reason (colour, style, pair) and a second held-out pair."""
    inside = w2.evaluation_prompts("in_distribution", config, seed=seed)
    held = w2.evaluation_prompts("held_out", config, seed=seed)
    out = []
    for kind in ("single", "pair", "style", "background"):
        out += [(p.text, False) for p in inside if p.kind == kind][:2]
    for kind, k in (("single", 1), ("style", 1), ("pair", 2)):
        out += [(p.text, True) for p in held if p.kind == kind][:k]
    return out


def model_prompts(model: Path, config: w2.WorldConfig) -> list[tuple[str, bool]] | None:
    """The model's own sample prompts, held-out ones recognised by parsing them."""
    m = json.loads((Path(model) / "model.json").read_text())
    prompts = m.get("sample_prompts")
    if not prompts:
        return None
    return [(p, _is_held_out(p, config)) for p in prompts]


def _is_held_out(text: str, config: w2.WorldConfig) -> bool:
    a = w2.parse_prompt(text)
    if "shape" not in a or "color" not in a:
        return False
    things = [w2.Thing(a["shape"], a["color"])]
    if "shape2" in a and "color2" in a:
        things.append(w2.Thing(a["shape2"], a["color2"]))
    scene = w2.Scene(tuple(things), None, a.get("relation"), a.get("background", "plain"),
                     a.get("style", "plain"))
    return w2.is_held_out(scene, config)


def compose(images: list[np.ndarray], labels: list[str], held: list[bool],
            columns: int = 4, title: str = "") -> Image.Image:
    """A grid of images (upscaled to CELL pixels, nearest neighbour) with their prompts
    wrapped underneath; held-out prompts get a coloured frame and a "held out" note."""
    font = ImageFont.load_default()
    rows = (len(images) + columns - 1) // columns
    label_h = LABEL_LINES * LINE + 4
    top = 28 if title else PAD
    w = columns * (CELL + PAD) + PAD
    h = top + rows * (CELL + label_h + PAD)
    sheet = Image.new("RGB", (w, h), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((PAD, 8), title, fill=(0, 0, 0), font=font)
    chars = max(12, CELL // 6)
    for i, (img, label, is_held) in enumerate(zip(images, labels, held, strict=True)):
        r, c = divmod(i, columns)
        x = PAD + c * (CELL + PAD)
        y = top + r * (CELL + label_h + PAD)
        tile = Image.fromarray(np.asarray(img, np.uint8)).resize((CELL, CELL), Image.NEAREST)
        sheet.paste(tile, (x, y))
        if is_held:
            draw.rectangle([x - 2, y - 2, x + CELL + 1, y + CELL + 1], outline=HELD_COLOR, width=2)
        lines = textwrap.wrap(label, chars)[: LABEL_LINES - int(is_held)]
        if is_held:
            lines.append("(held out)")
        for j, line in enumerate(lines):
            color = HELD_COLOR if is_held and line == "(held out)" else (30, 30, 30)
            draw.text((x, y + CELL + 3 + j * LINE), line, fill=color, font=font)
    return sheet


def make_gallery(model: Path, out: Path, cli: Path, prompts: list[tuple[str, bool]],
                 seed: int = 7, columns: int = 4, work: Path | None = None) -> Path:
    """Generates one image per prompt through the CLI (model defaults) and writes the grid."""
    if not Path(cli).exists():
        raise FileNotFoundError(f"{cli} is missing: run `make build`")
    images = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(work or tmp)
        for i, (text, _) in enumerate(prompts):
            imgs, _scores = generate_cli(cli, model, text, 1, {}, work / f"{i:02d}", seed + i)
            images.append(imgs[0])
    name = json.loads((Path(model) / "model.json").read_text()).get("name", Path(model).name)
    sheet = compose(images, [p for p, _ in prompts], [h for _, h in prompts], columns,
                    title=f"{name}: clipgen generate PROMPT (the model's defaults, seed "
                          f"{seed} + i)")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out, optimize=True)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m training.gallery", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=Path("samples/model"))
    p.add_argument("--out", type=Path, default=Path("docs/gallery.png"))
    p.add_argument("--cli", type=Path, default=Path(".build/release/clipgen"))
    p.add_argument("--world", choices=("default", "tiny"), default="default",
                   help="world v2 configuration for the default prompts")
    p.add_argument("--prompt", action="append", default=None,
                   help="a prompt (repeatable; default: the model's sample prompts, else "
                   "world v2's examples)")
    p.add_argument("--from-world", action="store_true",
                   help="world v2's examples even when the model has sample prompts")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--columns", type=int, default=4)
    p.add_argument("--work", type=Path, default=None,
                   help="keep the CLI's outputs here (default: a temporary folder)")
    args = p.parse_args(argv)
    config = w2.CONFIGS[args.world]
    if args.prompt:
        prompts = [(t, _is_held_out(t, config)) for t in args.prompt]
    else:
        prompts = (None if args.from_world else model_prompts(args.model, config)) \
            or default_prompts(config)
    path = make_gallery(args.model, args.out, args.cli, prompts, args.seed, args.columns,
                        args.work)
    print(f"wrote {path} ({len(prompts)} prompts)")


if __name__ == "__main__":
    main()
