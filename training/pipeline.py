"""Stages glued together: a user's folder (stage 1 + 2 + export with a given CLIP) and the
built-in model (world -> CLIP -> VQGAN -> shards -> prior -> export).

Every stage writes its checkpoint into the run directory and is skipped or resumed when the
run is started again, so an interrupted `make model` continues where it stopped.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file

from . import data, models
from .clip_train import CLIPTrainConfig, train_clip
from .common import Dist, load_checkpoint, log
from .export import export_model
from .prior_train import PriorTrainConfig, make_shards, train_prior
from .reference import clip as ref_clip
from .reference.gpt import GPTConfig
from .reference.vqgan import VQGANConfig
from .vqgan_train import VQGANTrainConfig, train_vqgan


@dataclass
class BuiltinConfig:
    images: int = 16000  # world images rendered for the generator (held-out pairs excluded)
    seed: int = 0
    clip: CLIPTrainConfig = field(default_factory=CLIPTrainConfig)
    vqgan: VQGANTrainConfig = field(default_factory=VQGANTrainConfig)
    prior: PriorTrainConfig = field(default_factory=PriorTrainConfig)


def load_clip(path: Path) -> tuple[models.CLIP, models.Tokenizer]:
    """A CLIP + tokenizer from an engine model directory (clip/, tokenizer/), a Hugging Face
    CLIP directory (config.json, model.safetensors, vocab.json, merges.txt) or a stand-in
    training run (clip.pt + tokenizer/)."""
    path = Path(path)
    if (path / "model.json").exists():
        m = json.loads((path / "model.json").read_text())
        cfg = json.loads((path / m["clip"]["config"]).read_text())
        sd = {k: v.float() for k, v in load_file(str(path / m["clip"]["weights"])).items()}
        clip = (ref_clip.load_hf(sd, cfg) if m["clip"].get("layout", "hf") == "hf"
                else ref_clip.load_openai(sd))
        return clip, models.Tokenizer.from_dir((path / m["tokenizer"]["vocab"]).parent)
    if (path / "config.json").exists() and (path / "model.safetensors").exists():
        cfg = json.loads((path / "config.json").read_text())
        sd = {k: v.float() for k, v in load_file(str(path / "model.safetensors")).items()}
        sd = {k: v for k, v in sd.items() if not k.endswith("position_ids")}
        return ref_clip.load_hf(sd, cfg), models.Tokenizer.from_dir(path)
    if (path / "clip.pt").exists():
        ck = load_checkpoint(path / "clip.pt")
        clip = models.CLIP(models.CLIPConfig(**ck["config"]))
        clip.load_state_dict(ck["model"])
        return clip.eval(), models.Tokenizer.from_dir(path / "tokenizer")
    raise FileNotFoundError(f"{path}: no CLIP found (model.json, config.json or clip.pt)")


def load_vqgan(run: Path) -> models.VQGAN:
    ck = load_checkpoint(Path(run) / "vqgan.pt")
    if ck is None:
        raise FileNotFoundError(f"{run}/vqgan.pt: no VQGAN checkpoint")
    vq = models.VQGAN(VQGANConfig.from_json(ck["config"]))
    vq.load_state_dict(ck["model"])
    return vq.eval()


def load_prior(run: Path, name: str = "prior") -> models.GPT:
    ck = load_checkpoint(Path(run) / f"{name}.pt")
    if ck is None:
        raise FileNotFoundError(f"{run}/{name}.pt: no prior checkpoint")
    cfg = GPTConfig.from_json(ck["config"])
    cfg.dropout = 0.0
    gpt = models.GPT(cfg)
    gpt.load_state_dict(ck["model"])
    return gpt.eval()


def load_images(folder: Path, resolution: int, run: Path, d: Dist):
    """Rank 0 decodes the folder (and caches it in the run), the others read the cache."""
    if d.main:
        images, report = data.load_folder(folder, resolution, cache=Path(run) / "cache")
        log(report.summary())
        (Path(run) / "data-report.json").write_text(json.dumps(asdict(report), indent=1) + "\n")
    d.barrier()
    if not d.main:
        images, report = data.load_folder(folder, resolution, cache=Path(run) / "cache",
                                          show_progress=False)
    return images, report


def train_folder(folder: Path, run: Path, clip_path: Path, export: Path | None, d: Dist,
                 vq_cfg: VQGANTrainConfig, prior_cfg: PriorTrainConfig,
                 vq_model: VQGANConfig | None = None, gpt_model: GPTConfig | None = None,
                 name: str = "custom") -> None:
    """Stage 1 + stage 2 (+ export) on any image folder, with a given CLIP."""
    run = Path(run)
    clip, _ = load_clip(clip_path)
    vq_model = vq_model or models.builtin_vqgan_config()
    images, _ = load_images(folder, vq_model.resolution, run, d)
    vq = train_vqgan(images, run, vq_cfg, d, vq_model, clip=clip)
    if d.main:
        make_shards(images, clip, vq, run)
    d.barrier()
    gpt = train_prior(run / "shards", run, prior_cfg, d, clip, vq, gpt_model)
    if export is not None and d.main:
        tok_dir = _tokenizer_dir(clip_path)
        export_model(export, clip, tok_dir, gpt, vq, name=name)
        log(f"exported to {export}")


def _tokenizer_dir(clip_path: Path) -> Path:
    p = Path(clip_path)
    if (p / "model.json").exists():
        m = json.loads((p / "model.json").read_text())
        return (p / m["tokenizer"]["vocab"]).parent
    if (p / "tokenizer").is_dir():
        return p / "tokenizer"
    return p


def build_builtin(run: Path, export: Path | None, cfg: BuiltinConfig, d: Dist) -> dict:
    """The built-in model, from nothing. Returns timings per stage."""
    run = Path(run)
    run.mkdir(parents=True, exist_ok=True)
    times: dict[str, float] = {}
    t_start = time.time()
    t = time.time()
    folder = run / "world"
    if d.main and not (folder / "attributes.jsonl").exists():
        data.write_world_folder(folder, cfg.images, cfg.seed + 100)
    d.barrier()
    times["world"] = time.time() - t

    t = time.time()
    clip, _tok = train_clip(run, cfg.clip, d)
    times["clip"] = time.time() - t

    t = time.time()
    images, _ = load_images(folder, models.builtin_vqgan_config().resolution, run, d)
    times["load"] = time.time() - t
    t = time.time()
    vq = train_vqgan(images, run, cfg.vqgan, d, clip=clip)
    times["vqgan"] = time.time() - t

    t = time.time()
    if d.main:
        make_shards(images, clip, vq, run)
    d.barrier()
    times["shards"] = time.time() - t

    t = time.time()
    gpt = train_prior(run / "shards", run, cfg.prior, d, clip, vq)
    times["prior"] = time.time() - t
    if d.main:
        times["total"] = time.time() - t_start
        (run / "timings.json").write_text(json.dumps(times, indent=1) + "\n")
        (run / "config.json").write_text(json.dumps(asdict(cfg), indent=1) + "\n")
    if export is not None and d.main:
        export_model(export, clip, run / "tokenizer", gpt, vq)
        copy_training_log(run, Path(export) / "training-log")
        log(f"exported the built-in model to {export} ({times['total']:.0f} s in all)")
    return times


TRAINING_LOG_FILES = ("config.json", "timings.json", "data-report.json", "clip-metrics.jsonl",
                      "clip-summary.json", "vqgan-metrics.jsonl", "vqgan-summary.json",
                      "prior-metrics.jsonl")


def copy_training_log(run: Path, dest: Path) -> None:
    """The run's curves, summaries and timings, kept beside the exported model (small text
    files; the engine ignores them) so the report can draw them from a fresh clone."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in TRAINING_LOG_FILES:
        if (Path(run) / name).exists():
            shutil.copy(Path(run) / name, dest / name)


def seed_all(seed: int) -> None:
    torch.manual_seed(seed)
