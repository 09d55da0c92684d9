"""python -m training COMMAND ...  (also under torchrun: torchrun --nproc-per-node 2 -m training)

Commands:
    world    render the built-in world to an image folder (PNG, nested, + attributes.jsonl)
    clip     train the stand-in CLIP on the built-in world
    vqgan    stage 1 on an image folder
    shards   precompute (CLIP image embedding, token grid) for an image folder
    prior    stage 2 from shards
    export   write an engine model directory from a run
    train    stage 1 + stage 2 + export on an image folder, with a given CLIP
    builtin  the built-in model from nothing (world, CLIP, VQGAN, prior, export)
    ablation short prior runs varying lambda, noise, guidance (training/ablation.py)
    eval     generate, judge and report (see training/evaluate.py)
Run `python -m training COMMAND --help` for the options.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

import torch


def _add_dataclass(p: argparse.ArgumentParser, cls, prefix: str = "") -> None:
    for f in dataclasses.fields(cls):
        flag = "--" + (prefix + f.name).replace("_", "-")
        default = f.default
        kind = type(default)
        if kind is bool:
            p.add_argument(flag, type=lambda s: s.lower() in ("1", "true", "yes", "on"),
                           default=default, metavar="BOOL")
        else:
            p.add_argument(flag, type=kind, default=default, help=f"(default {default})")


def _take(args: argparse.Namespace, cls, prefix: str = ""):
    return cls(**{f.name: getattr(args, (prefix + f.name)) for f in dataclasses.fields(cls)})


def _threads(n: int) -> None:
    """--threads 0 = auto: one thread per process under torchrun or on a busy machine (OpenMP
    threads spinning against other work is far slower than one thread), else two."""
    if n <= 0:
        busy = os.getloadavg()[0] > 1.5
        world = int(os.environ.get("WORLD_SIZE", "1"))
        n = 1 if (busy or world > 1) else min(2, os.cpu_count() or 1)
    torch.set_num_threads(n)


def main(argv: list[str] | None = None) -> int:
    from .clip_train import CLIPTrainConfig
    from .prior_train import PriorTrainConfig
    from .vqgan_train import VQGANTrainConfig

    ap = argparse.ArgumentParser(prog="python -m training", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=0, help="torch threads per process (0: auto)")
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("world", help="render the built-in world to a folder")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--n", type=int, default=16000)
    p.add_argument("--seed", type=int, default=100)
    p.add_argument("--include-held-out", action="store_true")

    p = sub.add_parser("clip", help="train the stand-in CLIP on the built-in world")
    p.add_argument("--out", type=Path, required=True)
    _add_dataclass(p, CLIPTrainConfig)

    p = sub.add_parser("vqgan", help="stage 1: VQGAN on an image folder")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--clip", type=Path, help="CLIP for the perceptual term (optional)")
    _add_dataclass(p, VQGANTrainConfig)

    p = sub.add_parser("shards", help="precompute CLIP embeddings and token grids")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="run directory (has vqgan.pt)")
    p.add_argument("--clip", type=Path, required=True)

    p = sub.add_parser("prior", help="stage 2: the conditional GPT from shards")
    p.add_argument("--out", type=Path, required=True, help="run directory (shards/, vqgan.pt)")
    p.add_argument("--clip", type=Path, required=True)
    p.add_argument("--name", default="prior")
    _add_dataclass(p, PriorTrainConfig)

    p = sub.add_parser("export", help="engine model directory from a run")
    p.add_argument("--run", type=Path, required=True)
    p.add_argument("--clip", type=Path, help="CLIP (default: the run's own stand-in)")
    p.add_argument("--prior", default="prior")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--name", default="custom")

    p = sub.add_parser("train", help="stage 1 + 2 + export on an image folder")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--clip", type=Path, required=True)
    p.add_argument("--export", type=Path)
    p.add_argument("--name", default="custom")
    _add_dataclass(p, VQGANTrainConfig, "vq_")
    _add_dataclass(p, PriorTrainConfig, "prior_")

    p = sub.add_parser("builtin", help="the built-in model from nothing")
    p.add_argument("--out", type=Path, default=Path("runs/model"))
    p.add_argument("--export", type=Path, default=Path("samples/model"))
    p.add_argument("--images", type=int, default=16000)
    _add_dataclass(p, CLIPTrainConfig, "clip_")
    _add_dataclass(p, VQGANTrainConfig, "vq_")
    _add_dataclass(p, PriorTrainConfig, "prior_")

    p = sub.add_parser("ablation", help="short priors: lambda, noise, guidance")
    from .ablation import add_arguments as ablation_arguments

    ablation_arguments(p)

    p = sub.add_parser("eval", help="generate, judge, report")
    from .evaluate import add_arguments

    add_arguments(p)

    args = ap.parse_args(argv)
    _threads(args.threads)
    from . import common, data, models, pipeline
    from .export import export_model
    from .prior_train import make_shards, train_prior
    from .vqgan_train import train_vqgan

    d = common.init_distributed()
    if args.cmd == "world":
        data.write_world_folder(args.out, args.n, args.seed, args.include_held_out)
    elif args.cmd == "clip":
        from .clip_train import train_clip

        train_clip(args.out, _take(args, CLIPTrainConfig), d)
    elif args.cmd == "vqgan":
        cfg = _take(args, VQGANTrainConfig)
        clip = pipeline.load_clip(args.clip)[0] if args.clip else None
        res = models.builtin_vqgan_config().resolution
        images, _ = pipeline.load_images(args.data, res, args.out, d)
        train_vqgan(images, args.out, cfg, d, clip=clip)
    elif args.cmd == "shards":
        clip, _ = pipeline.load_clip(args.clip)
        vq = pipeline.load_vqgan(args.out)
        images, _ = pipeline.load_images(args.data, vq.config.resolution, args.out, d)
        if d.main:
            make_shards(images, clip, vq, args.out)
    elif args.cmd == "prior":
        clip, _ = pipeline.load_clip(args.clip)
        vq = pipeline.load_vqgan(args.out)
        train_prior(args.out / "shards", args.out, _take(args, PriorTrainConfig), d, clip, vq,
                    name=args.name)
    elif args.cmd == "export":
        if d.main:
            clip_path = args.clip or args.run
            clip, _ = pipeline.load_clip(clip_path)
            export_model(args.out, clip, pipeline._tokenizer_dir(clip_path),
                         pipeline.load_prior(args.run, args.prior), pipeline.load_vqgan(args.run),
                         name=args.name)
    elif args.cmd == "train":
        pipeline.train_folder(args.data, args.out, args.clip, args.export, d,
                              _take(args, VQGANTrainConfig, "vq_"),
                              _take(args, PriorTrainConfig, "prior_"), name=args.name)
    elif args.cmd == "builtin":
        cfg = pipeline.BuiltinConfig(
            images=args.images, clip=_take(args, CLIPTrainConfig, "clip_"),
            vqgan=_take(args, VQGANTrainConfig, "vq_"),
            prior=_take(args, PriorTrainConfig, "prior_"))
        pipeline.build_builtin(args.out, args.export, cfg, d)
    elif args.cmd == "ablation":
        from .ablation import run_ablation

        if d.main:
            run_ablation(args)
    elif args.cmd == "eval":
        from .evaluate import run_eval

        if d.main:
            run_eval(args)
    if d.world > 1:
        torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
