"""The report of a folder run, on its held-out validation files (never trained on):

    RUN/recon.png       originals (top row) over the VQGAN's reconstructions (bottom row)
    RUN/samples.png     per row: a validation image, then samples conditioned on it: through
                        the engine (`clipgen generate --image`, the exported model's
                        defaults) when the run was exported and the CLI is built, else the
                        Python sampler on the same weights (guidance 2, top-k 50)
    RUN/report.json     validation PSNR and codebook usage, counts, fingerprints
    RUN/report.html     the above, linked
"""

from __future__ import annotations

import html
import json
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from . import models, sample
from .common import atomic_write_text, read_jsonl
from .data import Folder
from .vqgan_train import evaluate, to_model_range


def grid(rows: list[np.ndarray], cell: int) -> Image.Image:
    """rows of uint8 [k, R, R, 3] -> one image, each image scaled (nearest) to cell px, 2 px
    white gaps."""
    cols = max(len(r) for r in rows)
    gap = 2
    out = Image.new("RGB", (cols * (cell + gap) + gap, len(rows) * (cell + gap) + gap), "white")
    for i, r in enumerate(rows):
        for j, im in enumerate(r):
            tile = Image.fromarray(np.asarray(im)).resize((cell, cell), Image.NEAREST)
            out.paste(tile, (gap + j * (cell + gap), gap + i * (cell + gap)))
    return out


def find_cli() -> Path | None:
    """The release `clipgen` (CLIPGEN_CLI, else the repository's .build/release/clipgen)."""
    env = os.environ.get("CLIPGEN_CLI")
    here = Path(__file__).resolve().parents[1] / ".build" / "release" / "clipgen"
    for p in ([Path(env)] if env else []) + [here]:
        if p.is_file() and os.access(p, os.X_OK):
            return p
    return None


def engine_samples(cli: Path, model: Path, image: np.ndarray, samples: int,
                   seed: int) -> np.ndarray:
    """`samples` images from the engine conditioned on `image` (its CLIP image embedding),
    with the model's own defaults: uint8 [samples, R, R, 3]."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "image.png"
        Image.fromarray(image).save(src)
        out = Path(tmp) / "out"
        cmd = [str(cli), "generate", "--image", str(src), "--model", str(model), "--n",
               str(samples), "--seed", str(seed), "--out", str(out), "--quiet"]
        env = {**os.environ, "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS", "1")}
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)}: {r.stderr.strip()[-500:]}")
        files = sorted(out.glob("image-*.png"))
        return np.stack([np.asarray(Image.open(p).convert("RGB")) for p in files])


@torch.no_grad()
def write_report(run: Path, f: Folder, clip: models.CLIP, vq: models.VQGAN, gpt: models.GPT,
                 n: int = 8, samples: int = 4, seed: int = 0, export: Path | None = None,
                 cli: Path | None = None) -> Path:
    """`export` (the exported model) and `cli` (the release CLI, found when not given) make the
    sample grid come from the engine; without them it comes from the Python sampler."""
    run = Path(run)
    val = np.asarray(f.val[:n])
    cell = max(64, vq.config.resolution)
    recon = sample.to_pixels(vq.decode_indices(vq.encode(to_model_range(val))["indices"]))
    grid([val, recon], cell).save(run / "recon.png")
    cli = cli or find_cli()
    use_engine = export is not None and (Path(export) / "model.json").exists() and cli is not None
    g = torch.Generator().manual_seed(seed)
    emb = models.encode_images(clip, val)
    rows = []
    for i in range(len(val)):
        if use_engine:
            drawn = engine_samples(cli, Path(export), val[i], samples, seed + i)
        else:
            toks = sample.sample_tokens(gpt, emb[i : i + 1].expand(samples, -1), g, top_k=50,
                                        guidance=2.0 if gpt.uncond_emb is not None else 1.0)
            drawn = sample.to_pixels(vq.decode_indices(toks))
        rows.append(np.concatenate([val[i : i + 1], drawn]))
    grid(rows, cell).save(run / "samples.png")
    sampler = (f"the engine ({cli.name} generate --image, the exported model's defaults)"
               if use_engine else "the Python sampler (guidance 2, top-k 50)")
    metrics = evaluate(vq, np.asarray(f.val)) if len(f.val) else {}
    fingerprints = json.loads((run / "fingerprints.json").read_text()) \
        if (run / "fingerprints.json").exists() else {}
    prior_rows = read_jsonl(run / "prior-metrics.jsonl")
    report = {
        "validation": {"images": len(f.val), **metrics},
        "train_images": len(f.train), "resolution": vq.config.resolution,
        "tokens": vq.config.grid**2, "codes": vq.config.n_embed,
        "prior_final_nll": prior_rows[-1]["nll"] if prior_rows else None,
        "data": {"found": f.report.found, "loaded": f.report.loaded,
                 "skipped": len(f.report.skipped), "too_large": len(f.report.too_large),
                 "not_files": len(f.report.not_files)},
        "fingerprints": fingerprints,
        "samples_from": "engine" if use_engine else "python",
    }
    atomic_write_text(run / "report.json", json.dumps(report, indent=1) + "\n")
    v = report["validation"]
    rows_html = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(val_))}</td></tr>"
                        for k, val_ in (
        ("validation images (held out by file)", v["images"]),
        ("training images", report["train_images"]),
        ("reconstruction PSNR (validation)", f"{v.get('psnr_db', float('nan')):.2f} dB"),
        ("codebook usage (validation)",
         f"{v.get('codebook_usage', 0):.3f} ({v.get('codes_used', 0)} of {vq.config.n_embed})"),
        ("resolution / tokens", f"{vq.config.resolution} px / {vq.config.grid}x{vq.config.grid}"),
        ("prior final training NLL", report["prior_final_nll"]),
        ("files skipped / over the pixel limit / not files",
         f"{len(f.report.skipped)} / {len(f.report.too_large)} / {len(f.report.not_files)}"),
    ))
    page = f"""<!doctype html><meta charset="utf-8"><title>clipgen run {html.escape(run.name)}</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}td{{padding:2px 1em}}
img{{image-rendering:pixelated;max-width:100%}}</style>
<h1>Run {html.escape(str(run))}</h1>
<p>Everything below is measured on the validation files: a fixed {v['images']} of the folder's
images chosen by a hash of their path, never trained on by the VQGAN or the prior.</p>
<table>{rows_html}</table>
<h2>Originals (top) and reconstructions (bottom)</h2><p><a href="recon.png"><img src="recon.png"
alt="originals over reconstructions"></a></p>
<h2>Samples conditioned on each validation image's CLIP embedding</h2>
<p>First column: the image; then {samples} samples from {html.escape(sampler)}.</p>
<p><a href="samples.png"><img src="samples.png" alt="samples"></a></p>
<p><a href="report.json">report.json</a> · <a href="data-report.json">data-report.json</a> ·
<a href="fingerprints.json">fingerprints.json</a> · <a href="vqgan-metrics.jsonl">vqgan
curves</a> · <a href="prior-metrics.jsonl">prior curves</a></p>
"""
    atomic_write_text(run / "report.html", page)
    return run / "report.html"
