"""Image folders: recursion, formats and modes, broken files skipped and named; the alpha
rule (and the engine's fixtures for it); non-files; the pixel limit; the validation split;
the decoded cache, decoded by several ranks."""

from __future__ import annotations

import json
import os
import signal
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from training import data
from training.common import Dist, UserError, atomic_save, ctrl_c_after

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "Tests" / "ClipGenEngineTests" / "Fixtures" / "alpha"


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
    assert len(list((tmp_path / "cache").glob("images-16-*/train.npy"))) == 1


def test_square_crop_keeps_centre():
    img = np.zeros((20, 60, 3), np.uint8)
    img[:, 20:40] = 255  # the centre third is white
    out = data.square(Image.fromarray(img), 20)
    assert out.shape == (20, 20, 3) and out.mean() > 250


def test_alpha_composited_on_white():
    rgba = np.zeros((8, 8, 4), np.uint8)  # fully transparent black
    out = data.to_rgb(Image.fromarray(rgba, "RGBA"))
    assert np.asarray(out).min() == 255


def test_alpha_rule_on_modes():
    """RGBA, LA, P with a tRNS chunk: the documented integer rule, any background."""
    rgba = np.array([[[200, 100, 0, 0], [200, 100, 0, 128], [200, 100, 0, 255]]], np.uint8)
    out = np.asarray(data.flatten_alpha(Image.fromarray(rgba, "RGBA")))
    assert out.tolist() == [[[255, 255, 255], [227, 177, 127], [200, 100, 0]]]
    black = np.asarray(data.flatten_alpha(Image.fromarray(rgba, "RGBA"), (0, 0, 0)))
    assert black.tolist() == [[[0, 0, 0], [100, 50, 0], [200, 100, 0]]]
    la = Image.fromarray(np.array([[[10, 0], [10, 255]]], np.uint8), "LA")
    assert np.asarray(data.flatten_alpha(la)).tolist() == [[[255] * 3, [10] * 3]]
    p = Image.new("P", (2, 1))
    p.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    p.putdata([0, 1])
    p.info["transparency"] = bytes([0, 255])
    assert np.asarray(data.to_rgb(p)).tolist() == [[[255, 255, 255], [0, 0, 255]]]
    plain = Image.fromarray(np.full((1, 1, 3), 7, np.uint8))
    assert np.asarray(data.flatten_alpha(plain)).tolist() == [[[7, 7, 7]]]


def test_alpha_rule_matches_pillow_composite():
    rng = np.random.default_rng(1)
    rgba = rng.integers(0, 256, (16, 16, 4), dtype=np.uint8)
    ours = np.asarray(data.flatten_alpha(Image.fromarray(rgba, "RGBA")))
    white = Image.new("RGBA", (16, 16), (255, 255, 255, 255))
    theirs = np.asarray(Image.alpha_composite(white, Image.fromarray(rgba, "RGBA")))[..., :3]
    assert np.abs(ours.astype(int) - theirs).max() <= 1


def test_engine_alpha_fixtures_are_current(tmp_path):
    """The committed fixtures are what flatten_alpha makes of them (the engine's tests
    check its own flattening against expected.json)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "alpha_fixtures", ROOT / "training" / "scripts" / "alpha_fixtures.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.write(tmp_path)
    committed = json.loads((FIXTURES / "expected.json").read_text())
    assert committed == json.loads((tmp_path / "expected.json").read_text())
    modes = {r["file"]: r["mode"] for r in committed["images"]}
    assert modes == {"rgba.png": "RGBA", "la.png": "LA", "p_trns.png": "P", "l_trns.png": "L",
                     "rgb_trns.png": "RGB"}
    for r in committed["images"]:
        with Image.open(FIXTURES / r["file"]) as img:
            assert data.to_rgb(img).tobytes().hex() == r["white"]
            assert len(bytes.fromhex(r["white"])) == 8 * 8 * 3
            assert bytes.fromhex(r["white"]) != bytes.fromhex(r["black"])


def test_parse_color():
    assert data.parse_color("white") == (255, 255, 255)
    assert data.parse_color("#102030") == (16, 32, 48)
    assert data.parse_color("1,2,3") == (1, 2, 3)
    with pytest.raises(UserError):
        data.parse_color("mauve-ish")


def test_non_files_are_counted_and_listed(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "ok.png")
    (tmp_path / "folder.png").mkdir()  # a directory named like an image
    Image.new("RGB", (8, 8)).save(tmp_path / "folder.png" / "inside.png")
    os.symlink(tmp_path / "missing.png", tmp_path / "broken.png")
    os.symlink(tmp_path, tmp_path / "loop")
    listing = data.scan(tmp_path)
    assert listing.files == ["folder.png/inside.png", "ok.png"]
    kinds = dict(listing.not_files)
    assert set(kinds) == {"folder.png", "broken.png", "loop"}, kinds
    assert "broken symlink" in kinds["broken.png"] and "loop" in kinds["loop"]
    f = data.decode_folder(tmp_path, data.DecodeOptions(8), tmp_path / "cache",
                           show_progress=False)
    assert len(f.report.not_files) == 3 and "broken.png" in f.report.summary()


def test_pixel_limit_lists_images_without_warnings(tmp_path):
    Image.new("RGB", (40, 30)).save(tmp_path / "big.png")
    Image.new("RGB", (8, 8)).save(tmp_path / "small.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DecompressionBombWarning may escape
        f = data.decode_folder(tmp_path, data.DecodeOptions(8, max_pixels=1000, val_fraction=0),
                               tmp_path / "cache", show_progress=False)
    assert f.report.loaded == 1 and f.report.skipped == []
    assert [p for p, _ in f.report.too_large] == ["big.png"]
    assert "1200 pixels" in f.report.too_large[0][1]


def test_user_errors_for_missing_and_empty_folders(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        data.scan(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no image files"):
        data.decode_folder(tmp_path / "empty", data.DecodeOptions(8), tmp_path / "c")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.png").write_text("no")
    with pytest.raises(UserError, match="no readable images"):
        data.decode_folder(tmp_path / "bad", data.DecodeOptions(8), tmp_path / "c",
                           show_progress=False)


def _numbered(root: Path, n: int) -> None:
    for i in range(n):
        d = root / f"d{i % 3}"
        d.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (9, 7), (i, 255 - i, (7 * i) % 256)).save(d / f"{i:03d}.png")


def test_validation_split_by_file(tmp_path):
    """Validation files are chosen by their path alone: never in the training arrays, the
    same when files are added, and the arrays hold exactly those files' pixels."""
    _numbered(tmp_path / "a", 60)
    opts = data.DecodeOptions(8, val_fraction=0.2)
    f = data.decode_folder(tmp_path / "a", opts, tmp_path / "cache", show_progress=False)
    assert set(f.train_files).isdisjoint(f.val_files)
    assert len(f.train_files) + len(f.val_files) == 60 and 3 <= len(f.val_files) <= 25
    assert f.train.shape[0] == len(f.train_files) and f.val.shape[0] == len(f.val_files)
    for files, arr in ((f.train_files, f.train), (f.val_files, f.val)):
        for rel, im in zip(files, arr, strict=True):
            assert np.array_equal(im, data.load_image(tmp_path / "a" / rel, 8)), rel
    _numbered(tmp_path / "b", 90)  # the same 60 files and 30 more
    g = data.decode_folder(tmp_path / "b", opts, tmp_path / "cache2", show_progress=False)
    assert set(f.val_files) == set(g.val_files) & set(f.train_files + f.val_files)
    assert data.split_files(["x.png", "y.png"], 0.01)[1]  # never an empty validation set


def test_max_images_is_a_stable_subset(tmp_path):
    _numbered(tmp_path, 30)
    f = data.decode_folder(tmp_path, data.DecodeOptions(8, max_images=10, val_fraction=0),
                           tmp_path / "c", show_progress=False)
    assert f.report.found == 10 and len(f.train_files) == 10
    assert f.train_files == data.limit_files(data.scan(tmp_path).files, 10)


class _Rank(Dist):
    def barrier(self) -> None:  # the ranks run one after the other in this test
        pass


def test_ranks_decode_their_own_chunks(tmp_path, monkeypatch):
    """Under torchrun each rank decodes every world-th chunk; rank 0 only joins them. Here
    rank 1 runs first (its chunks appear, no join), then rank 0 decodes the rest and joins;
    the result equals one process's."""
    _numbered(tmp_path / "imgs", 11)
    monkeypatch.setattr(data, "_chunk_size", lambda r: 2)
    opts = data.DecodeOptions(8, val_fraction=0.2)
    calls = []
    real = data._decode_chunk
    monkeypatch.setattr(data, "_decode_chunk", lambda *a: (calls.append(a[3].name), real(*a)))
    with pytest.raises(FileNotFoundError):  # rank 1 alone: nobody joined the chunks
        data.decode_folder(tmp_path / "imgs", opts, tmp_path / "c", _Rank(1, 2), False)
    assert calls == ["chunk-2-00001.npz", "chunk-2-00003.npz", "chunk-2-00005.npz"]
    calls.clear()
    two = data.decode_folder(tmp_path / "imgs", opts, tmp_path / "c", _Rank(0, 2), False)
    assert calls == ["chunk-2-00000.npz", "chunk-2-00002.npz", "chunk-2-00004.npz"]
    one = data.decode_folder(tmp_path / "imgs", opts, tmp_path / "c1", show_progress=False)
    assert np.array_equal(one.train, two.train) and np.array_equal(one.val, two.val)
    assert one.train_files == two.train_files and not list((tmp_path / "c").rglob("chunk-*"))


def test_alpha_background_changes_pixels_and_cache(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)  # fully transparent black
    Image.fromarray(rgba, "RGBA").save(tmp_path / "t.png")
    Image.new("RGB", (8, 8)).save(tmp_path / "u.png")
    w = data.decode_folder(tmp_path, data.DecodeOptions(8, val_fraction=0), tmp_path / "c",
                           show_progress=False)
    b = data.decode_folder(tmp_path, data.DecodeOptions(8, (0, 0, 0), val_fraction=0),
                           tmp_path / "c", show_progress=False)
    assert w.train[w.train_files.index("t.png")].min() == 255
    assert b.train[b.train_files.index("t.png")].max() == 0
    assert w.fingerprint != b.fingerprint and w.fingerprint["alpha_background"] == [255] * 3


def test_ctrl_c_waits_for_a_checkpoint_being_written(tmp_path):
    """SIGINT while a checkpoint is written: the file is finished, then KeyboardInterrupt."""
    finished = []
    with pytest.raises(KeyboardInterrupt), ctrl_c_after():
        os.kill(os.getpid(), signal.SIGINT)
        finished.append("after the signal")
    assert finished == ["after the signal"]
    atomic_save({"step": 3, "w": torch.zeros(4)}, tmp_path / "ck.pt")
    assert torch.load(tmp_path / "ck.pt")["step"] == 3
