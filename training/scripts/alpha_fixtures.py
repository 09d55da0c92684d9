"""Writes the alpha-rule fixtures the engine's tests read: small PNGs with transparency
(RGBA, LA, P + tRNS, L + tRNS, RGB + tRNS) and expected.json, the RGB bytes that
`training.data.flatten_alpha` makes of each over white and over black.

    PYTHONPATH=. python training/scripts/alpha_fixtures.py [DIR]
    (default DIR: Tests/ClipGenEngineTests/Fixtures/alpha)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from training.data import flatten_alpha

DEFAULT = ROOT / "Tests" / "ClipGenEngineTests" / "Fixtures" / "alpha"


def fixture_images() -> dict[str, Image.Image]:
    """8 x 8 images; every one has fully transparent, half and fully opaque pixels, and
    colour (black for the RGBA) under its transparent pixels."""
    y, x = np.mgrid[0:8, 0:8]
    alpha = ((x + 8 * y) * 255 // 63).astype(np.uint8)  # 0 .. 255 in raster order
    alpha[0, :2] = 0
    rgb = np.stack([x * 36, y * 36, (7 - x) * 36], -1).astype(np.uint8)
    rgb[alpha == 0] = 0  # black under transparent pixels (clip art's usual case)
    grey = ((x + y) * 18).astype(np.uint8)
    out = {
        "rgba.png": Image.fromarray(np.dstack([rgb, alpha]), "RGBA"),
        "la.png": Image.fromarray(np.dstack([grey, alpha]), "LA"),
    }
    pal = Image.new("P", (8, 8))
    pal.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 20, 40, 200] + [0] * (256 - 4) * 3)
    pal.putdata(((x + y) % 4).flatten().tolist())
    pal.info["transparency"] = bytes([0, 128, 255, 64])  # tRNS: alpha per palette entry
    out["p_trns.png"] = pal
    lk = Image.fromarray(grey, "L")
    lk.info["transparency"] = 36  # tRNS: one grey level is transparent
    out["l_trns.png"] = lk
    ck = Image.fromarray(rgb, "RGB")
    ck.info["transparency"] = (0, 0, 0)  # tRNS: one colour is transparent
    out["rgb_trns.png"] = ck
    return out


def write(dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, img in fixture_images().items():
        kw = {"transparency": img.info["transparency"]} if "transparency" in img.info else {}
        img.save(dest / name, **kw)
        with Image.open(dest / name) as back:  # what a decoder reads from the file
            back.load()
            rows.append({
                "file": name, "mode": back.mode, "width": back.width, "height": back.height,
                "white": flatten_alpha(back, (255, 255, 255)).tobytes().hex(),
                "black": flatten_alpha(back, (0, 0, 0)).tobytes().hex(),
            })
    doc = {
        "rule": "8-bit RGBA (palette looked up, grey replicated, tRNS applied); per channel "
                "out = (c * a + bg * (255 - a) + 127) / 255 in integers; RGB bytes in raster "
                "order, hex",
        "made_by": "training/scripts/alpha_fixtures.py (training.data.flatten_alpha)",
        "images": rows,
    }
    (dest / "expected.json").write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    write(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT)
