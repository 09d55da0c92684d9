"""A model's own sampling defaults (model.json "defaults"), chosen by a sweep.

The engine, the CLI, the studio and `make eval` sample with `model.json`'s
`"defaults": {"temperature", "top_k", "top_p", "guidance", "candidates"}` unless told
otherwise, so what a user gets without touching anything is what this sweep found best.

The sweep runs on in-distribution validation prompts only (never the held-out ones, which
`make eval` reports on), through the Python sampler over the exported weights (the same
steps as the engine):

1. temperature x top-k x guidance, one candidate per image, each prompt twice;
2. the best few of those with more candidates per image (CLIP reranking).

The chosen setting is the most accurate one (all attributes right, by the geometric judge);
a setting within `tolerance` of the best that costs less (fewer candidates, then no
guidance) wins the tie, so the default stays fast. Every row of the sweep goes into
`training-log/defaults-sweep.json` beside the weights.

    python -m training.defaults --model samples/model      # sweep, then write model.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

# One prompt: its text and the attributes the judge checks.
Case = tuple[str, dict]
# judge(image uint8 [R, R, 3], wanted attributes) -> all attributes right
Judge = Callable[[np.ndarray, dict], bool]


@dataclass(frozen=True)
class Setting:
    temperature: float
    top_k: int  # 0: all tokens
    top_p: float
    guidance: float
    candidates: int  # per kept image

    def cost(self) -> float:
        """Relative sampling cost: candidates, doubled by guidance's unconditional rows."""
        return self.candidates * (2 if self.guidance != 1 else 1)

    def as_defaults(self) -> dict:
        return asdict(self)


@dataclass
class Grid:
    temperatures: tuple[float, ...] = (0.5, 0.7, 1.0)
    top_ks: tuple[int, ...] = (0, 8, 32)
    top_ps: tuple[float, ...] = (1.0,)
    guidances: tuple[float, ...] = (1.0, 2.0, 3.0)
    candidates: tuple[int, ...] = (1, 4, 8, 16)
    finalists: int = 3  # stage-1 settings tried with more candidates
    tolerance: float = 0.02  # accuracy given up for a cheaper setting


def evaluate(gen, cases: list[Case], setting: Setting, judge: Judge, repeats: int,
             seed: int) -> float:
    """Fraction of images with every attribute right. gen(prompt, setting, seed) -> image."""
    ok = n = 0
    for i, (text, wanted) in enumerate(cases):
        for r in range(repeats):
            img = gen(text, setting, seed + 7919 * i + r)
            ok += int(judge(img, wanted))
            n += 1
    return ok / max(n, 1)


def choose(rows: list[dict], tolerance: float) -> dict:
    """The cheapest row within `tolerance` of the most accurate (ties: lower cost, then the
    more accurate, then the lower temperature)."""
    best = max(r["accuracy"] for r in rows)
    near = [r for r in rows if r["accuracy"] >= best - tolerance]
    return min(near, key=lambda r: (Setting(**r["setting"]).cost(), -r["accuracy"],
                                    r["setting"]["temperature"]))


def sweep(gen, cases: list[Case], judge: Judge, grid: Grid, has_guidance: bool,
          repeats: int = 2, seed: int = 4242, log=print) -> dict:
    """Runs both stages; returns {"defaults", "rows", "prompts", ...}."""
    guidances = grid.guidances if has_guidance else (1.0,)
    rows: list[dict] = []
    t0 = time.time()

    def run(setting: Setting, stage: int) -> dict:
        t = time.time()
        acc = evaluate(gen, cases, setting, judge, repeats, seed)
        row = {"stage": stage, "setting": setting.as_defaults(), "accuracy": acc,
               "images": len(cases) * repeats,
               "seconds_per_image": (time.time() - t) / max(len(cases) * repeats, 1)}
        rows.append(row)
        log(f"  stage {stage}  T {setting.temperature:<4} k {setting.top_k:<3} "
            f"p {setting.top_p:<4} cfg {setting.guidance:<3} x{setting.candidates:<3} "
            f"all {acc:.3f}  ({row['seconds_per_image']:.2f} s/image)")
        return row

    stage1 = [run(Setting(t, k, p, g, 1), 1) for t in grid.temperatures for k in grid.top_ks
              for p in grid.top_ps for g in guidances]
    finalists = sorted(stage1, key=lambda r: -r["accuracy"])[: grid.finalists]
    for r in finalists:
        for c in grid.candidates:
            if c > 1:
                run(Setting(**{**r["setting"], "candidates": c}), 2)
    chosen = choose(rows, grid.tolerance)
    return {"defaults": chosen["setting"], "chosen": chosen, "rows": rows,
            "prompts": [c[0] for c in cases], "repeats": repeats, "seed": seed,
            "grid": asdict(grid), "seconds": time.time() - t0,
            "method": "in-distribution validation prompts only; all-attribute accuracy by the "
                      "geometric judge; cheapest setting within tolerance of the best"}


def write_defaults(model_dir: Path, defaults: dict, sample_prompts: list[str] | None,
                   sweep_record: dict | None) -> None:
    """Puts `defaults` (and `sample_prompts`) into model.json, atomically, and the sweep into
    training-log/defaults-sweep.json."""
    model_dir = Path(model_dir)
    path = model_dir / "model.json"
    manifest = json.loads(path.read_text())
    manifest["defaults"] = {k: defaults[k] for k in
                            ("temperature", "top_k", "top_p", "guidance", "candidates")}
    if sample_prompts:
        manifest["sample_prompts"] = list(sample_prompts)
    if sweep_record is not None:
        log_dir = model_dir / "training-log"
        log_dir.mkdir(exist_ok=True)
        _write_atomic(log_dir / "defaults-sweep.json", json.dumps(sweep_record, indent=1) + "\n")
    _write_atomic(path, json.dumps(manifest, indent=2) + "\n")


def read_defaults(model_dir: Path) -> dict:
    """model.json's defaults, with the engine's fallbacks for missing keys."""
    m = json.loads((Path(model_dir) / "model.json").read_text())
    d = m.get("defaults") or {}
    return {"temperature": float(d.get("temperature", 1.0)), "top_k": int(d.get("top_k", 0)),
            "top_p": float(d.get("top_p", 1.0)), "guidance": float(d.get("guidance", 1.0)),
            "candidates": int(d.get("candidates", 1))}


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


# -- the built-in world ---------------------------------------------------------------------


def builtin_cases(n: int, seed: int) -> list[Case]:
    """In-distribution validation prompts of the built-in world (held-out pairs excluded)."""
    from . import world

    scenes = world.sample_scenes(n, seed, world.training_scenes())
    assert not any(s.held_out for s in scenes)
    return [(world.prompt(s), s.attributes()) for s in scenes]


def builtin_judge(img: np.ndarray, wanted: dict) -> bool:
    from . import judge

    return bool(judge.score(img, wanted)["all"])


def builtin_sample_prompts() -> list[str]:
    """Examples for the studio: in-distribution prompts, then one held-out pair (a colour and
    shape never seen together in training), to show what language-free training can do."""
    from . import world

    held = world.held_out_scenes()[0]
    return ["a large red circle on the left", "a small blue square in the middle",
            "a yellow triangle on the right", "a large purple diamond in the middle",
            "a small green cross on the left", world.prompt(held)]


# -- world v2 ------------------------------------------------------------------------------


def v2_cases(n: int, seed: int, config=None) -> list[Case]:
    """n in-distribution *validation* prompts of world v2: `evaluation_prompts` with another
    seed than the evaluation's (other sizes, positions, colours, pairs), every kind (single,
    style, background, pair) in proportion; never a held-out combination."""
    from . import world_v2 as w2

    config = config or w2.DEFAULT
    prompts = w2.evaluation_prompts("in_distribution", config, seed=seed + 1)
    assert not any(w2.is_held_out(p.scene, config) for p in prompts)
    rng = np.random.default_rng(seed)
    by_kind: dict[str, list] = {}
    for p in prompts:
        by_kind.setdefault(p.kind, []).append(p)
    picked = []
    for kind, ps in sorted(by_kind.items()):
        k = max(1, round(n * len(ps) / len(prompts)))
        picked += [ps[i] for i in sorted(rng.permutation(len(ps))[:k])]
    return [(p.text, p.attributes()) for p in picked[:max(n, len(by_kind))]]


def v2_judge(config=None) -> Judge:
    """All attributes right, by judge_v2 (geometric, no CLIP)."""
    from . import judge_v2
    from . import world_v2 as w2

    config = config or w2.DEFAULT

    def judge(img: np.ndarray, wanted: dict) -> bool:
        return bool(judge_v2.score(img, wanted, config)["all"])

    return judge


def v2_sample_prompts(config=None) -> list[str]:
    """Examples for the studio: a single object, a pair, a style, a background, then
    held-out ones (a shape x colour and a shape pair never in the generator's images)."""
    from . import world_v2 as w2

    config = config or w2.DEFAULT
    inside = w2.evaluation_prompts("in_distribution", config, seed=3)
    held = w2.evaluation_prompts("held_out", config, seed=3)
    out = []
    for kind in ("single", "pair", "style", "background"):
        out += [p.text for p in inside if p.kind == kind][:1]
    out += [p.text for p in held if p.kind == "single"][:1]
    out += [p.text for p in held if p.kind == "pair"][:1]
    return out


def python_generator(model_dir: Path):
    """gen(prompt, setting, seed) -> one image, through the Python sampler on the model's
    exported weights."""
    from .export import load_model_dir
    from .sample import generate

    clip, tok, gpt, vq = load_model_dir(model_dir)

    def gen(text: str, s: Setting, seed: int) -> np.ndarray:
        imgs, _ = generate(clip, tok, gpt, vq, text, n=1, candidates=s.candidates, seed=seed,
                           temperature=s.temperature, top_k=s.top_k or None, top_p=s.top_p,
                           guidance=s.guidance)
        return imgs[0]

    return gen, gpt.uncond_emb is not None


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m training.defaults", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=Path("samples/model"),
                   help="engine model directory whose model.json gets the defaults")
    p.add_argument("--prompts", type=int, default=48,
                   help="in-distribution validation prompts (default %(default)s)")
    p.add_argument("--repeats", type=int, default=2, help="images per prompt and setting")
    p.add_argument("--seed", type=int, default=4242, help="seed of the prompts and samples")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--dry-run", action="store_true", help="print the choice, write nothing")
    p.add_argument("--world", choices=("v1", "v2"), default="v1",
                   help="the model's world: v1 (32 px, one shape) or v2 (training/world_v2.py)")
    p.add_argument("--world-config", choices=("default", "tiny"), default="default",
                   help="world v2's configuration (tiny: the tests')")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if not (args.model / "model.json").is_file():
        raise SystemExit(f"error: {args.model}: no model.json (an engine model directory)")
    gen, has_guidance = python_generator(args.model)
    if args.world == "v2":
        from . import world_v2 as w2

        config = w2.CONFIGS[args.world_config]
        cases = v2_cases(args.prompts, args.seed, config)
        judge, examples = v2_judge(config), v2_sample_prompts(config)
    else:
        cases, judge, examples = (builtin_cases(args.prompts, args.seed), builtin_judge,
                                  builtin_sample_prompts())
    print(f"sweeping on {len(cases)} in-distribution validation prompts x {args.repeats}")
    record = sweep(gen, cases, judge, Grid(), has_guidance, args.repeats, args.seed)
    record["world"] = args.world
    print(f"chosen: {record['defaults']}  all {record['chosen']['accuracy']:.3f} "
          f"({record['seconds']:.0f} s)")
    if not args.dry_run:
        write_defaults(args.model, record["defaults"], examples, record)
        print(f"wrote {args.model / 'model.json'} and training-log/defaults-sweep.json")


if __name__ == "__main__":
    main()
