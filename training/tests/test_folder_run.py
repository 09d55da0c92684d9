"""A user's folder through `python -m training train` at the tiny size: consistency by
construction (fingerprints), the report on held-out files, metrics after a resume, exported
file modes, and the messages (user errors in one line, Ctrl-C, help on every option)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from training import common, data, models, pipeline
from training.__main__ import build_parser
from training.__main__ import main as cli_main
from training.prior_train import load_shards
from training.vqgan_train import to_model_range

ROOT = Path(__file__).resolve().parents[2]
CLIP = ROOT / "samples" / "model"
torch.set_num_threads(1)


def tiny(folder: Path, run: Path, model: Path, vq_steps: int = 2) -> list[str]:
    return ["--threads", "1", "train", "--data", str(folder), "--out", str(run), "--clip",
            str(CLIP), "--export", str(model), "--size", "tiny", "--vq-steps", str(vq_steps),
            "--vq-batch", "4", "--vq-disc-start", "-1", "--vq-perceptual-weight", "0",
            "--vq-checkpoint-every", "1", "--prior-steps", "2", "--prior-batch", "4",
            "--prior-emb-batch", "1", "--prior-checkpoint-every", "1"]


def make_pictures(root: Path, n: int = 24) -> None:
    rng = np.random.default_rng(0)
    for i in range(n):
        d = root / f"set{i % 2}"
        d.mkdir(parents=True, exist_ok=True)
        im = np.zeros((40, 48, 3), np.uint8)
        im[:] = rng.integers(0, 256, 3)
        y, x = rng.integers(0, 30, 2)
        im[y : y + 10, x : x + 12] = rng.integers(0, 256, 3)
        if i % 5 == 0:  # some transparent clip art
            alpha = np.zeros((40, 48), np.uint8)
            alpha[y : y + 10, x : x + 12] = 255
            Image.fromarray(np.dstack([im, alpha]), "RGBA").save(d / f"{i:02d}.png")
        else:
            Image.fromarray(im).save(d / f"{i:02d}.png")


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    base = tmp_path_factory.mktemp("folder")
    folder, run, model = base / "pics", base / "run", base / "model"
    make_pictures(folder)
    assert cli_main(tiny(folder, run, model)) == 0
    return folder, run, model


def _steps(path: Path) -> list[int]:
    return [r["step"] for r in common.read_jsonl(path)]


def test_finished_run_has_report_fingerprints_and_readable_files(finished):
    _folder, run, model = finished
    rep = json.loads((run / "data-report.json").read_text())
    assert rep["loaded"] == 24 and rep["validation"] >= 1
    assert rep["train"] + rep["validation"] == 24
    e, _t = load_shards(run / "shards")
    assert len(e) == rep["train"]  # validation files are not in the shards
    m = json.loads((model / "model.json").read_text())
    vq, clip = pipeline.load_vqgan(run), pipeline.load_clip(CLIP)[0]
    fp = m["fingerprints"]
    assert fp["vqgan"] == common.weights_hash(vq) and fp["clip"] == common.weights_hash(clip)
    assert fp["prior"] == common.weights_hash(pipeline.load_prior(run))
    assert fp["data"]["files"] == 24 and fp["data"]["resolution"] == 32
    assert json.loads((run / "fingerprints.json").read_text())["vqgan"]["weights"] == fp["vqgan"]
    for p in model.rglob("*"):
        assert (p.stat().st_mode & 0o777) == (0o755 if p.is_dir() else 0o644), p
    for f in ("report.html", "recon.png", "samples.png", "report.json"):
        assert (run / f).exists(), f
    page = (run / "report.html").read_text()
    assert 'src="recon.png"' in page and 'src="samples.png"' in page and "PSNR" in page
    report = json.loads((run / "report.json").read_text())
    assert report["validation"]["images"] == rep["validation"]
    assert 0 < report["validation"]["codebook_usage"] <= 1
    with Image.open(run / "recon.png") as g:
        assert g.size[1] > g.size[0] / 8  # two rows of cells


def test_more_vqgan_steps_rebuild_shards_and_prior(finished, tmp_path):
    """The issue's silent inconsistency: a finished run started again with more VQGAN steps
    must not keep the old tokens or the old prior."""
    folder, run, model = finished
    old = json.loads((model / "model.json").read_text())["fingerprints"]
    assert cli_main(tiny(folder, run, model, vq_steps=4)) == 0
    vq = pipeline.load_vqgan(run)
    assert torch.load(run / "vqgan.pt", weights_only=False)["step"] == 4
    new = json.loads((model / "model.json").read_text())["fingerprints"]
    assert new["vqgan"] == common.weights_hash(vq) != old["vqgan"]
    assert new["prior"] != old["prior"] and (run / "prior.stale.pt").exists()
    f = data.decode_folder(folder, data.DecodeOptions(32), run / "cache", show_progress=False)
    _, tokens = load_shards(run / "shards")
    fresh = vq.encode(to_model_range(np.asarray(f.train)))["indices"]
    assert torch.equal(tokens, fresh.long())  # every stored token is the new VQGAN's
    prior_ck = torch.load(run / "prior.pt", weights_only=False)
    assert prior_ck["inputs"]["shards"]["vqgan"] == new["vqgan"]
    for name in ("vqgan-metrics.jsonl", "prior-metrics.jsonl"):  # no duplicate rows
        steps = _steps(run / name)
        assert len(steps) == len(set(steps)) and steps == sorted(steps), (name, steps)


def test_export_refuses_a_prior_of_another_vqgan(finished, capsys):
    folder, run, _model = finished
    assert cli_main(["--threads", "1", "vqgan", "--data", str(folder), "--out", str(run),
                     "--size", "tiny", "--steps", "6", "--batch", "4", "--disc-start", "-1",
                     "--perceptual-weight", "0", "--checkpoint-every", "1"]) == 0
    capsys.readouterr()
    assert cli_main(["export", "--run", str(run), "--clip", str(CLIP), "--out",
                     str(run / "stale-model")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "another VQGAN's tokens" in err, err
    assert not (run / "stale-model").exists()


def test_changed_data_set_refuses_to_resume_the_vqgan(finished, capsys):
    folder, run, model = finished
    Image.new("RGB", (20, 20), (1, 2, 3)).save(folder / "set0" / "new.png")
    try:
        capsys.readouterr()
        assert cli_main(tiny(folder, run, model, vq_steps=8)) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) >= 1 and "another data set" in err[-1] and "new --out" in err[-1], err
        assert not any("Traceback" in line for line in err)
        assert torch.load(run / "vqgan.pt", weights_only=False)["step"] == 6  # untouched
    finally:
        (folder / "set0" / "new.png").unlink()


def test_metric_log_resume_writes_no_duplicate_rows(tmp_path):
    path = tmp_path / "m.jsonl"
    log = common.MetricLog(path)
    for s in range(0, 30, 10):
        log.write(step=s, x=1.0)
    log = common.MetricLog(path, truncate_after=20)  # the checkpoint was at step 20
    for s in range(20, 40, 10):
        log.write(step=s, x=2.0)
    assert _steps(path) == [0, 10, 20, 30]


@pytest.mark.parametrize("args, message", [
    (["--data", "/nonexistent/pictures"], "--data /nonexistent/pictures does not exist"),
    (["--clip", "EMPTY"], "no CLIP there"),
    (["--data", "EMPTY"], "no image files under"),
])
def test_user_errors_are_one_line(args, message, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "pics").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "pics" / "a.png")
    argv = {"--data": str(tmp_path / "pics"), "--clip": str(CLIP)}
    for k, v in zip(args[::2], args[1::2], strict=True):
        argv[k] = str(tmp_path / "empty") if v == "EMPTY" else v
    rc = cli_main(["train", "--out", str(tmp_path / "run"), "--size", "tiny",
                   *[x for kv in argv.items() for x in kv]])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("error: ") and "\n" not in err and message in err, err


def test_every_option_has_help():
    ap = build_parser()
    sub = next(a for a in ap._actions if a.dest == "cmd")
    for name in ("world", "clip", "vqgan", "shards", "prior", "export", "train", "builtin"):
        for action in sub.choices[name]._actions:
            assert action.help and action.help.strip(), (name, action.option_strings)


def test_sizes_and_resolution():
    for name, p in models.SIZES.items():
        cfg = p.vqgan_config()
        assert cfg.resolution == p.resolution and cfg.grid == p.resolution // p.factor, name
    med = models.SIZES["gpt2_medium"]
    assert med.factor == 16 and med.vqgan.n_embed == 16384 and med.n_layer == 24
    assert med.vqgan_config(128).attn_resolutions == (8,)
    assert models.SIZES["laptop"].vqgan_config(128).grid == 16
    with pytest.raises(ValueError, match="multiple"):
        models.SIZES["laptop"].vqgan_config(60)
    b = models.SIZES["builtin"]
    one = b.estimate_s(32, 1000, 16, 1000, 64)
    assert one == pytest.approx(1000 * 16 * 0.036 + 1000 * 64 * 0.0125)
    assert b.estimate_s(64, 1000, 16, 1000, 64, processes=2) == pytest.approx(one * 2)
    assert med.estimate_s(256, 10, 8, 10, 8) is None


def test_ctrl_c_says_where_and_how_to_resume_from_any_directory(tmp_path):
    """Run from another directory (PYTHONPATH names the repository), interrupted with SIGINT
    once the VQGAN has a checkpoint: no traceback, the stage, the step, the command."""
    make_pictures(tmp_path / "pics", 8)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    args = tiny(tmp_path / "pics", tmp_path / "run", tmp_path / "model", vq_steps=100000)
    proc = subprocess.Popen([sys.executable, "-m", "training", *args], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (tmp_path / "run" / "vqgan.pt").exists() and time.time() < deadline:
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err, err[-2000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith("interrupted in vqgan at step") and "vqgan.pt" in last, last
    assert "Run the same command again to resume: python -m training" in last


DEBUG_CLI = ROOT / ".build" / "debug" / "clipgen"


@pytest.mark.skipif(not DEBUG_CLI.exists(), reason="the clipgen CLI is not built (swift build)")
def test_report_samples_come_from_the_engine(finished, tmp_path):
    folder, run, model = finished
    f = pipeline.load_data(folder, run, data.DecodeOptions(32), common.Dist())
    clip = pipeline.load_clip(CLIP)[0]
    vq, gpt = pipeline.load_vqgan(run), pipeline.load_prior(run)
    from training.folder_report import write_report

    write_report(run, f, clip, vq, gpt, n=2, samples=2, export=model, cli=DEBUG_CLI)
    report = json.loads((run / "report.json").read_text())
    assert report["samples_from"] == "engine"
    assert "the engine" in (run / "report.html").read_text()
    with Image.open(run / "samples.png") as g:
        assert g.size[0] > g.size[1]  # two rows of three cells (the image, two samples)
