"""Images from any folder: recursive scan, mixed formats and modes, broken files skipped.

    scan            walks the tree (symlinks followed, loops detected); lists image files with
                    their sizes and times, and what was not a file (directories named like
                    images, broken symlinks, loops)
    flatten_alpha   THE alpha rule, shared with the engine: transparency over a background
                    (white unless told otherwise), integer arithmetic, documented below
    to_rgb          any Pillow mode -> RGB (16-bit, float, palette, CMYK, alpha)
    square          shorter side to the resolution (bicubic, antialiased), centre crop
    is_validation   the held-out split, by a hash of the file's relative path
    decode_folder   the folder decoded into a cache in the run directory: chunks decoded by
                    every rank in turn, then one uint8 array each for train and validation,
                    memory-mapped (memory stays bounded for any number of images)
    load_folder     all of a folder in memory (small folders, tests)

Files that cannot be decoded are skipped, counted and named in the `FolderReport`; images
over `max_pixels` (Pillow's decompression-bomb limit) are skipped and listed apart.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile

from . import world
from .common import Dist, Progress, UserError, atomic_write_text, log

IMAGE_SUFFIXES = {
    ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm",
    ".pnm", ".tga", ".ico",
}
ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file is broken, not half an image
DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's own decompression-bomb warning threshold
VAL_FRACTION = 0.05


# -- the listing --------------------------------------------------------------------------


@dataclass
class Listing:
    """What `scan` found under a root: image files (relative paths, sorted) and non-files."""

    root: str
    files: list[str] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    mtimes: list[int] = field(default_factory=list)  # ns
    not_files: list[tuple[str, str]] = field(default_factory=list)  # (path, what it is)

    def fingerprint(self) -> str:
        """sha256 over (relative path, size, mtime) of every image file."""
        h = hashlib.sha256()
        for f, s, t in zip(self.files, self.sizes, self.mtimes, strict=True):
            h.update(f"{f}\0{s}\0{t}\n".encode())
        return h.hexdigest()


def scan(root: Path) -> Listing:
    """Every file with an image suffix under `root` (symlinks followed, loops skipped).
    Raises UserError when root is missing or not a directory."""
    root = Path(root)
    if not root.exists():
        raise UserError(f"image folder {root} does not exist")
    if not root.is_dir():
        raise UserError(f"{root} is not a folder (--data takes a folder of images)")
    out = Listing(str(root))
    found: list[tuple[str, int, int]] = []

    def walk(d: Path, ancestors: frozenset[tuple[int, int]]) -> None:
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError as e:
            out.not_files.append((str(d), f"unreadable folder ({e.strerror})"))
            return
        for e in entries:
            p = Path(e.path)
            rel = str(p.relative_to(root))
            image_name = p.suffix.lower() in IMAGE_SUFFIXES
            try:
                st = os.stat(e.path)  # follows symlinks
            except OSError as err:
                if e.is_symlink():
                    what = "symlink loop" if err.errno == 40 else "broken symlink"
                    if image_name or err.errno == 40:
                        out.not_files.append((rel, what))
                continue
            if e.is_dir(follow_symlinks=True):
                ident = (st.st_dev, st.st_ino)
                if ident in ancestors:
                    out.not_files.append((rel, "symlink loop (folder contains itself)"))
                    continue
                if image_name:
                    out.not_files.append((rel, "a folder named like an image (searched inside)"))
                walk(p, ancestors | {ident})
            elif image_name:
                if e.is_file(follow_symlinks=True):
                    found.append((rel, st.st_size, st.st_mtime_ns))
                else:
                    out.not_files.append((rel, "not a regular file"))

    st = root.stat()
    walk(root, frozenset({(st.st_dev, st.st_ino)}))
    found.sort()
    out.files = [f for f, _, _ in found]
    out.sizes = [s for _, s, _ in found]
    out.mtimes = [t for _, _, t in found]
    return out


def path_hash(rel: str) -> float:
    """A number in [0, 1) from the relative path (stable across machines and runs)."""
    return int.from_bytes(hashlib.sha256(rel.encode()).digest()[:8], "big") / 2**64


def is_validation(rel: str, fraction: float) -> bool:
    """Held-out by file: the same file is in the validation set on every run and every rank,
    whatever else the folder holds."""
    return path_hash(rel) < fraction


def split_files(files: list[str], fraction: float) -> tuple[list[str], list[str]]:
    """(train, validation) relative paths. At least one validation file when there are two or
    more files and fraction > 0 (the one with the smallest hash)."""
    val = [f for f in files if is_validation(f, fraction)]
    if not val and fraction > 0 and len(files) >= 2:
        val = [min(files, key=path_hash)]
    vs = set(val)
    return [f for f in files if f not in vs], val


def limit_files(files: list[str], max_images: int) -> list[str]:
    """A stable subset of at most max_images files (the smallest path hashes; 0: all)."""
    if max_images <= 0 or len(files) <= max_images:
        return files
    keep = set(sorted(files, key=path_hash)[:max_images])
    return [f for f in files if f in keep]


# -- decoding ---------------------------------------------------------------------------------


def parse_color(s: str) -> tuple[int, int, int]:
    """'white', 'black', 'grey', '#rrggbb' or 'r,g,b' -> (r, g, b)."""
    names = {"white": (255, 255, 255), "black": (0, 0, 0), "grey": (128, 128, 128),
             "gray": (128, 128, 128)}
    t = s.strip().lower()
    if t in names:
        return names[t]
    try:
        if t.startswith("#") and len(t) == 7:
            return tuple(int(t[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]
        parts = [int(x) for x in t.split(",")]
        if len(parts) == 3 and all(0 <= x <= 255 for x in parts):
            return tuple(parts)  # type: ignore[return-value]
    except ValueError:
        pass
    raise UserError(f"--alpha-background {s!r}: use white, black, grey, #rrggbb or r,g,b")


WHITE = (255, 255, 255)


def has_alpha(img: Image.Image) -> bool:
    return img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info


def flatten_alpha(img: Image.Image, background: tuple[int, int, int] = WHITE) -> Image.Image:
    """Transparency composited over `background` (white by default) -> RGB. The one alpha
    rule of the kit and the engine. Any image with alpha (RGBA, LA, PA, P or L or RGB with a
    tRNS entry) is first expanded to 8-bit RGBA by Pillow (palette entries looked up, grey
    replicated), then every channel c with alpha a becomes

        out = (c * a + bg * (255 - a) + 127) // 255        (integers; = round(... / 255))

    Images without alpha are converted to RGB unchanged. Fixtures for the engine's tests:
    Tests/ClipGenEngineTests/Fixtures/alpha/ (training/scripts/alpha_fixtures.py)."""
    if not has_alpha(img):
        return img.convert("RGB")
    if img.mode == "RGBa":  # premultiplied
        img = img.convert("RGBA")
    a = np.asarray(img.convert("RGBA"), dtype=np.uint32)
    alpha = a[..., 3:4]
    bg = np.asarray(background, dtype=np.uint32).reshape(1, 1, 3)
    rgb = (a[..., :3] * alpha + bg * (255 - alpha) + 127) // 255
    return Image.fromarray(rgb.astype(np.uint8), "RGB")


def to_rgb(img: Image.Image, background: tuple[int, int, int] = WHITE) -> Image.Image:
    """Any Pillow mode -> RGB; transparency flattened by `flatten_alpha`."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(img, dtype=np.float64)
        hi = a.max() if a.max() > 0 else 1.0
        img = Image.fromarray((a / hi * 255).astype(np.uint8))
    if img.mode == "F":
        a = np.asarray(img, dtype=np.float64)
        a = (a - a.min()) / max(a.max() - a.min(), 1e-12)
        img = Image.fromarray((a * 255).astype(np.uint8))
    return flatten_alpha(img, background)


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


class TooLarge(Exception):
    """An image over the pixel limit (listed apart from broken files)."""


def load_image(path: Path, resolution: int, background: tuple[int, int, int] = WHITE,
               max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # we check ourselves
        try:
            with Image.open(path) as img:
                w, h = img.size
                if max_pixels > 0 and w * h > max_pixels:
                    raise TooLarge(f"{w}x{h} = {w * h} pixels > --max-pixels {max_pixels}")
                if getattr(img, "n_frames", 1) > 1:
                    img.seek(0)
                img.load()
                return square(to_rgb(img, background), resolution)
        finally:
            Image.MAX_IMAGE_PIXELS = saved


@dataclass
class DecodeOptions:
    """Everything that decides the decoded pixels and the split (part of the fingerprint)."""

    resolution: int = 32
    background: tuple[int, int, int] = WHITE
    max_pixels: int = DEFAULT_MAX_PIXELS
    val_fraction: float = VAL_FRACTION
    max_images: int = 0  # 0: every image


@dataclass
class FolderReport:
    root: str
    found: int = 0
    loaded: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    too_large: list[tuple[str, str]] = field(default_factory=list)  # (path, size)
    not_files: list[tuple[str, str]] = field(default_factory=list)  # (path, what it is)
    train: int = 0
    validation: int = 0
    validation_files: list[str] = field(default_factory=list)
    fingerprint: str = ""

    def summary(self) -> str:
        s = f"{self.root}: {self.loaded} images loaded of {self.found} files"
        if self.train or self.validation:
            s += f" ({self.train} to train on, {self.validation} held out for validation)"
        for title, rows in (("skipped", self.skipped), ("over the pixel limit", self.too_large),
                            ("not image files", self.not_files)):
            if rows:
                s += f"; {len(rows)} {title}:"
                for path, why in rows[:20]:
                    s += f"\n  {path}: {why}"
                if len(rows) > 20:
                    s += f"\n  ... and {len(rows) - 20} more"
        return s


@dataclass
class Folder:
    """A decoded folder: uint8 [N, R, R, 3] arrays (memory-mapped) and their files."""

    train: np.ndarray
    val: np.ndarray
    train_files: list[str]
    val_files: list[str]
    report: FolderReport
    fingerprint: dict


def dataset_fingerprint(listing: Listing, files: list[str], opts: DecodeOptions) -> dict:
    """The data set's identity: its listing hash and the decoding options."""
    return {"listing": listing.fingerprint(), "files": len(files),
            "resolution": opts.resolution, "alpha_background": list(opts.background),
            "max_pixels": opts.max_pixels, "val_fraction": opts.val_fraction,
            "max_images": opts.max_images}


def _key(fp: dict) -> str:
    return hashlib.sha256(json.dumps(fp, sort_keys=True).encode()).hexdigest()[:16]


def _chunk_size(resolution: int) -> int:
    return max(16, min(1024, (48 << 20) // (resolution * resolution * 3)))


def decode_folder(root: Path, opts: DecodeOptions, cache: Path, d: Dist | None = None,
                  show_progress: bool = True) -> Folder:
    """Decodes `root` into `cache/images-<key>/` (key: the data set fingerprint) and returns
    memory-mapped train and validation arrays. Under torchrun every rank decodes every
    world-th chunk; rank 0 then joins the chunks (a copy, no decoding). An interrupted decode
    keeps its finished chunks."""
    d = d or Dist()
    listing = scan(root)
    files = limit_files(listing.files, opts.max_images)
    fp = dataset_fingerprint(listing, files, opts)
    if not files:
        raise UserError(f"no image files under {root} (looked for "
                        f"{', '.join(sorted(s[1:] for s in IMAGE_SUFFIXES))})")
    out = Path(cache) / f"images-{opts.resolution}-{_key(fp)}"
    done, failed = out / "images.json", out / "failed.txt"
    if not done.exists():
        out.mkdir(parents=True, exist_ok=True)
        if d.main:
            failed.unlink(missing_ok=True)
        # At least 8 chunks a rank, so the ranks finish together (a chunk is bounded in memory
        # too); the chunk size is in the names, so a resume with another process count starts
        # its own chunks rather than misreading these.
        per = min(_chunk_size(opts.resolution), max(16, -(-len(files) // (8 * d.world))))
        chunks = [files[i : i + per] for i in range(0, len(files), per)]
        mine = [c for c in range(len(chunks)) if c % d.world == d.rank]
        bar = Progress(len(files), "decode images", enabled=show_progress and d.main)
        for c in mine:
            path = _chunk_path(out, per, c)
            if not path.exists():
                _decode_chunk(Path(root), chunks[c], opts, path)
            # rank 0 reports everyone's progress as its own times the number of ranks
            bar.update(len(chunks[c]) * (d.world if d.main else 1))
        d.barrier()
        if d.main:
            try:
                _join_chunks(out, per, len(chunks), listing, files, opts, fp)
            except UserError as e:  # every rank must hear of it, not wait for rank 0
                atomic_write_text(failed, str(e))
        d.barrier()
        if failed.exists():
            raise UserError(failed.read_text())
    meta = json.loads(done.read_text())
    report = FolderReport(**{k: v for k, v in meta["report"].items()})
    report.skipped = [tuple(x) for x in report.skipped]
    report.too_large = [tuple(x) for x in report.too_large]
    report.not_files = [tuple(x) for x in report.not_files]
    return Folder(np.load(out / "train.npy", mmap_mode="r"),
                  np.load(out / "val.npy", mmap_mode="r"), meta["train_files"],
                  meta["val_files"], report, meta["fingerprint"])


def _decode_chunk(root: Path, files: list[str], opts: DecodeOptions, path: Path) -> None:
    r = opts.resolution
    images = np.empty((len(files), r, r, 3), dtype=np.uint8)
    loaded, skipped, too_large = [], [], []
    for f in files:
        try:
            images[len(loaded)] = load_image(root / f, r, opts.background, opts.max_pixels)
            loaded.append(f)
        except TooLarge as e:
            too_large.append((f, str(e)))
        except Exception as e:  # noqa: BLE001 - any decoder failure means "skip this file"
            skipped.append((f, f"{type(e).__name__}: {e}"))
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}.npz")
    np.savez(tmp, images=images[: len(loaded)],
             meta=np.array(json.dumps({"loaded": loaded, "skipped": skipped,
                                       "too_large": too_large})))
    os.replace(tmp, path)


def _chunk_path(out: Path, per: int, c: int) -> Path:
    return out / f"chunk-{per}-{c:05d}.npz"


def _join_chunks(out: Path, per: int, n_chunks: int, listing: Listing, files: list[str],
                 opts: DecodeOptions, fp: dict) -> None:
    metas = []
    for c in range(n_chunks):
        with np.load(_chunk_path(out, per, c)) as z:
            metas.append(json.loads(str(z["meta"])))
    loaded = [f for m in metas for f in m["loaded"]]
    train_files, val_files = split_files(loaded, opts.val_fraction)
    if not train_files:
        n = sum(len(m["skipped"]) + len(m["too_large"]) for m in metas)
        raise UserError(f"no readable images under {listing.root} ({n} files could not be "
                        f"decoded; see the list above)" if n else
                        f"no readable images under {listing.root}")
    val_set = set(val_files)
    r = opts.resolution
    # plain sequential writes (not a memory map): the join's memory is one chunk
    with open(out / ".train.npy", "wb") as ft, open(out / ".val.npy", "wb") as fv:
        for fh, n in ((ft, len(train_files)), (fv, len(val_files))):
            np.lib.format.write_array_header_1_0(fh, {"descr": "|u1", "fortran_order": False,
                                                      "shape": (n, r, r, 3)})
        for c, m in enumerate(metas):
            with np.load(_chunk_path(out, per, c)) as z:
                imgs = z["images"]
            is_val = np.array([f in val_set for f in m["loaded"]], dtype=bool)
            ft.write(np.ascontiguousarray(imgs[~is_val]).tobytes())
            fv.write(np.ascontiguousarray(imgs[is_val]).tobytes())
    os.replace(out / ".train.npy", out / "train.npy")
    os.replace(out / ".val.npy", out / "val.npy")
    report = FolderReport(
        listing.root, found=len(files), loaded=len(loaded),
        skipped=[tuple(s) for m in metas for s in m["skipped"]],
        too_large=[tuple(s) for m in metas for s in m["too_large"]],
        not_files=listing.not_files, train=len(train_files), validation=len(val_files),
        validation_files=val_files, fingerprint=_key(fp))
    atomic_write_text(out / "images.json", json.dumps({
        "fingerprint": fp, "train_files": train_files, "val_files": val_files,
        "report": asdict(report)}) + "\n")
    for p in out.glob("chunk-*.npz"):  # ours, and any an earlier process count left
        p.unlink()
    for old in out.parent.glob(f"images-{r}-*"):  # earlier listings of this run's folder
        if old != out and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)


def load_folder(root: Path, resolution: int, cache: Path | None = None,
                show_progress: bool = True, background: tuple[int, int, int] = WHITE
                ) -> tuple[np.ndarray, FolderReport]:
    """All readable images under `root` as uint8 [N, R, R, 3] in memory (sorted by path),
    no split. For small folders and tests; runs use `decode_folder`."""
    listing = scan(root)
    report = FolderReport(str(root), found=len(listing.files), not_files=listing.not_files)
    if cache is not None:
        opts = DecodeOptions(resolution, background, val_fraction=0.0)
        f = decode_folder(root, opts, cache, show_progress=show_progress)
        return np.asarray(f.train), f.report
    images = np.empty((len(listing.files), resolution, resolution, 3), dtype=np.uint8)
    bar = Progress(len(listing.files), "load images", enabled=show_progress)
    n = 0
    for rel in listing.files:
        try:
            images[n] = load_image(Path(root) / rel, resolution, background)
            n += 1
        except TooLarge as e:
            report.too_large.append((rel, str(e)))
        except Exception as e:  # noqa: BLE001 - any decoder failure means "skip this file"
            report.skipped.append((rel, f"{type(e).__name__}: {e}"))
        bar.update()
    report.loaded = report.train = n
    if n == 0:
        raise UserError(f"no readable images under {root} ({len(listing.files)} candidate "
                        f"files)")
    return images[:n], report


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
