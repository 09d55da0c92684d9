"""Evaluation of a world-v2 model like the paper's: through the Swift CLI with the model's own
defaults, judged by judge_v2 (geometric, independent of CLIP).

    python -m training.evaluate_v2 --model samples/model-v2 --out runs/eval-v2

Prompts: world_v2.evaluation_prompts of both splits (single objects, pairs, styles,
backgrounds; held-out shape x colour, shape x style and shape pairs). Each prompt is one CLI
call of `--n-in` / `--n-held` images (start-up and model load included in
`seconds_per_image`). report.json (DESIGN section 5) keeps the generation-1 keys for single
objects and adds:
    accuracy.in_distribution / held_out      single objects, per attribute + "all"
    accuracy.pairs.{in_distribution,held_out} both objects and the relation ("all")
    accuracy.style / accuracy.background     style and background prompts (in-distribution;
                                             held-out style prompts under accuracy.style_held_out)
    clip_score.{split}     mean cosine of the generated image and its prompt in the stand-in
                           CLIP (the paper's CapS analogue)
    fd_clip.{split}        Frechet distance between the stand-in CLIP image features of the
                           generated images and of rendered ground truth of the same prompts
    vqgan                  PSNR and codebook usage on rendered generator images
    clip                   zero-shot caption top-1 (single objects), pair retrieval, binding
    settings.source        "model defaults" unless a setting is given here
plus report.html with the accuracy tables and the image grids.
"""

from __future__ import annotations

import argparse
import html
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import judge_v2, models
from . import world_v2 as w2
from .clip_train import clip_metrics_v2
from .common import read_jsonl
from .evaluate import SETTINGS, _grid, _png_b64, _svg_curve, generate_cli, resolve_settings
from .export import load_model_dir
from .vqgan_train import evaluate as vq_evaluate

KINDS = ("single", "pair", "style", "background")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, default=Path("samples/model-v2"))
    p.add_argument("--out", type=Path, default=Path("runs/eval-v2"))
    p.add_argument("--cli", type=Path, default=Path(".build/release/clipgen"))
    p.add_argument("--world", choices=("default", "tiny"), default="default",
                   help="the world v2 configuration the model was trained on")
    p.add_argument("--n-in", type=int, default=1, help="images per in-distribution prompt")
    p.add_argument("--n-held", type=int, default=2, help="images per held-out prompt")
    p.add_argument("--candidates", type=int, default=None,
                   help="candidates per kept image (default: the model's)")
    p.add_argument("--temperature", type=float, default=None, help="default: the model's")
    p.add_argument("--top-k", type=int, default=None, help="0: all; default: the model's")
    p.add_argument("--top-p", type=float, default=None, help="default: the model's")
    p.add_argument("--guidance", type=float, default=None, help="default: the model's")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--truth", type=int, default=4,
                   help="rendered ground-truth images per prompt for the Frechet distance")
    p.add_argument("--vq-images", type=int, default=1000)
    p.add_argument("--clip-images", type=int, default=600)
    p.add_argument("--max-prompts", type=int, default=0,
                   help="at most N prompts of each kind and split (a quick look; 0: all)")
    p.add_argument("--run", type=Path, default=None,
                   help="training run with the metric logs (default: the model's training-log/)")


# -- metrics ----------------------------------------------------------------------------------


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to feature sets a [N, E] and b [M, E]:
    |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a^1/2 S_b S_a^1/2)^1/2), with symmetric square
    roots by eigendecomposition (no scipy)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    mu = ((a.mean(0) - b.mean(0)) ** 2).sum()
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)

    def sqrt_psd(m: np.ndarray) -> np.ndarray:
        w, v = np.linalg.eigh((m + m.T) / 2)
        return (v * np.sqrt(np.clip(w, 0, None))) @ v.T

    ra = sqrt_psd(sa)
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(ra @ sb @ ra), 0, None)).sum()
    return float(mu + np.trace(sa) + np.trace(sb) - 2 * cross)


def summarize(rows: list[dict]) -> dict:
    """Per-attribute accuracy over rows (each with "ok": {attribute: bool, "all": bool}),
    plus n; an attribute counts over the rows that ask for it."""
    out: dict = {}
    keys = sorted({k for r in rows for k in r["ok"]} - {"all"}) + ["all"]
    for k in keys:
        vals = [r["ok"][k] for r in rows if k in r["ok"]]
        out[k] = sum(vals) / len(vals) if vals else float("nan")
    out["n"] = len(rows)
    return out


def select(rows: list[dict], split: str, kind: str) -> list[dict]:
    return [r for r in rows if r["split"] == split and r["kind"] == kind]


# -- the run ----------------------------------------------------------------------------------


def prompts_of(split: str, config: w2.WorldConfig, limit: int) -> list[w2.EvalPrompt]:
    ps = w2.evaluation_prompts(split, config)
    if not limit:
        return ps
    out, count = [], dict.fromkeys(KINDS, 0)
    for p in ps:
        if count[p.kind] < limit:
            out.append(p)
            count[p.kind] += 1
    return out


@dataclass
class Generated:
    """What the CLI drew for every prompt: judged rows, the CLIP features of the images and
    of rendered ground truth per split, and the generation time."""

    rows: list[dict] = field(default_factory=list)
    features: dict[str, list] = field(default_factory=lambda: {"in_distribution": [],
                                                               "held_out": []})
    truth: dict[str, list] = field(default_factory=lambda: {"in_distribution": [],
                                                            "held_out": []})
    images: int = 0
    seconds: float = 0.0


@torch.no_grad()
def generate_and_judge(args, config: w2.WorldConfig, clip, tok, overrides: dict,
                       out: Path) -> Generated:
    """Every evaluation prompt of both splits through the CLI, each image judged and
    CLIP-scored."""
    g = Generated()
    for split in ("in_distribution", "held_out"):
        n = args.n_in if split == "in_distribution" else args.n_held
        for i, p in enumerate(prompts_of(split, config, args.max_prompts)):
            t = time.time()
            imgs, scores = generate_cli(args.cli, args.model, p.text, n, overrides,
                                        out / "images" / split / f"{i:03d}", args.seed + i)
            g.seconds += time.time() - t
            g.images += len(imgs)
            e = models.encode_images(clip, np.stack(imgs))
            text = models.encode_texts(clip, tok, [p.text])
            g.features[split].append(e.numpy())
            gt = w2.render_many([p.scene] * args.truth, 9000 + i, config)
            g.truth[split].append(models.encode_images(clip, gt).numpy())
            for img, cos, sc in zip(imgs, (e @ text.t()).flatten().tolist(), scores,
                                    strict=True):
                verdict = judge_v2.judge(img, config)
                g.rows.append({"split": split, "kind": p.kind, "prompt": p.text,
                               "held_out": list(p.held_out), "want": p.attributes(),
                               "got": verdict.attributes(),
                               "ok": judge_v2.score(img, p.attributes(), config),
                               "clip_score": cos, "cli_clip_score": sc,
                               "image": _png_b64(img)})
    return g


@torch.no_grad()
def run_eval(args) -> dict:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    config = w2.CONFIGS[args.world]
    if not Path(args.cli).exists():
        raise FileNotFoundError(f"{args.cli} is missing: run `make build`")
    clip, tok, _gpt, vq = load_model_dir(args.model)
    settings, overrides, source = resolve_settings(args)
    g = generate_and_judge(args, config, clip, tok, overrides, out)
    rows, features, truth, images, t_gen = g.rows, g.features, g.truth, g.images, g.seconds

    def split_rows(split: str) -> list[dict]:
        return [r for r in rows if r["split"] == split]

    accuracy = {
        "in_distribution": summarize(select(rows, "in_distribution", "single")),
        "held_out": summarize(select(rows, "held_out", "single")),
        "pairs": {s: summarize(select(rows, s, "pair")) for s in ("in_distribution", "held_out")},
        "style": summarize(select(rows, "in_distribution", "style")),
        "style_held_out": summarize(select(rows, "held_out", "style")),
        "background": summarize(select(rows, "in_distribution", "background")),
    }
    clip_score = {s: float(np.mean([r["clip_score"] for r in split_rows(s)]))
                  for s in ("in_distribution", "held_out")}
    fd = {s: frechet_distance(np.concatenate(features[s]), np.concatenate(truth[s]))
          for s in ("in_distribution", "held_out")}

    vq_scenes = w2.sample_scenes(args.vq_images, 777, config)
    vq_stats = vq_evaluate(vq, w2.render_many(vq_scenes, 777, config))
    clip_stats = clip_metrics_v2(clip, tok, config, args.clip_images, seed=778)
    report = {
        "accuracy": accuracy,
        "clip_score": clip_score,
        "fd_clip": fd,
        "vqgan": {"psnr_db": vq_stats["psnr_db"], "codebook_usage": vq_stats["codebook_usage"]},
        "clip": {"zero_shot_caption_top1": clip_stats["zero_shot_top1"],
                 "zero_shot_attributes": clip_stats["zero_shot_attributes"],
                 "pair_retrieval_top1": clip_stats["pair_retrieval_top1"],
                 "binding_accuracy": clip_stats["binding_accuracy"]},
        "settings": {"sampler": "cli", "cli": str(args.cli), "model": str(args.model),
                     "world": args.world, "n_in": args.n_in, "n_held": args.n_held,
                     "source": source, **{k: settings[k] for k in SETTINGS},
                     "held_out": {"colors": [list(x) for x in config.held_out_colors],
                                  "styles": [list(x) for x in config.held_out_styles],
                                  "pairs": [list(x) for x in config.held_out_pairs]}},
        # wall time per kept image, one CLI call per prompt (start-up and model load included)
        "seconds_per_image": t_gen / max(images, 1),
        "images": images,
        "by_kind": {s: {k: summarize(select(rows, s, k)) for k in KINDS}
                    for s in ("in_distribution", "held_out")},
        "held_out_by_reason": {reason: summarize([r for r in split_rows("held_out")
                                                  if reason in r["held_out"]])
                               for reason in ("color", "style", "pair")},
        "seconds": time.time() - t0,
    }
    run = Path(args.run) if args.run else Path(args.model) / "training-log"
    timings = run / "timings.json"
    if timings.exists():
        report["training_seconds"] = json.loads(timings.read_text())
    (out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / "report.html").write_text(render_html(report, rows, run))
    print(json.dumps({k: report[k] for k in ("clip_score", "fd_clip", "vqgan", "clip",
                                             "seconds_per_image")}, indent=1))
    return report


# -- HTML -------------------------------------------------------------------------------------


def _table(groups: dict[str, dict]) -> str:
    cols = sorted({k for g in groups.values() for k in g} - {"all", "n"}) + ["all", "n"]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = ""
    for name, g in groups.items():
        cells = "".join(
            f"<td>{g[c]:.3f}</td>" if c != "n" and c in g and g[c] == g[c]
            else f"<td>{g.get(c, '')}</td>" if c == "n" else "<td></td>" for c in cols)
        body += f"<tr><th>{html.escape(name)}</th>{cells}</tr>"
    return f"<table><tr><th></th>{head}</tr>{body}</table>"


def render_html(report: dict, rows: list[dict], run: Path) -> str:
    a = report["accuracy"]
    groups = {"single, in-distribution": a["in_distribution"], "single, held-out": a["held_out"],
              "pairs, in-distribution": a["pairs"]["in_distribution"],
              "pairs, held-out": a["pairs"]["held_out"], "style": a["style"],
              "style, held-out": a["style_held_out"], "background": a["background"]}
    parts = [
        "<!doctype html><meta charset=utf-8><title>clipgen eval (world v2)</title><style>",
        "body{font:14px system-ui;margin:24px;max-width:1300px}table{border-collapse:collapse}",
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}",
        ".grid{display:grid;gap:4px}.cell{font-size:9px;text-align:center}",
        ".cell img{width:80px;height:80px;image-rendering:pixelated;border:3px solid #16a34a}",
        ".cell.bad img{border-color:#dc2626}figure{display:inline-block;margin:4px}",
        "</style><h1>clipgen built-in model (world v2): evaluation</h1>",
        (f"<p>Through the CLI; settings: <code>{html.escape(json.dumps(report['settings']))}"
        f"</code>; {report['seconds_per_image']:.2f} s per image.</p>"),
        "<h2>Accuracy (judge v2)</h2>", _table(groups),
        "<h3>Held-out, by reason</h3>", _table(report["held_out_by_reason"]),
        "<h2>CLIP score and Frechet distance (stand-in CLIP features)</h2><table>"
        "<tr><th></th><th>clip score</th><th>FD</th></tr>"
        + "".join(f"<tr><th>{s}</th><td>{report['clip_score'][s]:.4f}</td>"
                  f"<td>{report['fd_clip'][s]:.4f}</td></tr>"
                  for s in ("in_distribution", "held_out")) + "</table>",
        (f"<p>VQGAN PSNR {report['vqgan']['psnr_db']:.2f} dB, codebook usage "
        f"{report['vqgan']['codebook_usage']:.3f}. Stand-in CLIP: zero-shot caption top-1 "
        f"{report['clip']['zero_shot_caption_top1']:.3f}, pair retrieval top-1 "
        f"{report['clip']['pair_retrieval_top1']:.3f}, binding "
        f"{report['clip']['binding_accuracy']:.3f}.</p>"),
        "<h2>Training curves</h2>",
    ]
    for f, keys in (("clip-metrics.jsonl", ("loss",)), ("vqgan-metrics.jsonl", ("l1", "l2")),
                    ("prior-metrics.jsonl", ("nll", "l_emb"))):
        data = read_jsonl(run / f)
        parts += [_svg_curve(data, k, f"{f.split('-')[0]} {k}") for k in keys]
    for split, title in (("held_out", "Held-out prompts (never in the generator's images)"),
                         ("in_distribution", "In-distribution prompts")):
        for kind in KINDS:
            sel = select(rows, split, kind)
            if sel:
                parts.append(f"<h2>{title}: {kind}</h2>")
                parts.append(_grid(sel, 10))
    parts.append("<p>Green border: the judge finds every attribute the prompt asks for; red: "
                 "at least one wrong. Hover an image for the judge's reading.</p>")
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m training.evaluate_v2", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    run_eval(args)


if __name__ == "__main__":
    main()
