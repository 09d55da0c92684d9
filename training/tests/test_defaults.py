"""The model's default sampling settings: the sweep's choice, where it is written, who reads it."""

from __future__ import annotations

import json
import shutil
from argparse import Namespace
from pathlib import Path

import numpy as np

from training import defaults, world
from training.evaluate import resolve_settings

FIXTURE = Path(__file__).resolve().parents[2] / "Tests/ClipGenEngineTests/Fixtures/tiny_model"


def test_builtin_cases_are_in_distribution_only():
    cases = defaults.builtin_cases(156, 3)
    held = {world.prompt(s) for s in world.held_out_scenes()}
    assert len({text for text, _ in cases}) == 156  # every training combination once
    assert not any(text in held for text, _ in cases)


def test_sweep_picks_the_cheapest_setting_within_tolerance():
    # A fake model: accuracy rises with guidance and candidates, falls with temperature.
    def accuracy(s: defaults.Setting) -> float:
        return min(1.0, 0.3 + 0.1 * s.guidance + 0.05 * s.candidates - 0.2 * s.temperature)

    def gen(text, s, seed):
        rng = np.random.default_rng(seed)
        return np.array([rng.random() < accuracy(s)])

    cases = [(f"p{i}", {}) for i in range(200)]
    grid = defaults.Grid(temperatures=(0.5, 1.0), top_ks=(0,), guidances=(1.0, 3.0),
                         candidates=(1, 4, 8), finalists=1, tolerance=0.05)
    rec = defaults.sweep(gen, cases, lambda img, want: bool(img[0]), grid, has_guidance=True,
                         repeats=1, log=lambda *_: None)
    best = max(r["accuracy"] for r in rec["rows"])
    chosen = rec["chosen"]
    assert chosen["accuracy"] >= best - 0.05
    # Nothing at least as accurate (within tolerance) is cheaper.
    cost = defaults.Setting(**chosen["setting"]).cost()
    assert all(defaults.Setting(**r["setting"]).cost() >= cost for r in rec["rows"]
               if r["accuracy"] >= best - 0.05)
    assert chosen["setting"]["temperature"] == 0.5 and chosen["setting"]["guidance"] == 3.0
    assert {r["stage"] for r in rec["rows"]} == {1, 2}
    # Without an unconditional embedding no guided setting is tried.
    rec = defaults.sweep(gen, cases[:20], lambda img, want: bool(img[0]), grid,
                         has_guidance=False, repeats=1, log=lambda *_: None)
    assert all(r["setting"]["guidance"] == 1.0 for r in rec["rows"])


def test_defaults_are_written_into_model_json_and_read_back(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    shutil.copy(FIXTURE / "model.json", model / "model.json")
    chosen = {"temperature": 0.7, "top_k": 8, "top_p": 1.0, "guidance": 2.0, "candidates": 4}
    defaults.write_defaults(model, chosen, ["a red circle"], {"rows": []})
    m = json.loads((model / "model.json").read_text())
    assert m["defaults"] == chosen and m["sample_prompts"] == ["a red circle"]
    assert m["gpt"]["config"] == "gpt/config.json"  # the rest is kept
    assert (model / "training-log" / "defaults-sweep.json").exists()
    assert (model / "model.json").stat().st_mode & 0o777 == 0o644
    assert defaults.read_defaults(model) == chosen
    # make eval samples with them unless told otherwise, and says so.
    args = Namespace(model=model, temperature=None, top_k=None, top_p=None, guidance=None,
                     candidates=None)
    used, overrides, source = resolve_settings(args)
    assert used == chosen and overrides == {} and source == "model defaults"
    args.temperature = 1.0
    used, overrides, source = resolve_settings(args)
    assert used["temperature"] == 1.0 and overrides == {"temperature": 1.0}
    assert source == "model defaults with temperature 1.0"


def test_a_model_without_defaults_reads_the_engine_fallbacks():
    assert defaults.read_defaults(FIXTURE) == {"temperature": 1.0, "top_k": 0, "top_p": 1.0,
                                               "guidance": 1.0, "candidates": 1}
