"""Times the PyTorch VQGAN decode (and optionally encode) at the paper's f16 shape.

    python -m tools.bench_vqgan [--threads 2] [--reps 5] [--weights DIR] [--encode]

The model is reference.vqgan at f16_16384 sizes (256x256 image, 16x16 grid, ch 128,
ch_mult 1,1,2,2,4, 2 res blocks, attention at 16; ~253 GFLOP per decode) with PyTorch's
default random initialisation (seed 0). With --weights DIR, the weights, config.json and the
timed token grid (tokens.json) are written there (or read back when present), so the Swift
engine can time exactly the same network: VQGAN.load(directory: DIR).

Prints one JSON line: {"vqgan_decode_torch": median seconds, "runs": [...], ...}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from reference.vqgan import VQGAN, f16_16384


def build(weights: Path | None) -> VQGAN:
    cfg = f16_16384()
    torch.manual_seed(0)
    model = VQGAN(cfg).eval()
    if weights is None:
        return model
    weights.mkdir(parents=True, exist_ok=True)
    path = weights / "model.safetensors"
    if path.exists():
        model.load_state_dict(load_file(str(path)))
    else:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
        (weights / "config.json").write_text(json.dumps(cfg.to_json(), indent=2))
    return model


def timed(fn, reps: int) -> list[float]:
    fn()  # warm-up (allocator, oneDNN primitive caches)
    runs = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t)
    return runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument(
        "--weights", type=Path, default=None, help="directory to write/read the weights"
    )
    ap.add_argument(
        "--encode", action="store_true", help="also time encode of a 256x256 image"
    )
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    model = build(args.weights)
    cfg = model.config
    grid = cfg.grid
    tokens = torch.randint(
        0, cfg.n_embed, (1, grid * grid), generator=torch.Generator().manual_seed(1)
    )
    if args.weights is not None:
        (args.weights / "tokens.json").write_text(json.dumps(tokens[0].tolist()))

    result: dict = {"threads": args.threads, "config": cfg.to_json()}
    with torch.inference_mode():
        runs = timed(lambda: model.decode_indices(tokens), args.reps)
        result["vqgan_decode_torch"] = statistics.median(runs)
        result["runs"] = [round(r, 4) for r in runs]
        if args.encode:
            image = (
                torch.rand(1, cfg.in_channels, cfg.resolution, cfg.resolution) * 2 - 1
            )
            enc = timed(lambda: model.encode(image), args.reps)
            result["vqgan_encode_torch"] = statistics.median(enc)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
