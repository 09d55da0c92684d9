"""A tiny run through every stage (world, CLIP, VQGAN, shards, prior, export, sampling,
judging), resumption from checkpoints, and torchrun/DDP against one process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from training import common, export, models, pipeline, sample
from training.__main__ import main as cli_main
from training.prior_train import PriorTrainConfig, estimate, load_shards, train_prior

ROOT = Path(__file__).resolve().parents[2]
torch.set_num_threads(1)

TINY = [
    "--images", "96",
    "--clip-steps", "3", "--clip-batch", "16", "--clip-pool", "64",
    "--vq-steps", "4", "--vq-batch", "4", "--vq-disc-start", "2", "--vq-restart-every", "2",
    "--vq-perceptual-weight", "0.1", "--vq-checkpoint-every", "2",
    "--prior-steps", "4", "--prior-batch", "4", "--prior-emb-batch", "1",
    "--prior-checkpoint-every", "2",
]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("builtin")
    run, model = base / "run", base / "model"
    assert cli_main(["--threads", "1", "builtin", "--out", str(run), "--export", str(model),
                     *TINY]) == 0
    return run, model


def test_every_stage_writes_its_outputs(tiny_run):
    run, model = tiny_run
    for f in ("world/attributes.jsonl", "tokenizer/vocab.json", "clip.pt", "vqgan.pt",
              "shards/index.json", "prior.pt", "timings.json", "vqgan-summary.json",
              "clip-metrics.jsonl", "vqgan-metrics.jsonl", "prior-metrics.jsonl"):
        assert (run / f).exists(), f
    for f in ("timings.json", "vqgan-metrics.jsonl", "prior-metrics.jsonl"):
        assert (model / "training-log" / f).exists(), f
    m = json.loads((model / "model.json").read_text())
    assert m["format"] == "clipgen" and m["conditioning"]["normalize"] is True
    gcfg = json.loads((model / "gpt" / "config.json").read_text())
    vcfg = json.loads((model / "vqgan" / "config.json").read_text())
    ccfg = json.loads((model / "clip" / "config.json").read_text())
    side = vcfg["resolution"] // 2 ** (len(vcfg["ch_mult"]) - 1)
    assert gcfg["block_size"] == side * side and gcfg["vocab_size"] == vcfg["n_embed"]
    assert gcfg["n_cond_embd"] == ccfg["projection_dim"] and gcfg["uncond_embedding"] is True
    assert ccfg["text_config"]["hidden_act"] == "quick_gelu"
    merges = (model / "tokenizer" / "merges.txt").read_text().splitlines()
    vocab = json.loads((model / "tokenizer" / "vocab.json").read_text())
    assert merges[0] == "#version: 0.2"
    assert max(vocab.values()) == vocab["<|endoftext|>"] == len(vocab) - 1
    assert vocab["<|startoftext|>"] == len(vocab) - 2 and len(vocab) == 512 + len(merges) - 1 + 2


def test_export_round_trips_and_samples(tiny_run):
    run, model = tiny_run
    clip, tok, gpt, vq = export.load_model_dir(model)
    trained = pipeline.load_prior(run)
    for k, v in gpt.state_dict().items():
        if not k.endswith(".mask"):
            torch.testing.assert_close(v, trained.state_dict()[k].half().float())
    imgs, scores = sample.generate(clip, tok, gpt, vq, "a small red circle on the left", n=2,
                                   candidates=3, seed=1, temperature=1.0, top_k=50,
                                   guidance=2.0)
    assert imgs.shape == (2, 32, 32, 3) and imgs.dtype == np.uint8
    assert scores[0] >= scores[1]
    again, _ = sample.generate(clip, tok, gpt, vq, "a small red circle on the left", n=2,
                               candidates=3, seed=1, temperature=1.0, top_k=50, guidance=2.0)
    assert np.array_equal(imgs, again)


def test_shards_match_the_frozen_models(tiny_run):
    run, _ = tiny_run
    e, t = load_shards(run / "shards")
    report = json.loads((run / "data-report.json").read_text())
    n = report["train"]  # the validation files are never in the shards
    assert n + report["validation"] == 96 and report["validation"] > 0
    assert e.shape[0] == t.shape[0] == n and t.shape[1] == 64
    torch.testing.assert_close(e.norm(dim=-1), torch.ones(n), atol=2e-3, rtol=0)


def test_estimators():
    logits = torch.randn(2, 5, 7, requires_grad=True)
    for name in ("straight-through", "gumbel", "soft"):
        y = estimate(logits, name, 1.0, torch.rand(2, 5, 7))
        torch.testing.assert_close(y.sum(-1), torch.ones(2, 5))
        (y * torch.randn_like(y)).sum().backward()
        assert logits.grad is not None and logits.grad.abs().sum() > 0
        logits.grad = None
    hard = estimate(logits, "straight-through", 1.0)
    assert set(hard.detach().flatten().round(decimals=5).tolist()) <= {0.0, 1.0}


def test_prior_resume_matches_straight_run(tiny_run, tmp_path):
    run, _ = tiny_run
    clip, _ = pipeline.load_clip(run)
    vq = pipeline.load_vqgan(run)
    cfg = PriorTrainConfig(steps=4, batch=4, emb_batch=1, checkpoint_every=2)
    straight = train_prior(run / "shards", tmp_path / "a", cfg, common.Dist(), clip, vq)
    half = PriorTrainConfig(**{**cfg.__dict__, "steps": 2})
    train_prior(run / "shards", tmp_path / "b", half, common.Dist(), clip, vq)
    # the second call finds the checkpoint at step 2 and continues with the full schedule
    ck = torch.load(tmp_path / "b" / "prior.pt", weights_only=False)
    assert ck["step"] == 2
    resumed = train_prior(run / "shards", tmp_path / "b", cfg, common.Dist(), clip, vq)
    for (k, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(),
                         strict=True):
        torch.testing.assert_close(a, b, msg=k)


def test_builtin_rerun_resumes_instead_of_restarting(tiny_run, capsys):
    run, model = tiny_run
    before = (run / "vqgan.pt").stat().st_mtime_ns
    assert cli_main(["--threads", "1", "builtin", "--out", str(run), "--export", str(model),
                     *TINY]) == 0
    assert (run / "vqgan.pt").stat().st_mtime_ns == before  # nothing left to train


def _torchrun(args: list[str], nproc: int, env_extra: dict | None = None):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), **(env_extra or {})}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc-per-node={nproc}", "-m", "training", "--threads", "1", *args]
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
                       check=False)
    assert r.returncode == 0, r.stderr[-4000:]


def _zero_gradient_params(vq_ckpt: Path, images: Path) -> set[str]:
    """VQGAN tensors whose exact gradient is 0: biases that reach the loss only through
    GroupNorms with one channel per group. Float noise is all their gradient holds, and Adam
    turns noise into +-lr steps, so such tensors cannot match across processes."""
    from training import data
    from training.vqgan_train import AutoencoderStep, to_model_range

    ck = torch.load(vq_ckpt, weights_only=False)
    vq = models.VQGAN(models.VQGANConfig.from_json(ck["config"]))
    vq.load_state_dict(ck["model"])
    x = to_model_range(data.load_folder(images, 32, show_progress=False)[0][:8])
    xr, qloss, _, _ = AutoencoderStep(vq, 0.25)(x)
    ((xr - x).abs().mean() + qloss).backward()
    scale = max(float(p.grad.abs().max()) for p in vq.parameters() if p.grad is not None)
    return {k for k, p in vq.named_parameters()
            if k.endswith(".bias") and float(p.grad.abs().max()) < 1e-5 * scale}


def _compare(a_path: Path, b_path: Path, skip: set[str] = frozenset()) -> None:
    a = torch.load(a_path, weights_only=False)["model"]
    b = torch.load(b_path, weights_only=False)["model"]
    for k in a:
        if k not in skip:
            torch.testing.assert_close(a[k], b[k], atol=3e-5, rtol=1e-4, msg=f"{a_path} {k}")


def _curves(path: Path, keys: tuple[str, ...]) -> list[tuple]:
    return [tuple(r[k] for k in keys) for r in common.read_jsonl(path) if keys[0] in r]


def test_ddp_two_processes_match_one(tiny_run, tmp_path):
    """Each loop under torchrun with 2 gloo processes vs 1 process, same global batch:
    the CLIP (gathered contrastive loss), the VQGAN (GAN with adaptive weight, dead-code
    restarts, perceptual term) and the prior (L_emb with Gumbel, noise, condition dropout;
    both runs read the same shards)."""
    run, model = tiny_run
    for n in ("one", "two"):
        (tmp_path / n).mkdir()
        shutil.copytree(run / "shards", tmp_path / n / "shards")
        shutil.copy(run / "vqgan.pt", tmp_path / n / "vqgan.pt")
    prior = ["prior", "--clip", str(model), "--steps", "3", "--batch", "4", "--emb-batch", "1",
             "--cond-dropout", "0.25", "--estimator", "gumbel"]
    vq = ["vqgan", "--data", str(run / "world"), "--clip", str(model), "--steps", "3",
          "--batch", "4", "--disc-start", "1", "--restart-every", "2",
          "--perceptual-weight", "0.1"]
    clip = ["clip", "--steps", "3", "--batch", "8", "--pool", "32", "--checkpoint-every", "3"]
    for n, procs in (("one", 1), ("two", 2)):
        _torchrun([*prior, "--out", str(tmp_path / n)], procs)
        _torchrun([*vq, "--out", str(tmp_path / n / "vq")], procs)
        _torchrun([*clip, "--out", str(tmp_path / n / "clip")], procs)
    one, two = tmp_path / "one", tmp_path / "two"
    _compare(one / "prior.pt", two / "prior.pt")
    skip = _zero_gradient_params(one / "vq" / "vqgan.pt", run / "world")
    assert "decoder.up.0.block.1.conv1.bias" in skip and len(skip) < 20, skip
    _compare(one / "vq" / "vqgan.pt", two / "vq" / "vqgan.pt", skip)
    _compare(one / "clip" / "clip.pt", two / "clip" / "clip.pt")
    for f, keys in (("prior-metrics.jsonl", ("nll", "l_emb")),
                    ("vq/vqgan-metrics.jsonl", ("l1", "l2", "d_loss")),
                    ("clip/clip-metrics.jsonl", ("loss",))):
        np.testing.assert_allclose(_curves(one / f, keys), _curves(two / f, keys), rtol=1e-4,
                                   atol=1e-6, err_msg=f)


def test_ablation_and_eval_run_on_a_tiny_model(tiny_run, tmp_path):
    """The ablation (2 variants, in 2 processes) and the report, with the Python sampler."""
    run, model = tiny_run
    assert cli_main(["--threads", "1", "ablation", "--model", str(model), "--out",
                     str(tmp_path / "abl"), "--images", "64", "--steps", "2", "--batch", "4",
                     "--variants", "baseline,noise=0", "--prompts", "2", "--n", "1",
                     "--jobs", "2"]) == 0
    ab = json.loads((tmp_path / "abl" / "ablation.json").read_text())
    names = [r["name"] for r in ab["rows"]]
    assert names == ["baseline", "baseline, guidance 2", "baseline, guidance 3", "noise=0"]
    assert cli_main(["--threads", "1", "eval", "--model", str(model), "--out",
                     str(tmp_path / "eval"), "--sampler", "python", "--max-prompts", "2",
                     "--candidates", "2", "--n-held", "1", "--vq-images", "16",
                     "--ablation", str(tmp_path / "abl"), "--run", str(run)]) == 0
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    for split in ("in_distribution", "held_out"):
        assert set(report["accuracy"][split]) == {"shape", "color", "size", "position", "all", "n"}
        assert report["accuracy"][split]["n"] == 2
    assert set(report["vqgan"]) == {"psnr_db", "codebook_usage"}
    assert 0 <= report["clip"]["zero_shot_caption_top1"] <= 1
    page = (tmp_path / "eval" / "report.html").read_text()
    assert "Ablation" in page and "<svg" in page and "data:image/png;base64" in page
