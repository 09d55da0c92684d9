"""Make the image fixtures the Swift tests compare against (Tests/ClipGenEngineTests/Fixtures/Image).

Everything expected comes from Pillow (decoding, `convert("RGB")`, `resize`) and from
torchvision's CLIP / VQGAN transforms. torchvision is used when it imports; otherwise the same
transforms are written out below from torchvision's source (`Resize(int)`: shorter side to n,
longer `int(n * long / short)`; `CenterCrop`: offset `int(round((side - n) / 2.0))`; `ToTensor`:
float32 `/ 255`; `Normalize`: float32 `(x - mean) / std`) — and when torchvision is present the
script checks that both agree bit for bit.

Inputs with unusual layouts (sub-byte and 16-bit samples, Adam7 interlacing, tRNS, short palettes,
text after IDAT) are written by the small PNG writer here, since Pillow cannot write them.

Run: python training/scripts/make_image_fixtures.py [--out DIR]
Deterministic: the same Pillow/libjpeg versions give the same files.

A wider random check (not committed): `--sweep DIR [--count N]`, then
`CLIPGEN_IMAGE_SWEEP_DIR=DIR swift test --filter ImageParitySweep`.
"""

from __future__ import annotations

import argparse
import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

try:  # optional cross-check
    import torch
    from torchvision import transforms as T
    from torchvision.transforms import InterpolationMode

    HAVE_TORCHVISION = True
except Exception:  # noqa: BLE001 - any import failure just disables the cross-check
    HAVE_TORCHVISION = False

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / "Tests" / "ClipGenEngineTests" / "Fixtures" / "Image"

# --------------------------------------------------------------------------------------------
# A minimal PNG writer for layouts Pillow does not write.
# --------------------------------------------------------------------------------------------

ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _pack_row(samples: np.ndarray, bit_depth: int) -> bytes:
    flat = samples.reshape(-1)
    if bit_depth == 16:
        return flat.astype(">u2").tobytes()
    if bit_depth == 8:
        return flat.astype(np.uint8).tobytes()
    bits = np.unpackbits(flat.astype(np.uint8)[:, None], axis=1)[:, 8 - bit_depth :].reshape(-1)
    return np.packbits(bits).tobytes()


def write_png(
    samples: np.ndarray,
    color_type: int,
    bit_depth: int,
    interlace: bool = False,
    palette: list[tuple[int, int, int]] | None = None,
    trns: bytes | None = None,
    chunks_after_idat: list[tuple[bytes, bytes]] = (),
) -> bytes:
    """samples: (h, w, channels) integers already in range for bit_depth."""
    h, w, _ = samples.shape
    out = b"\x89PNG\r\n\x1a\n"
    out += _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0, 1 if interlace else 0))
    if palette is not None:
        out += _chunk(b"PLTE", bytes(np.asarray(palette, np.uint8).reshape(-1)))
    if trns is not None:
        out += _chunk(b"tRNS", trns)
    raw = bytearray()
    passes = ADAM7 if interlace else [(0, 0, 1, 1)]
    for x0, y0, dx, dy in passes:
        sub = samples[y0::dy, x0::dx]
        if sub.shape[0] == 0 or sub.shape[1] == 0:
            continue
        for row in sub:
            raw += b"\x00" + _pack_row(row, bit_depth)
    out += _chunk(b"IDAT", zlib.compress(bytes(raw), 9))
    for kind, data in chunks_after_idat:
        out += _chunk(kind, data)
    return out + _chunk(b"IEND", b"")


# --------------------------------------------------------------------------------------------
# Reference transforms (torchvision's rules, written out).
# --------------------------------------------------------------------------------------------


def tv_resize_shorter(img: Image.Image, size: int, resample: int) -> Image.Image:
    w, h = img.size
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = size, int(size * long / short)
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    return img.resize((new_w, new_h), resample)


def tv_center_crop(img: Image.Image, size: int) -> Image.Image:
    w, h = img.size
    if size > w or size > h:
        raise ValueError("fixtures never pad")
    # torchvision writes int(round(...)); Python's round already returns an int, halves to even.
    top = round((h - size) / 2.0)
    left = round((w - size) / 2.0)
    return img.crop((left, top, left + size, top + size))


def tv_to_tensor_normalize(img: Image.Image, mean, std) -> np.ndarray:
    x = np.asarray(img, dtype=np.uint8).transpose(2, 0, 1).astype(np.float32) / np.float32(255)
    m = np.asarray(mean, dtype=np.float32)[:, None, None]
    s = np.asarray(std, dtype=np.float32)[:, None, None]
    return ((x - m) / s).astype(np.float32)


def clip_reference(img: Image.Image, size: int, resample: int, mean, std) -> tuple[Image.Image, np.ndarray]:
    cropped = tv_center_crop(tv_resize_shorter(img, size, resample), size)
    tensor = tv_to_tensor_normalize(cropped, mean, std)
    if HAVE_TORCHVISION:
        mode = {Image.BICUBIC: InterpolationMode.BICUBIC, Image.BILINEAR: InterpolationMode.BILINEAR}[resample]
        tv = T.Compose([T.Resize(size, interpolation=mode), T.CenterCrop(size), T.ToTensor(), T.Normalize(mean, std)])
        expected = tv(img).numpy()
        assert np.array_equal(expected, tensor), "the written-out transform differs from torchvision"
    return cropped, tensor


def taming_tensor(img: Image.Image) -> np.ndarray:
    """taming's ImagePaths: (image / 127.5 - 1.0).astype(np.float32), channels first."""
    a = np.asarray(img, dtype=np.uint8)
    return (a / 127.5 - 1.0).astype(np.float32).transpose(2, 0, 1).copy()


def taming_to_pixels(x: np.ndarray) -> np.ndarray:
    """taming's chw_to_pillow on a float32 [3, H, W] array."""
    rescaled = (x.transpose(1, 2, 0) + 1.0) / 2.0
    return (255 * rescaled).clip(0, 255).astype(np.uint8)


def torchvision_to_pixels(x: np.ndarray, mean, std) -> np.ndarray:
    """HFAiLab-style denormalise (x * std + mean, clamp to [0, 1]) then save_image's rounding."""
    if HAVE_TORCHVISION:
        t = torch.from_numpy(x)
        m = torch.tensor(mean).view(-1, 1, 1)
        s = torch.tensor(std).view(-1, 1, 1)
        unit = (t * s + m).clamp(0, 1)
        return unit.mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    m = np.asarray(mean, np.float32)[:, None, None]
    s = np.asarray(std, np.float32)[:, None, None]
    unit = np.clip(x * s + m, 0, 1)
    return np.clip(unit * np.float32(255) + np.float32(0.5), 0, 255).astype(np.uint8).transpose(1, 2, 0)


# --------------------------------------------------------------------------------------------
# Fixture content
# --------------------------------------------------------------------------------------------


def textured(width: int, height: int, seed: int) -> Image.Image:
    """Noise over gradients and hard edges, so every filter tap and the clamps matter."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([255 * x / max(width - 1, 1), 255 * y / max(height - 1, 1), 255 * ((x + y) % 7 < 3)], axis=-1)
    noise = rng.integers(-90, 91, (height, width, 3))
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8), "RGB")


def scene(width: int, height: int, seed: int) -> Image.Image:
    """A larger picture that compresses well: gradients, discs, stripes and one noise patch."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    img = np.stack([200 * x / width + 30, 180 * y / height + 40, 120 + 100 * np.sin(x / 9.0)], axis=-1)
    for _ in range(6):
        cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(10, 60)
        color = rng.integers(0, 256, 3)
        img[(x - cx) ** 2 + (y - cy) ** 2 < r * r] = color
    img[(x.astype(int) // 3) % 5 == 0] = [250, 250, 250]
    py, px = height // 3, width // 2
    patch = img[py : py + 40, px : px + 40]
    patch[...] = rng.integers(0, 256, patch.shape)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


def make_sweep(out: Path, count: int, seed: int) -> None:
    """Random files for a wider parity check than the committed fixtures (not committed):
    `count` each of JPEG decodes, PNG decodes, resizes and CLIP transforms, with Pillow's and
    torchvision's results, listed in sweep.json. The Swift side: ImageParitySweepTests."""
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    sweep: dict = {"seed": seed, "decode": [], "resize": [], "clip": []}
    filters = {
        "box": Image.BOX,
        "bilinear": Image.BILINEAR,
        "hamming": Image.HAMMING,
        "bicubic": Image.BICUBIC,
        "lanczos": Image.LANCZOS,
    }

    def picture(w: int, h: int) -> Image.Image:
        s = int(rng.integers(0, 1 << 30))
        return textured(w, h, s) if rng.random() < 0.5 else scene(w, h, s)

    def side() -> int:
        return int(rng.integers(1, 301)) if rng.random() < 0.8 else int(rng.integers(301, 1200))

    for i in range(count):
        # JPEG: any size, quality, subsampling, progressive or not, colour, gray or CMYK.
        img = picture(side(), side())
        mode = rng.choice(["RGB", "RGB", "L", "CMYK"])
        options = {
            "quality": int(rng.integers(1, 101)),
            "subsampling": int(rng.integers(0, 3)),
            "progressive": bool(rng.random() < 0.3),
            "optimize": bool(rng.random() < 0.3),
        }
        buffer = io.BytesIO()
        try:
            img.convert(mode).save(buffer, "JPEG", **options)
        except OSError:  # Pillow's encoder can fail on some optimize settings; plain then
            buffer = io.BytesIO()
            img.convert(mode).save(buffer, "JPEG", quality=options["quality"])
        name = f"sweep_{i:04d}.jpg"
        (out / name).write_bytes(buffer.getvalue())
        rgb = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"), dtype=np.uint8)
        (out / (name + ".rgb")).write_bytes(rgb.tobytes())
        sweep["decode"].append({"file": name, "width": rgb.shape[1], "height": rgb.shape[0], "format": "jpeg"})

        # PNG: random colour type, bit depth, interlace, tRNS.
        w, h = int(rng.integers(1, 90)), int(rng.integers(1, 90))
        color_type, bits = [
            (0, 1),
            (0, 2),
            (0, 4),
            (0, 8),
            (0, 16),
            (2, 8),
            (2, 16),
            (3, 1),
            (3, 2),
            (3, 4),
            (3, 8),
            (4, 8),
            (4, 16),
            (6, 8),
            (6, 16),
        ][int(rng.integers(0, 15))]
        channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[color_type]
        top = 2**bits if color_type != 3 else min(2**bits, 256)
        samples = rng.integers(0, top, (h, w, channels))
        palette = [tuple(int(v) for v in rng.integers(0, 256, 3)) for _ in range(int(rng.integers(1, 257)))]
        trns = None
        if rng.random() < 0.3 and color_type in (0, 2, 3):
            trns = bytes(rng.integers(0, 256, {0: 2, 2: 6, 3: 4}[color_type]).astype(np.uint8))
        data = write_png(
            samples,
            color_type,
            bits,
            interlace=bool(rng.random() < 0.5),
            palette=palette[: min(len(palette), 2**bits)] if color_type == 3 else None,
            trns=trns,
        )
        name = f"sweep_{i:04d}.png"
        (out / name).write_bytes(data)
        rgb = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.uint8)
        (out / (name + ".rgb")).write_bytes(rgb.tobytes())
        sweep["decode"].append({"file": name, "width": w, "height": h, "format": "png"})

        # Resize: random filter and sizes, up and down.
        src = picture(int(rng.integers(1, 200)), int(rng.integers(1, 200)))
        src_name = f"sweep_{i:04d}_resize_input.png"
        src.save(out / src_name)
        filt = list(filters)[int(rng.integers(0, 5))]
        size = (int(rng.integers(1, 260)), int(rng.integers(1, 260)))
        result = np.asarray(src.resize(size, filters[filt]), dtype=np.uint8)
        (out / (src_name + f".{filt}.rgb")).write_bytes(result.tobytes())
        sweep["resize"].append(
            {
                "input": src_name,
                "filter": filt,
                "width": size[0],
                "height": size[1],
                "expected": src_name + f".{filt}.rgb",
            }
        )

        # CLIP transform at 32 (tensor) and 224 (tensor too: it is not committed here).
        n = 32 if i % 2 == 0 else 224
        clip_src = picture(side(), side())
        clip_name = f"sweep_{i:04d}_clip_input.png"
        clip_src.save(out / clip_name)
        _, tensor = clip_reference(clip_src, n, Image.BICUBIC, CLIP_MEAN, CLIP_STD)
        (out / (clip_name + ".f32")).write_bytes(tensor.astype("<f4").tobytes())
        sweep["clip"].append({"input": clip_name, "size": n, "expected": clip_name + ".f32"})
    (out / "sweep.json").write_text(json.dumps(sweep, indent=1) + "\n")
    print(f"wrote a sweep of {count} × (JPEG, PNG, resize, CLIP) to {out} (torchvision checked: {HAVE_TORCHVISION})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--sweep", type=Path, help="write a random parity sweep here instead of the fixtures")
    parser.add_argument("--count", type=int, default=200, help="cases of each kind in the sweep")
    parser.add_argument("--seed", type=int, default=2024, help="sweep seed")
    args = parser.parse_args()
    if args.sweep is not None:
        make_sweep(args.sweep, args.count, args.seed)
        return
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    manifest: dict = {
        "generator": "training/scripts/make_image_fixtures.py",
        "pillow": Image.__version__,
        "torchvision_checked": HAVE_TORCHVISION,
        "decode": [],
        "text": [],
        "resize": [],
        "clip": [],
        "vqgan_input": [],
        "vqgan_output": [],
        "upscale": [],
    }
    rng = np.random.default_rng(1234)

    def save(name: str, data: bytes) -> None:
        (out / name).write_bytes(data)

    def save_pixels(stem: str, rgb: np.ndarray) -> str:
        """Expected pixels: raw .rgb when small, else a PNG (lossless; decoding it is tested)."""
        if rgb.size <= 16384:
            save(stem + ".rgb", rgb.tobytes())
            return stem + ".rgb"
        save(stem + ".png", pil_bytes(Image.fromarray(rgb, "RGB"), "PNG", compress_level=9))
        return stem + ".png"

    def add_decode(name: str, data: bytes, tolerance: int = 0) -> None:
        save(name, data)
        img = Image.open(io.BytesIO(data))
        rgb = np.asarray(img.convert("RGB"), dtype=np.uint8)
        expected = save_pixels(name.rsplit(".", 1)[0] + ".expected", rgb)
        manifest["decode"].append(
            {
                "file": name,
                "width": rgb.shape[1],
                "height": rgb.shape[0],
                "expected": expected,
                "pil_mode": img.mode,
                "max_abs_diff": tolerance,
            }
        )

    def pil_bytes(img: Image.Image, fmt: str, **kw) -> bytes:
        buffer = io.BytesIO()
        img.save(buffer, fmt, **kw)
        return buffer.getvalue()

    w, h = 13, 11

    def noise(channels: int, high: int) -> np.ndarray:
        return rng.integers(0, high, (h, w, channels))

    # PNGs Pillow writes.
    add_decode("png_rgb8.png", pil_bytes(Image.fromarray(noise(3, 256).astype(np.uint8), "RGB"), "PNG"))
    add_decode("png_rgba8.png", pil_bytes(Image.fromarray(noise(4, 256).astype(np.uint8), "RGBA"), "PNG"))
    add_decode("png_la8.png", pil_bytes(Image.fromarray(noise(2, 256).astype(np.uint8), "LA"), "PNG"))
    add_decode("png_l8.png", pil_bytes(Image.fromarray(noise(1, 256)[..., 0].astype(np.uint8), "L"), "PNG"))
    quantized = textured(w, h, 5).quantize(colors=40)
    add_decode("png_p8_trns.png", pil_bytes(quantized, "PNG", transparency=3))
    # Layouts from the writer above.
    for bits in (1, 2, 4):
        add_decode(f"png_gray{bits}.png", write_png(noise(1, 2**bits), 0, bits))
    add_decode("png_gray1_1x1.png", write_png(np.ones((1, 1, 1), int), 0, 1))
    add_decode("png_rgb8_wide.png", write_png(rng.integers(0, 256, (1, 67, 3)), 2, 8))
    short_palette = [(10, 20, 30), (200, 100, 50), (0, 255, 128)]
    for bits in (1, 2, 4, 8):
        indices = noise(1, min(2**bits, 6))  # indices 3..5 fall outside the 3-entry palette
        add_decode(f"png_palette{bits}.png", write_png(indices, 3, bits, palette=short_palette, trns=b"\x00\x80"))
    gray16 = noise(1, 65536)
    gray16[0, :6, 0] = [0, 1, 254, 255, 256, 65535]  # around Pillow's clamp at 255
    add_decode("png_gray16.png", write_png(gray16, 0, 16))
    small16 = noise(1, 400)  # mostly below 256, where the clamp keeps values
    add_decode("png_gray16_small.png", write_png(small16, 0, 16, trns=b"\x00\x05"))
    add_decode("png_la16.png", write_png(noise(2, 65536), 4, 16))
    add_decode("png_rgb16.png", write_png(noise(3, 65536), 2, 16))
    add_decode("png_rgba16.png", write_png(noise(4, 65536), 6, 16))
    add_decode("png_gray8_trns.png", write_png(noise(1, 256), 0, 8, trns=b"\x00\x07"))
    add_decode("png_rgb8_trns.png", write_png(noise(3, 256), 2, 8, trns=b"\x00\x01\x00\x02\x00\x03"))
    # Adam7 interlacing, including sub-byte and 16-bit samples and passes that are empty.
    add_decode("png_rgb8_interlaced.png", write_png(noise(3, 256), 2, 8, interlace=True))
    add_decode("png_gray1_interlaced.png", write_png(noise(1, 2), 0, 1, interlace=True))
    add_decode(
        "png_palette2_interlaced.png", write_png(noise(1, 4), 3, 2, interlace=True, palette=short_palette + [(1, 2, 3)])
    )
    add_decode("png_gray16_interlaced.png", write_png(noise(1, 65536), 0, 16, interlace=True))
    add_decode("png_rgba16_interlaced.png", write_png(noise(4, 65536), 6, 16, interlace=True))
    add_decode("png_rgb8_interlaced_3x2.png", write_png(rng.integers(0, 256, (2, 3, 3)), 2, 8, interlace=True))

    # JPEGs Pillow writes (its libjpeg-turbo); Pillow's own decode is the reference.
    photo = textured(37, 23, 7)
    add_decode("jpeg_420.jpg", pil_bytes(photo, "JPEG", quality=85))
    add_decode("jpeg_444.jpg", pil_bytes(photo, "JPEG", quality=85, subsampling=0))
    add_decode("jpeg_422.jpg", pil_bytes(photo, "JPEG", quality=85, subsampling=1))
    add_decode("jpeg_progressive.jpg", pil_bytes(photo, "JPEG", quality=80, progressive=True))
    add_decode("jpeg_optimized_q30.jpg", pil_bytes(photo, "JPEG", quality=30, optimize=True))
    add_decode("jpeg_gray.jpg", pil_bytes(photo.convert("L"), "JPEG", quality=85))
    add_decode("jpeg_cmyk.jpg", pil_bytes(photo.convert("CMYK"), "JPEG", quality=90))
    add_decode("jpeg_scene_420.jpg", pil_bytes(scene(160, 120, 3), "JPEG", quality=75))

    # Text chunks: Pillow's tEXt (Latin-1), zTXt, iTXt (plain and compressed) before IDAT, and a
    # tEXt after IDAT from the writer above.
    info = PngImagePlugin.PngInfo()
    text_chunks = [
        ("parameters", json.dumps({"prompt": "a red circle", "seed": 7, "top_k": 500}, sort_keys=True)),
        ("Comment", "café au lait, 25 °C"),
        ("prompt", "一只猫 — a cat 🐱"),
        ("zipped", "compressed " * 20),
        ("zipped utf8", "сжатый текст " * 10),
    ]
    info.add_text(*text_chunks[0])
    info.add_text(*text_chunks[1])
    info.add_text(*text_chunks[2])
    info.add_text(*text_chunks[3], zip=True)
    info.add_itxt(*text_chunks[4], zip=True)
    data = pil_bytes(Image.fromarray(noise(3, 256).astype(np.uint8), "RGB"), "PNG", pnginfo=info)
    save("text_pil.png", data)
    read_back = Image.open(io.BytesIO(data))
    read_back.load()
    assert [read_back.text[k] for k, _ in text_chunks] == [v for _, v in text_chunks]
    manifest["text"].append({"file": "text_pil.png", "chunks": [list(c) for c in text_chunks]})
    tail_chunk = ("after", "written after IDAT")
    data = write_png(noise(3, 256), 2, 8, chunks_after_idat=[(b"tEXt", b"after\x00written after IDAT")])
    save("text_after_idat.png", data)
    manifest["text"].append({"file": "text_after_idat.png", "chunks": [list(tail_chunk)]})

    # Pillow resize, every filter, down, up and mixed.
    filters = {
        "box": Image.BOX,
        "bilinear": Image.BILINEAR,
        "hamming": Image.HAMMING,
        "bicubic": Image.BICUBIC,
        "lanczos": Image.LANCZOS,
    }
    small = textured(50, 37, 11)
    save("resize_input_50x37.png", pil_bytes(small, "PNG"))
    big = scene(320, 240, 4)
    save("resize_input_320x240.png", pil_bytes(big, "PNG"))
    resize_cases = [("resize_input_50x37.png", small, name, size) for name in filters for size in [(17, 60), (32, 23)]]
    resize_cases += [
        ("resize_input_50x37.png", small, "bicubic", (101, 37)),  # width only: one pass
        ("resize_input_50x37.png", small, "bicubic", (50, 80)),  # height only
        ("resize_input_50x37.png", small, "bicubic", (7, 5)),  # strong downscale
        # Pillow 13 runs the vertical pass first when the height shrinks by more than twice as
        # many pixels as the width: these three do, the one after them only just does not.
        ("resize_input_50x37.png", small, "bicubic", (45, 10)),
        ("resize_input_50x37.png", small, "bilinear", (120, 9)),
        ("resize_input_50x37.png", small, "lanczos", (40, 16)),  # 37 - 16 = 21 > 20
        ("resize_input_50x37.png", small, "lanczos", (40, 17)),  # 20, not > 20: horizontal first
        ("resize_input_320x240.png", big, "bicubic", (298, 224)),  # CLIP's shorter-side resize
        ("resize_input_320x240.png", big, "bilinear", (341, 256)),
    ]
    for source, img, name, size in resize_cases:
        result = np.asarray(img.resize(size, filters[name]), dtype=np.uint8)
        expected = save_pixels(
            f"resize_{source.split('_')[-1].split('.')[0]}_{name}_{size[0]}x{size[1]}.expected", result
        )
        manifest["resize"].append(
            {"input": source, "filter": name, "width": size[0], "height": size[1], "expected": expected}
        )

    # CLIP's transform: landscape down, portrait up, crop offsets at .5 (round half to even).
    clip_inputs = [
        ("clip_input_50x37.png", textured(50, 37, 21), 32),
        ("clip_input_23x41.png", textured(23, 41, 22), 32),
        ("clip_input_66x64.png", textured(66, 64, 23), 32),  # crop excess 1 → offset 0
        ("clip_input_74x64.png", textured(74, 64, 24), 32),  # excess 5 → offset 2
        ("clip_input_32x32.png", textured(32, 32, 25), 32),
        ("clip_input_40x200.png", textured(40, 200, 26), 32),  # tall: vertical pass first
        ("resize_input_320x240.png", big, 224),
    ]
    for name, img, size in clip_inputs:
        if not (out / name).exists():
            save(name, pil_bytes(img, "PNG"))
        cropped, tensor = clip_reference(img, size, Image.BICUBIC, CLIP_MEAN, CLIP_STD)
        stem = f"clip_{name.split('_')[-1].split('.')[0]}_{size}"
        entry = {"input": name, "size": size, "expected_crop": stem + ".crop.png"}
        save(stem + ".crop.png", pil_bytes(cropped, "PNG"))
        if size <= 32:
            save(stem + ".expected.f32", tensor.astype("<f4").tobytes())
            entry["expected_tensor"] = stem + ".expected.f32"
        manifest["clip"].append(entry)

    # VQGAN input: HFAiLab's torchvision transform (bilinear, mean = std = 0.5) and taming's scaling.
    for name, img, size in [("clip_input_50x37.png", None, 16), ("clip_input_23x41.png", None, 16)]:
        img = Image.open(out / name).convert("RGB")
        _, hfai = clip_reference(img, size, Image.BILINEAR, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
        stem = f"vqgan_{name.split('_')[-1].split('.')[0]}_{size}"
        save(stem + ".hfai.f32", hfai.astype("<f4").tobytes())
        taming_crop = tv_center_crop(tv_resize_shorter(img, size, Image.BICUBIC), size)
        save(stem + ".taming.f32", taming_tensor(taming_crop).astype("<f4").tobytes())
        manifest["vqgan_input"].append(
            {"input": name, "size": size, "hfai": stem + ".hfai.f32", "taming": stem + ".taming.f32"}
        )

    # VQGAN output → pixels: values spread over and past [-1, 1], plus exact grid points.
    x = rng.normal(0, 0.7, (3, 9, 10)).astype(np.float32)
    x.reshape(-1)[:9] = [-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, np.float32(2 * 128 / 255 - 1), 1e-7]
    save("vqgan_output_3x9x10.f32", x.astype("<f4").tobytes())
    save("vqgan_output_3x9x10.taming.rgb", taming_to_pixels(x).tobytes())
    save("vqgan_output_3x9x10.hfai.rgb", torchvision_to_pixels(x, (0.5,) * 3, (0.5,) * 3).tobytes())
    manifest["vqgan_output"].append(
        {
            "input": "vqgan_output_3x9x10.f32",
            "shape": [3, 9, 10],
            "taming": "vqgan_output_3x9x10.taming.rgb",
            "hfai": "vqgan_output_3x9x10.hfai.rgb",
        }
    )

    # Display upscaling: Pillow NEAREST and BICUBIC at integer factors.
    for method, factor in [("nearest", 3), ("bicubic", 2)]:
        resample = Image.NEAREST if method == "nearest" else Image.BICUBIC
        result = small.resize((small.width * factor, small.height * factor), resample)
        expected = save_pixels(f"upscale_50x37_{method}_{factor}.expected", np.asarray(result, dtype=np.uint8))
        manifest["upscale"].append(
            {"input": "resize_input_50x37.png", "method": method, "factor": factor, "expected": expected}
        )

    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    total = sum(p.stat().st_size for p in out.iterdir())
    print(f"wrote {len(list(out.iterdir()))} files, {total / 1024:.0f} KiB, to {out}")


if __name__ == "__main__":
    main()
