"""The generation-2 built-in pipeline on the TINY world: end to end, resumption, the stand-in
CLIP's hard negatives, eval v2's report and the gallery (through the CLI when it is built)."""

from __future__ import annotations

import json
import random
import time
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from training import builtin_v2 as b2
from training import defaults, evaluate_v2, gallery, models
from training import world_v2 as w2
from training.clip_train import V2Task, binding_twins, contrastive_loss
from training.common import Dist, read_jsonl
from training.reference import tokenizer as bpe

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "Tests/ClipGenEngineTests/Fixtures/tiny_model"
CLI = next((p for p in (ROOT / ".build/release/clipgen", ROOT / ".build/debug/clipgen")
            if p.exists()), None)
needs_cli = pytest.mark.skipif(CLI is None, reason="the Swift CLI is not built")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A tiny v2 run with the prior stopped at step 3 (as if interrupted), then continued to
    step 6 by a second run."""
    root = tmp_path_factory.mktemp("v2")
    run, export = root / "run", root / "model"
    torch.set_num_threads(1)
    cfg = b2.tiny_config()
    cfg.prior.steps = 3
    t = time.time()
    first = b2.build(run, export, cfg, Dist())
    seconds = time.time() - t
    stamps = {n: (run / n).stat().st_mtime_ns for n in ("clip.pt", "vqgan.pt")}
    prior_first = torch.load(run / "prior.pt", weights_only=False)["step"]
    defaults_first = json.loads((export / "model.json").read_text())["defaults"]
    cfg = b2.tiny_config()
    second = b2.build(run, export, cfg, Dist())
    return Namespace(run=run, export=export, first=first, second=second, seconds=seconds,
                     stamps=stamps, prior_first=prior_first, defaults_first=defaults_first)


def test_pipeline_end_to_end_on_the_tiny_world(built):
    assert built.seconds < 60
    m = json.loads((built.export / "model.json").read_text())
    assert m["name"] == b2.MODEL_NAME
    gpt = json.loads((built.export / "gpt" / "config.json").read_text())
    vq = json.loads((built.export / "vqgan" / "config.json").read_text())
    assert gpt["block_size"] == (vq["resolution"] // 4) ** 2  # f4: the whole token grid
    assert set(m["defaults"]) == {"temperature", "top_k", "top_p", "guidance", "candidates"}
    # sample prompts end with held-out examples; the sweep never saw a held-out prompt
    assert any(gallery._is_held_out(p, w2.TINY) for p in m["sample_prompts"])
    sweep = json.loads((built.export / "training-log" / "defaults-sweep.json").read_text())
    assert sweep["world"] == "v2"
    assert not any(gallery._is_held_out(p, w2.TINY) for p in sweep["prompts"])
    summary = json.loads((built.run / "clip-summary.json").read_text())
    assert {"zero_shot_top1", "pair_retrieval_top1", "binding_accuracy"} <= set(summary)
    per = summary["zero_shot_attributes"]
    assert set(per) == {"shape", "color", "size", "position", "background", "style"}
    assert all(0 <= v <= 1 for v in per.values())
    # the generator's folder has no held-out combination
    rows = [json.loads(x) for x in (built.run / "world" / "attributes.jsonl").read_text()
            .splitlines()]
    assert len(rows) == b2.tiny_config().images
    assert all((built.run / "world" / r["file"]).exists() for r in rows)
    for r in rows:
        things = [w2.Thing(r["shape"], r["color"], r.get("size", "medium"))]
        if "shape2" in r:
            things.append(w2.Thing(r["shape2"], r["color2"]))
        scene = w2.Scene(tuple(things), r.get("position"), r.get("relation"), r["background"],
                         r["style"])
        assert not w2.is_held_out(scene, w2.TINY)


def test_a_second_run_continues_instead_of_restarting(built):
    assert built.prior_first == 3
    assert torch.load(built.run / "prior.pt", weights_only=False)["step"] == 6
    # finished stages are not trained again
    for name, stamp in built.stamps.items():
        assert (built.run / name).stat().st_mtime_ns == stamp
    steps = [r["step"] for r in read_jsonl(built.run / "prior-metrics.jsonl") if "nll" in r]
    assert steps == sorted(set(steps)) and steps[-1] == 5
    assert built.second["clip"] < built.first["clip"]
    t = json.loads((built.run / "timings.json").read_text())
    assert t["cumulative"]["total"] >= t["total"]
    # the new prior was exported and swept again; a third run changes nothing
    m = json.loads((built.export / "model.json").read_text())
    before = (built.export / "model.json").read_text()
    again = b2.build(built.run, built.export, b2.tiny_config(), Dist())
    assert (built.export / "model.json").read_text() == before
    assert again["defaults"] < 1.0 and "defaults" in m


def test_clip_batches_hold_the_swapped_binding_twins(tmp_path):
    conf = w2.TINY
    pair = w2.Scene.pair(w2.Thing("circle", "red"), "left of", w2.Thing("square", "blue"))
    swapped, reversed_ = binding_twins(pair, conf)
    assert w2.prompt(swapped) == "a blue circle to the left of a red square"
    assert w2.prompt(reversed_) == "a red circle to the right of a blue square"
    same = w2.Scene.pair(w2.Thing("circle", "red"), "above", w2.Thing("square", "red"))
    assert binding_twins(same, conf)[0].objects[1].color != "red"  # a real difference

    # single objects: two attributes changed, never one the caption leaves out (a twin that
    # differs only there would describe the image too)
    single = w2.Scene.single("circle", "red", "small", "top left", "plain", "plain")
    rng = random.Random(3)
    changed = set()
    for _ in range(40):
        twins = binding_twins(single, conf, rng, unnamed={"size", "position"})
        for t in twins:
            diff = {k for k, v in t.attributes().items() if single.attributes()[k] != v}
            assert len(diff) == 1 and not diff & {"size", "position"}
            changed |= diff
        assert len({frozenset(t.attributes().items()) for t in twins}) == 2
    assert changed == {"shape", "color", "style"}

    task = V2Task(conf, hard_negatives=2)
    bpe.write_files(bpe.learn_merges(task.vocabulary_texts(), 60), tmp_path)
    tok = models.Tokenizer.from_dir(tmp_path)
    cfg = b2.tiny_config().clip
    cfg.pool, cfg.batch = 64, 32
    pool = task.pool(cfg)
    x, ids, match = task.batch(pool, tok, cfg, step=0)
    assert x.shape == (32, 3, conf.resolution, conf.resolution)
    assert ids.shape[:2] == (32, 3) and match.shape == (32, 96)
    idx = torch.randint(len(pool[0]), (32,), generator=_gen(cfg, 0)).tolist()
    for j in range(32):
        assert match[j, 3 * j] == 1  # its own caption
        assert match[j, 3 * j + 1] == 0 and match[j, 3 * j + 2] == 0  # its twins are not
    assert any(pool[0][i].is_pair for i in idx)
    # negatives that describe no image only act as negatives: the loss stays finite
    img, txt = torch.randn(32, 8), torch.randn(96, 8)
    assert torch.isfinite(contrastive_loss(img, txt, torch.tensor(10.0), match))


def _gen(cfg, step):
    from training.common import step_generator

    return step_generator(cfg.seed, step)


def test_v2_sweep_prompts_are_in_distribution_and_cover_every_kind():
    cases = defaults.v2_cases(12, 4242, w2.DEFAULT)
    assert len(cases) >= 4
    kinds = {("pair" if "shape2" in a else "single") for _, a in cases}
    assert kinds == {"single", "pair"}
    assert any(a["style"] != "plain" for _, a in cases)
    assert any(a["background"] != "plain" for _, a in cases)
    for text, _ in cases:
        assert not gallery._is_held_out(text, w2.DEFAULT)


def test_frechet_distance():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 6))
    assert evaluate_v2.frechet_distance(a, a) == pytest.approx(0, abs=1e-6)
    shifted = evaluate_v2.frechet_distance(a, a + 2.0)
    assert shifted == pytest.approx(6 * 4.0, rel=1e-6)


@needs_cli
def test_eval_v2_report_keys(built, tmp_path):
    p = __import__("argparse").ArgumentParser()
    evaluate_v2.add_arguments(p)
    args = p.parse_args(["--model", str(built.export), "--out", str(tmp_path), "--cli", str(CLI),
                         "--world", "tiny", "--max-prompts", "1", "--n-held", "1",
                         "--truth", "2", "--vq-images", "16", "--clip-images", "20"])
    r = evaluate_v2.run_eval(args)
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["settings"]["source"] == "model defaults"
    for path in ("accuracy.in_distribution.all", "accuracy.held_out.all",
                 "accuracy.pairs.in_distribution.all", "accuracy.pairs.held_out.all",
                 "accuracy.style.all", "accuracy.background.all", "clip_score.in_distribution",
                 "clip_score.held_out", "fd_clip.in_distribution", "fd_clip.held_out",
                 "vqgan.psnr_db", "vqgan.codebook_usage", "clip.zero_shot_caption_top1",
                 "seconds_per_image"):
        node = saved
        for k in path.split("."):
            node = node[k]
        assert isinstance(node, float), path
    assert r["images"] == 4 + 3  # one per kind in-distribution, singles/styles/pairs held out
    assert "<img" in (tmp_path / "report.html").read_text()


@needs_cli
def test_gallery_on_the_fixture_model(tmp_path):
    out = tmp_path / "docs" / "gallery.png"
    every = gallery.default_prompts(w2.TINY)
    prompts = every[:3] + [p for p in every if p[1]][:2]  # in-distribution, then held out
    gallery.make_gallery(FIXTURE, out, CLI, prompts, columns=3)
    img = Image.open(out)
    assert img.size[0] == 3 * (gallery.CELL + gallery.PAD) + gallery.PAD
    rows = 2
    assert img.size[1] > rows * gallery.CELL
    assert any(h for _, h in prompts)


def test_gallery_compose_marks_held_out_prompts():
    imgs = [np.full((8, 8, 3), c, np.uint8) for c in (0, 128, 255)]
    sheet = np.asarray(gallery.compose(imgs, ["a", "b", "c"], [False, True, False], columns=3))
    x = gallery.PAD + gallery.CELL + gallery.PAD  # the second cell's left edge
    assert tuple(sheet[gallery.PAD + 10, x - 1]) == gallery.HELD_COLOR
    assert tuple(sheet[gallery.PAD + 10, gallery.PAD - 1]) == (255, 255, 255)

