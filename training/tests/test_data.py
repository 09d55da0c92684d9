"""Image folders: recursion, formats and modes, broken files skipped and named."""

from __future__ import annotations

import numpy as np
from PIL import Image

from training import data


def make_folder(root):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)
    (root / "a" / "deep").mkdir(parents=True)
    (root / "b").mkdir()
    Image.fromarray(rgb).save(root / "a" / "one.png")
    Image.fromarray(rgb).save(root / "a" / "deep" / "two.JPG", quality=90)
    Image.fromarray(rgb[..., 0]).save(root / "b" / "grey.png")
    rgba = np.dstack([rgb, np.full((40, 60), 128, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(root / "b" / "alpha.png")
    Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE).save(root / "b" / "pal.gif")
    Image.fromarray(rgb).save(root / "b" / "bmp.bmp")
    Image.fromarray(rgb).save(root / "b" / "webp.webp")
    Image.fromarray(rgb[..., 0].astype(np.uint16) * 200).save(root / "b" / "deep16.png")
    Image.fromarray(rgb).convert("CMYK").save(root / "b" / "cmyk.jpg")
    Image.fromarray(rgb).save(root / "b" / "tiny.tif")
    # broken ones
    good = (root / "a" / "one.png").read_bytes()
    (root / "a" / "truncated.png").write_bytes(good[: len(good) // 2])
    (root / "b" / "text.jpg").write_text("not an image")
    (root / "b" / "empty.png").write_bytes(b"")
    (root / "b" / "notes.txt").write_text("ignored: not an image suffix")


def test_load_folder_mixed(tmp_path):
    make_folder(tmp_path)
    images, report = data.load_folder(tmp_path, 32, show_progress=False)
    assert images.shape == (10, 32, 32, 3) and images.dtype == np.uint8
    assert report.found == 13 and report.loaded == 10
    skipped = sorted(p.split("/")[-1] for p, _ in report.skipped)
    assert skipped == ["empty.png", "text.jpg", "truncated.png"]
    assert "3 skipped" in report.summary() and "truncated.png" in report.summary()


def test_load_folder_cache(tmp_path):
    make_folder(tmp_path / "imgs")
    a, _ = data.load_folder(tmp_path / "imgs", 16, cache=tmp_path / "cache", show_progress=False)
    b, rep = data.load_folder(tmp_path / "imgs", 16, cache=tmp_path / "cache",
                              show_progress=False)
    assert np.array_equal(a, b) and len(rep.skipped) == 3
    assert len(list((tmp_path / "cache").glob("images-16-*.npz"))) == 1


def test_square_crop_keeps_centre():
    img = np.zeros((20, 60, 3), np.uint8)
    img[:, 20:40] = 255  # the centre third is white
    out = data.square(Image.fromarray(img), 20)
    assert out.shape == (20, 20, 3) and out.mean() > 250


def test_alpha_composited_on_white():
    rgba = np.zeros((8, 8, 4), np.uint8)  # fully transparent black
    out = data.to_rgb(Image.fromarray(rgba, "RGBA"))
    assert np.asarray(out).min() == 255
