"""`make bench`'s PyTorch side (training/tools/bench_torch.py) on the builtin preset's small
shapes, without the clipgen binary: the extra KV-cached configurations, `torch_best`, the bf16
checks, and a configuration that fails being reported as skipped instead of ending the bench.
torch.compile itself is left out (its first compile takes a minute here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "training" / "tools" / "bench_torch.py"


def quiet_env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_extra_configurations_and_best(tmp_path: Path) -> None:
    cmd = [sys.executable, str(SCRIPT), "--preset", "builtin", "--batch", "2", "--threads", "1"]
    cmd += ["--repeats", "1", "--out", str(tmp_path), "--torch-configs", "kv_bf16,kv_autocast"]
    r = subprocess.run(
        cmd, check=False, cwd=ROOT, env=quiet_env(), capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    out = json.loads((tmp_path / "bench.json").read_text())

    tok = out["tokens_per_s"]
    measured = {k: v for k, v in tok.items() if k.startswith("torch_kv")}
    assert set(measured) == {"torch_kv", "torch_kv_bf16", "torch_kv_autocast"}
    assert all(v > 0 for v in measured.values())
    best = max(measured, key=measured.__getitem__)
    assert tok["torch_best"] == {"config": best, "tokens_per_s": measured[best]}
    assert tok["torch_recompute"] > 0

    one = tok["batch_1"]
    measured_1 = {k: v for k, v in one.items() if k.startswith("torch_kv")}
    assert set(measured_1) == set(measured)
    best_1 = max(measured_1, key=measured_1.__getitem__)
    assert one["torch_best"] == {"config": best_1, "tokens_per_s": measured_1[best_1]}

    checks = out["checks"]
    for prefix in ("torch_bf16", "torch_autocast_bf16"):
        assert 0 < checks[f"{prefix}_logits_max_rel_diff"] < 0.1
        assert 0.5 < checks[f"{prefix}_argmax_agreement"] <= 1
    assert out["skipped"] == {}

    cfg = out["config"]
    assert cfg["torch"] and cfg["torch_threads"] == 1
    assert set(cfg["torch_configs"]) == {"kv", "kv_bf16", "kv_autocast"}
    assert cfg["torch_configs"]["kv_bf16"]["weights"] == "bfloat16"
    assert cfg["torch_configs"]["kv_autocast"]["autocast"] == "cpu, bfloat16"
    assert cfg["torch_configs"]["kv"]["compile"] is None
    assert "ratios" not in out  # no clipgen run to compare


@pytest.fixture
def bench(monkeypatch):
    # Imported in-process: the wait policy is taken from the environment, not chosen (and set).
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    from training.tools import bench_torch

    threads = torch.get_num_threads()
    yield bench_torch
    torch.set_num_threads(threads)


def test_failing_configuration_is_skipped(bench, monkeypatch, tmp_path: Path) -> None:
    def broken_compile(*args, **kwargs):
        raise RuntimeError("no C++ compiler here\nsecond line")

    monkeypatch.setattr(bench.torch, "compile", broken_compile)
    args = ["--preset", "builtin", "--batch", "2", "--threads", "1", "--repeats", "1"]
    args += ["--out", str(tmp_path), "--torch-configs", "kv_compiled", "--no-batch-one"]
    assert bench.main(args) == 0
    out = json.loads((tmp_path / "bench.json").read_text())
    assert out["skipped"] == {"torch_kv_compiled": "RuntimeError: no C++ compiler here"}
    assert "torch_kv_compiled" not in out["tokens_per_s"]
    assert out["tokens_per_s"]["torch_best"]["config"] == "torch_kv"
    assert "batch_1" not in out["tokens_per_s"]
    assert out["config"]["torch_configs"]["kv_compiled"]["compile"]["backend"] == "inductor"


def test_config_names(bench) -> None:
    assert bench.parse_torch_configs("all") == list(bench.TORCH_CONFIGS)
    assert bench.parse_torch_configs("torch_kv_bf16_compiled, kv_bf16") == [
        "kv",
        "kv_bf16",
        "kv_bf16_compiled",
    ]
    with pytest.raises(Exception, match="unknown torch configuration"):
        bench.parse_torch_configs("kv,kv_fp8")


def test_goals_are_against_torch_at_its_best(bench) -> None:
    ratios = {"clipgen_over_torch_best": 0.9, "clipgen_over_torch_kv": 2.0,
              "clipgen_over_torch_recompute": 30.0, "clipgen_over_torch_best_batch_1": 1.2}
    goals = bench.done_when(ratios, decode_clipgen=0.5, decode_torch=0.7)
    assert goals["tokens_per_s_faster_than_torch_best"] is False  # 2x torch_kv is not enough
    assert goals["tokens_per_s_faster_than_torch_best_batch_1"] is True
    assert goals["tokens_per_s_at_least_1.5x_torch_kv"] is True
    assert goals["vqgan_decode_not_slower_than_torch"] is True
    del ratios["clipgen_over_torch_best_batch_1"]
    assert "tokens_per_s_faster_than_torch_best_batch_1" not in bench.done_when(ratios, 1.0, 0.7)
