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
Run `python -m training COMMAND --help` for the options. From another directory than the
repository root: PYTHONPATH=/path/to/clipgen python -m training ...
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Literal, get_args, get_origin, get_type_hints

import torch

if TYPE_CHECKING:
    from .common import Dist

CLIP_HELP = {
    "steps": "optimisation steps", "batch": "pairs per step (global)",
    "pool": "world images drawn from per step", "lr": "peak learning rate",
    "checkpoint_every": "steps between checkpoints", "seed": "random seed",
}


def _add_dataclass(p: argparse.ArgumentParser, cls, prefix: str = "",
                   helps: dict | None = None) -> None:
    """One option per field of the dataclass `cls` (--PREFIX-NAME, typed as its default); a
    field typed as a Literal takes only those values."""
    helps = helps or {}
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        flag = "--" + (prefix + f.name).replace("_", "-")
        default = f.default
        kind = type(default)
        text = helps.get(f.name, f.name.replace("_", " "))
        if kind is bool:
            p.add_argument(flag, type=lambda s: s.lower() in ("1", "true", "yes", "on"),
                           default=default, metavar="BOOL", help=f"{text} (default {default})")
        elif get_origin(hints[f.name]) is Literal:
            p.add_argument(flag, type=kind, choices=get_args(hints[f.name]), default=default,
                           help=f"{text} (default {default})")
        else:
            p.add_argument(flag, type=kind, default=default, help=f"{text} (default {default})")


def _add_data(p: argparse.ArgumentParser, sizes: bool = True) -> None:
    """The folder and how it is decoded (all part of the data set's fingerprint)."""
    from .data import DEFAULT_MAX_PIXELS, VAL_FRACTION
    from .models import SIZES

    p.add_argument("--data", type=Path, required=True,
                   help="folder of images (searched recursively; any format Pillow reads)")
    if sizes:
        p.add_argument("--size", choices=list(SIZES), default="builtin",
                       help="model sizes: " + "; ".join(f"{k}: {v.note}"
                                                        for k, v in SIZES.items()))
        p.add_argument("--resolution", type=int, default=0,
                       help="image size in pixels (default: the size's own: tiny/builtin 32, "
                            "laptop 64, gpt2_medium 256)")
    p.add_argument("--alpha-background", default="white",
                   help="colour transparent pixels are flattened onto: white, black, #rrggbb "
                        "(default white, as the engine does)")
    p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                   help="images with more pixels are skipped and listed in data-report.json "
                        "(0: no limit; default Pillow's decompression-bomb limit)")
    p.add_argument("--max-images", type=int, default=0,
                   help="use at most this many images (a fixed subset; 0: all)")
    p.add_argument("--val-fraction", type=float, default=VAL_FRACTION,
                   help="fraction of files held out for validation, chosen by a hash of "
                        "their path (default %(default)s)")


def _decode_options(args, resolution: int):
    from .data import DecodeOptions, parse_color

    return DecodeOptions(resolution, parse_color(args.alpha_background), args.max_pixels,
                         args.val_fraction, args.max_images)


def _resolution(args) -> int:
    from .common import UserError
    from .models import size_preset

    preset = size_preset(args.size)
    r = args.resolution or preset.resolution
    try:
        preset.vqgan_config(r)
    except ValueError as e:
        raise UserError(str(e)) from None
    return r


def _run_size(out: Path, size: str | None) -> str:
    """--size, else the one the run was started with (RUN/run.json), else builtin."""
    path = Path(out) / "run.json"
    if size:
        return size
    if path.exists():
        return json.loads(path.read_text()).get("size", "builtin")
    return "builtin"


def _user_error(msg: str) -> Exception:
    from .common import UserError

    return UserError(msg)


def _remember_size(out: Path, size: str) -> None:
    from .common import atomic_write_text

    atomic_write_text(Path(out) / "run.json", json.dumps({"size": size}) + "\n")


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
    """Runs a command; a user error prints one line (status 2), Ctrl-C says where it stopped
    and how to resume (status 130)."""
    from .common import UserError, interrupted_message

    argv = sys.argv[1:] if argv is None else argv
    try:
        return _main(argv)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\n" + interrupted_message(shlex.join(["python", "-m", "training", *argv])),
              file=sys.stderr)
        return 130


RUN_HELP = "run directory: checkpoints, caches, metrics, report (started again: resumes)"
CLIP_PATH_HELP = ("CLIP: an engine model directory, a Hugging Face CLIP directory or a "
                  "stand-in CLIP run")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m training", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=0, help="torch threads per process (0: auto)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name, (help_text, add_arguments, _run) in COMMANDS.items():
        add_arguments(sub.add_parser(name, help=help_text))
    return ap


# -- each command's arguments -----------------------------------------------------------------


def _world_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, required=True, help="folder to write the PNGs to")
    p.add_argument("--n", type=int, default=16000, help="number of images (default %(default)s)")
    p.add_argument("--seed", type=int, default=100, help="random seed (default %(default)s)")
    p.add_argument("--include-held-out", action="store_true",
                   help="also draw the held-out shape x colour pairs")


def _clip_arguments(p: argparse.ArgumentParser) -> None:
    from .clip_train import CLIPTrainConfig

    p.add_argument("--out", type=Path, required=True, help=RUN_HELP)
    _add_dataclass(p, CLIPTrainConfig, helps=CLIP_HELP)


def _vqgan_arguments(p: argparse.ArgumentParser) -> None:
    from .vqgan_train import HELP as VQ_HELP
    from .vqgan_train import VQGANTrainConfig

    _add_data(p)
    p.add_argument("--out", type=Path, required=True, help=RUN_HELP)
    p.add_argument("--clip", type=Path,
                   help=CLIP_PATH_HELP + " (for the perceptual term; optional)")
    _add_dataclass(p, VQGANTrainConfig, helps=VQ_HELP)


def _shards_arguments(p: argparse.ArgumentParser) -> None:
    _add_data(p, sizes=False)
    p.add_argument("--out", type=Path, required=True, help="run directory (has vqgan.pt)")
    p.add_argument("--clip", type=Path, required=True, help=CLIP_PATH_HELP)


def _prior_arguments(p: argparse.ArgumentParser) -> None:
    from .models import SIZES
    from .prior_train import HELP as PRIOR_HELP
    from .prior_train import PriorTrainConfig

    p.add_argument("--out", type=Path, required=True, help="run directory (shards/, vqgan.pt)")
    p.add_argument("--clip", type=Path, required=True, help=CLIP_PATH_HELP)
    p.add_argument("--name", default="prior", help="checkpoint name (default %(default)s)")
    p.add_argument("--size", choices=list(SIZES), default=None,
                   help="prior size (default: the run's --size)")
    _add_dataclass(p, PriorTrainConfig, helps=PRIOR_HELP)


def _export_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", type=Path, required=True, help="run directory")
    p.add_argument("--clip", type=Path,
                   help=CLIP_PATH_HELP + " (default: the run's own stand-in)")
    p.add_argument("--prior", default="prior", help="prior checkpoint name (default prior)")
    p.add_argument("--out", type=Path, required=True, help="model directory to write")
    p.add_argument("--name", default="custom", help="model name in model.json")


def _train_arguments(p: argparse.ArgumentParser) -> None:
    from .prior_train import HELP as PRIOR_HELP
    from .prior_train import PriorTrainConfig
    from .vqgan_train import HELP as VQ_HELP
    from .vqgan_train import VQGANTrainConfig

    _add_data(p)
    p.add_argument("--out", type=Path, required=True, help=RUN_HELP)
    p.add_argument("--clip", type=Path, required=True, help=CLIP_PATH_HELP)
    p.add_argument("--export", type=Path, help="model directory to write at the end")
    p.add_argument("--name", default="custom", help="model name in model.json")
    p.add_argument("--no-report", action="store_true",
                   help="skip the report (grids on the validation files, report.html)")
    _add_dataclass(p, VQGANTrainConfig, "vq_", VQ_HELP)
    _add_dataclass(p, PriorTrainConfig, "prior_", PRIOR_HELP)


def _builtin_arguments(p: argparse.ArgumentParser) -> None:
    from .clip_train import CLIPTrainConfig
    from .prior_train import HELP as PRIOR_HELP
    from .prior_train import PriorTrainConfig
    from .vqgan_train import HELP as VQ_HELP
    from .vqgan_train import VQGANTrainConfig

    p.add_argument("--out", type=Path, default=Path("runs/model"), help=RUN_HELP)
    p.add_argument("--export", type=Path, default=Path("samples/model"),
                   help="model directory to write (default %(default)s)")
    p.add_argument("--images", type=int, default=16000,
                   help="world images rendered (default %(default)s)")
    _add_dataclass(p, CLIPTrainConfig, "clip_", CLIP_HELP)
    _add_dataclass(p, VQGANTrainConfig, "vq_", VQ_HELP)
    _add_dataclass(p, PriorTrainConfig, "prior_", PRIOR_HELP)


def _ablation_arguments(p: argparse.ArgumentParser) -> None:
    from .ablation import add_arguments

    add_arguments(p)


def _eval_arguments(p: argparse.ArgumentParser) -> None:
    from .evaluate import add_arguments

    add_arguments(p)


# -- each command's run -----------------------------------------------------------------------


def _run_world(args: argparse.Namespace, d: Dist) -> None:
    from . import data

    data.write_world_folder(args.out, args.n, args.seed, args.include_held_out)


def _run_clip(args: argparse.Namespace, d: Dist) -> None:
    from .clip_train import CLIPTrainConfig, train_clip

    train_clip(args.out, _take(args, CLIPTrainConfig), d)


def _run_vqgan(args: argparse.Namespace, d: Dist) -> None:
    from . import models, pipeline
    from .vqgan_train import VQGANTrainConfig

    cfg = _take(args, VQGANTrainConfig)
    res = _resolution(args)
    clip = pipeline.load_clip(args.clip)[0] if args.clip else None
    f = pipeline.load_data(args.data, args.out, _decode_options(args, res), d)
    if d.main:
        _remember_size(args.out, args.size)
    pipeline.stage_vqgan(f, args.out, cfg, d, models.size_preset(args.size).vqgan_config(res),
                         clip)


def _run_shards(args: argparse.Namespace, d: Dist) -> None:
    from . import pipeline

    clip, _ = pipeline.load_clip(args.clip)
    vq = pipeline.load_vqgan(args.out)
    f = pipeline.load_data(args.data, args.out, _decode_options(args, vq.config.resolution), d)
    pipeline.stage_shards(f, clip, vq, args.out, d)


def _run_prior(args: argparse.Namespace, d: Dist) -> None:
    from . import pipeline
    from .prior_train import PriorTrainConfig

    clip, _ = pipeline.load_clip(args.clip)
    vq = pipeline.load_vqgan(args.out)
    if not (args.out / "shards" / "index.json").exists():
        raise _user_error(f"{args.out}/shards: no shards; run the shards stage first")
    pipeline.stage_prior(args.out, _take(args, PriorTrainConfig), d, clip, vq,
                         _run_size(args.out, args.size), name=args.name)


def _run_export(args: argparse.Namespace, d: Dist) -> None:
    from . import pipeline

    if d.main:
        clip_path = args.clip or args.run
        clip, _ = pipeline.load_clip(clip_path)
        pipeline.export_run(args.run, args.out, clip, pipeline._tokenizer_dir(clip_path),
                            pipeline.load_prior(args.run, args.prior),
                            pipeline.load_vqgan(args.run), name=args.name, prior=args.prior)


def _run_train(args: argparse.Namespace, d: Dist) -> None:
    from . import pipeline
    from .prior_train import PriorTrainConfig
    from .vqgan_train import VQGANTrainConfig

    res = _resolution(args)
    if d.main:
        args.out.mkdir(parents=True, exist_ok=True)
        _remember_size(args.out, args.size)
    pipeline.train_folder(args.data, args.out, args.clip, args.export, d,
                          _take(args, VQGANTrainConfig, "vq_"),
                          _take(args, PriorTrainConfig, "prior_"), size=args.size,
                          opts=_decode_options(args, res), name=args.name,
                          report=not args.no_report)


def _run_builtin(args: argparse.Namespace, d: Dist) -> None:
    from . import pipeline
    from .clip_train import CLIPTrainConfig
    from .prior_train import PriorTrainConfig
    from .vqgan_train import VQGANTrainConfig

    cfg = pipeline.BuiltinConfig(
        images=args.images, clip=_take(args, CLIPTrainConfig, "clip_"),
        vqgan=_take(args, VQGANTrainConfig, "vq_"),
        prior=_take(args, PriorTrainConfig, "prior_"))
    pipeline.build_builtin(args.out, args.export, cfg, d)


def _run_ablation(args: argparse.Namespace, d: Dist) -> None:
    from .ablation import run_ablation

    if d.main:
        run_ablation(args)


def _run_eval(args: argparse.Namespace, d: Dist) -> None:
    from .evaluate import run_eval

    if d.main:
        run_eval(args)


# name: (help, add_arguments(parser), run(args, dist)), in the order `--help` lists them
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None],
                          Callable[[argparse.Namespace, Dist], None]]] = {
    "world": ("render the built-in world to a folder", _world_arguments, _run_world),
    "clip": ("train the stand-in CLIP on the built-in world", _clip_arguments, _run_clip),
    "vqgan": ("stage 1: VQGAN on an image folder", _vqgan_arguments, _run_vqgan),
    "shards": ("precompute CLIP embeddings and token grids", _shards_arguments, _run_shards),
    "prior": ("stage 2: the conditional GPT from shards", _prior_arguments, _run_prior),
    "export": ("engine model directory from a run", _export_arguments, _run_export),
    "train": ("stage 1 + 2 + export on an image folder", _train_arguments, _run_train),
    "builtin": ("the built-in model from nothing", _builtin_arguments, _run_builtin),
    "ablation": ("short priors: lambda, noise, guidance", _ablation_arguments, _run_ablation),
    "eval": ("generate, judge, report", _eval_arguments, _run_eval),
}


def _main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    for name in ("data", "clip"):  # user errors before anything is loaded or trained
        path = getattr(args, name, None)
        if path is not None and not Path(path).exists():
            raise _user_error(f"--{name} {path} does not exist")
    _threads(args.threads)
    from . import common

    d = common.init_distributed()
    COMMANDS[args.cmd][2](args, d)
    if d.world > 1:
        torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
