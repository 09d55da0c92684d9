"""Images from any folder: recursive scan, mixed formats and modes, broken files skipped.

`load_folder` walks a directory tree, opens every file whose suffix is an image format Pillow
reads, converts any mode (palette, grey, 16-bit, CMYK, alpha composited over white) to RGB,
resizes the shorter side to `resolution` (bicubic, antialiased) and centre-crops a square.
Files that cannot be decoded are skipped, counted and named in the returned `FolderReport`.
The decoded array is cached next to the run (`cache`), keyed by the file list and sizes.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile

from . import world
from .common import Progress, log

IMAGE_SUFFIXES = {
    ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm",
    ".pnm", ".tga", ".ico",
}
ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file is broken, not half an image


@dataclass
class FolderReport:
    root: str
    found: int = 0
    loaded: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)

    def summary(self) -> str:
        s = f"{self.root}: {self.loaded} images loaded of {self.found} files"
        if self.skipped:
            s += f"; {len(self.skipped)} skipped:"
            for path, why in self.skipped[:20]:
                s += f"\n  {path}: {why}"
            if len(self.skipped) > 20:
                s += f"\n  ... and {len(self.skipped) - 20} more"
        return s


def scan(root: Path) -> list[Path]:
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist")
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode -> RGB; transparency composited over white."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(img, dtype=np.float64)
        hi = a.max() if a.max() > 0 else 1.0
        img = Image.fromarray((a / hi * 255).astype(np.uint8))
    if img.mode == "F":
        a = np.asarray(img, dtype=np.float64)
        a = (a - a.min()) / max(a.max() - a.min(), 1e-12)
        img = Image.fromarray((a * 255).astype(np.uint8))
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa"):
        img = img.convert("RGBA")
        bg = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(bg, img)
    return img.convert("RGB")


def square(img: Image.Image, resolution: int) -> np.ndarray:
    """Shorter side to `resolution` (bicubic), centre crop -> uint8 [R, R, 3]."""
    w, h = img.size
    s = resolution / min(w, h)
    nw, nh = max(resolution, round(w * s)), max(resolution, round(h * s))
    if (nw, nh) != (w, h):
        img = img.resize((nw, nh), Image.BICUBIC, reducing_gap=3.0)
    left, top = (nw - resolution) // 2, (nh - resolution) // 2
    img = img.crop((left, top, left + resolution, top + resolution))
    return np.asarray(img, dtype=np.uint8)


def load_image(path: Path, resolution: int) -> np.ndarray:
    with Image.open(path) as img:
        img.load()
        if getattr(img, "n_frames", 1) > 1:
            img.seek(0)
        return square(to_rgb(img), resolution)


def load_folder(root: Path, resolution: int, cache: Path | None = None,
                show_progress: bool = True) -> tuple[np.ndarray, FolderReport]:
    """All readable images under `root` as uint8 [N, R, R, 3] (sorted by path)."""
    paths = scan(root)
    report = FolderReport(str(root), found=len(paths))
    key = hashlib.sha1(
        json.dumps([resolution] + [(str(p), p.stat().st_size, p.stat().st_mtime_ns)
                                   for p in paths]).encode()
    ).hexdigest()[:16]
    if cache is not None:
        npz = Path(cache) / f"images-{resolution}-{key}.npz"
        if npz.exists():
            z = np.load(npz, allow_pickle=False)
            report.loaded = int(z["images"].shape[0])
            report.skipped = [tuple(x.split("\t", 1)) for x in z["skipped"].tolist()]
            return z["images"], report
    images = np.empty((len(paths), resolution, resolution, 3), dtype=np.uint8)
    bar = Progress(len(paths), "load images", enabled=show_progress)
    n = 0
    for p in paths:
        try:
            images[n] = load_image(p, resolution)
            n += 1
        except Exception as e:  # noqa: BLE001 - any decoder failure means "skip this file"
            report.skipped.append((str(p), f"{type(e).__name__}: {e}"))
        bar.update()
    images = images[:n]
    report.loaded = n
    if n == 0:
        raise ValueError(f"no readable images under {root} ({len(paths)} candidate files)")
    if cache is not None:
        Path(cache).mkdir(parents=True, exist_ok=True)
        tmp = Path(cache) / f".images-{key}.tmp.npz"
        np.savez(tmp, images=images,
                 skipped=np.array(["\t".join(s) for s in report.skipped], dtype=str))
        tmp.replace(npz)
    return images, report


def split_holdout(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, validation indices), a seeded split."""
    idx = np.random.default_rng(seed).permutation(n)
    k = max(1, round(n * fraction)) if n > 1 else 0
    return np.sort(idx[k:]), np.sort(idx[:k])


def write_world_folder(out: Path, n: int, seed: int, include_held_out: bool = False) -> None:
    """Renders n world images as PNGs under out/<shape>/<i>.png (nested, like a user's
    folder), plus out/attributes.jsonl (ground truth; not used by the generator)."""
    out = Path(out)
    scenes = world.sample_scenes(
        n, seed, world.all_scenes() if include_held_out else world.training_scenes()
    )
    images = world.render_many(scenes, seed)
    rows = []
    for i, (s, im) in enumerate(zip(scenes, images, strict=True)):
        d = out / s.shape
        d.mkdir(parents=True, exist_ok=True)
        name = f"{i:06d}.png"
        Image.fromarray(im).save(d / name, compress_level=1)
        rows.append(json.dumps({"file": f"{s.shape}/{name}", **s.attributes()}))
    (out / "attributes.jsonl").write_text("\n".join(rows) + "\n")
    log(f"wrote {n} world images to {out} (held-out pairs {'in' if include_held_out else 'out'})")


def shuffled_order(n: int, seed: int, epoch: int) -> np.ndarray:
    return np.array(random.Random(seed * 7_777 + epoch).sample(range(n), n))
