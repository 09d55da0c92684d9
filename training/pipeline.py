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
from .common import (
    Dist,
    UserError,
    atomic_write_text,
    describe_change,
    load_checkpoint,
    log,
    weights_hash,
)
from .export import export_model
from .prior_train import PriorTrainConfig, make_shards, prior_inputs, train_prior
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
    raise UserError(f"--clip {path}: no CLIP there (looked for model.json, config.json + "
                    f"model.safetensors, or clip.pt)")


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


# -- the stages of a folder run ---------------------------------------------------------------
#
# Each stage records what it was made from (its inputs' fingerprints) in its checkpoint or
# index and in RUN/fingerprints.json; started again, a stage whose inputs changed is refused
# (the VQGAN: its data set) or rebuilt (the shards, the prior), and the export refuses a prior
# trained on another VQGAN's tokens. The exported model.json carries the fingerprints.


def record_fingerprint(run: Path, stage: str, value) -> None:
    path = Path(run) / "fingerprints.json"
    fp = json.loads(path.read_text()) if path.exists() else {}
    fp[stage] = value
    atomic_write_text(path, json.dumps(fp, indent=1) + "\n")


def load_data(folder: Path, run: Path, opts: data.DecodeOptions, d: Dist) -> data.Folder:
    """The folder decoded into RUN/cache (every rank decodes its share), with its report in
    RUN/data-report.json."""
    f = data.decode_folder(folder, opts, Path(run) / "cache", d)
    if d.main:
        log(f.report.summary())
        atomic_write_text(Path(run) / "data-report.json",
                          json.dumps(asdict(f.report), indent=1) + "\n")
        record_fingerprint(run, "data", f.fingerprint)
    return f


def load_images(folder: Path, resolution: int, run: Path, d: Dist):
    """(train images, report) of a folder at `resolution` with the default options."""
    f = load_data(folder, run, data.DecodeOptions(resolution), d)
    return f.train, f.report


def stage_vqgan(f: data.Folder, run: Path, cfg: VQGANTrainConfig, d: Dist,
                vq_model: VQGANConfig | None, clip: models.CLIP | None) -> models.VQGAN:
    vq = train_vqgan(f.train, run, cfg, d, vq_model, clip=clip, val_images=f.val,
                     inputs=f.fingerprint)
    if d.main:
        record_fingerprint(run, "vqgan", {"inputs": f.fingerprint, "weights": weights_hash(vq)})
    return vq


def stage_shards(f: data.Folder, clip: models.CLIP, vq: models.VQGAN, run: Path,
                 d: Dist) -> Path:
    """Shards of the training files (never the validation files), rebuilt when the data set,
    the VQGAN or the CLIP changed."""
    ck = load_checkpoint(Path(run) / "vqgan.pt")
    if ck is not None and ck.get("inputs") not in (None, f.fingerprint):
        raise UserError(f"{run}/vqgan.pt was trained on another data set than {f.report.root} "
                        f"({describe_change(ck['inputs'], f.fingerprint)}); pass the same "
                        f"--data and options as for the vqgan stage, or train into a new --out")
    if d.main:
        make_shards(f.train, clip, vq, run, data=f.fingerprint)
        index = json.loads((Path(run) / "shards" / "index.json").read_text())
        record_fingerprint(run, "shards", index["inputs"])
    d.barrier()
    return Path(run) / "shards"


def stage_prior(run: Path, cfg: PriorTrainConfig, d: Dist, clip: models.CLIP,
                vq: models.VQGAN, size: models.SizeName = "builtin",
                name: str = "prior") -> models.GPT:
    gpt_model = models.size_preset(size).gpt_config(vq.config.n_embed, vq.config.grid**2,
                                                    clip.config.embed_dim)
    gpt = train_prior(Path(run) / "shards", run, cfg, d, clip, vq, gpt_model, name=name)
    if d.main:
        record_fingerprint(run, name, {"inputs": prior_inputs(Path(run) / "shards", gpt.config),
                                       "weights": weights_hash(gpt)})
    return gpt


def run_fingerprints(run: Path, clip: models.CLIP, vq: models.VQGAN, gpt: models.GPT,
                     prior: str = "prior") -> dict:
    """The fingerprints an export records, after checking that the prior was trained on this
    VQGAN's and this CLIP's tokens and embeddings (UserError otherwise)."""
    ck = load_checkpoint(Path(run) / f"{prior}.pt") or {}
    shards = (ck.get("inputs") or {}).get("shards") or {}
    vq_hash, clip_hash = weights_hash(vq), weights_hash(clip)
    how = f"run the prior stage again (python -m training prior --out {run} ...)"
    if shards.get("vqgan") not in (None, vq_hash):
        raise UserError(f"{run}/{prior}.pt was trained on another VQGAN's tokens (vqgan "
                        f"{shards['vqgan']} then, {vq_hash} now); {how}")
    if shards.get("clip") not in (None, clip_hash):
        raise UserError(f"{run}/{prior}.pt was trained on another CLIP's embeddings (clip "
                        f"{shards['clip']} then, {clip_hash} now); {how}")
    vq_ck = load_checkpoint(Path(run) / "vqgan.pt") or {}
    return {"data": shards.get("data") or vq_ck.get("inputs"), "vqgan": vq_hash,
            "clip": clip_hash, "prior": weights_hash(gpt), "shards": shards or None}


def export_run(run: Path, out: Path, clip: models.CLIP, tok_dir: Path, gpt: models.GPT,
               vq: models.VQGAN, name: str, prior: str = "prior") -> Path:
    """export_model with the run's fingerprints; the files readable by all (0644)."""
    fp = run_fingerprints(run, clip, vq, gpt, prior)
    out = export_model(out, clip, tok_dir, gpt, vq, name=name, fingerprints=fp)
    for p in Path(out).rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    Path(out).chmod(0o755)
    record_fingerprint(run, "export", {"path": str(out), **fp})
    return out


def train_folder(folder: Path, run: Path, clip_path: Path, export: Path | None, d: Dist,
                 vq_cfg: VQGANTrainConfig, prior_cfg: PriorTrainConfig,
                 size: models.SizeName = "builtin", opts: data.DecodeOptions | None = None,
                 name: str = "custom", report: bool = True) -> None:
    """Stage 1 + stage 2 (+ export, + the run's report) on any image folder, with a given
    CLIP."""
    run = Path(run)
    preset = models.size_preset(size)
    opts = opts or data.DecodeOptions(preset.resolution)
    vq_model = preset.vqgan_config(opts.resolution)
    clip, _ = load_clip(clip_path)
    f = load_data(folder, run, opts, d)
    est = preset.estimate_s(opts.resolution, vq_cfg.steps, vq_cfg.batch, prior_cfg.steps,
                            prior_cfg.batch, d.world)
    when = (f"{est / 3600:.1f} h" if est is not None and est >= 3600 else
            f"{(est or 0) / 60:.0f} min")
    log(f"estimate: about {when} for {vq_cfg.steps} VQGAN + {prior_cfg.steps} prior "
        f"steps at --size {size} on {d.world} CPU process(es) of one thread (measured on a "
        f"2-core machine; each stage shows its own ETA)" if est is not None else
        f"estimate: no CPU figure for --size {size} (meant for GPUs)", d)
    vq = stage_vqgan(f, run, vq_cfg, d, vq_model, clip)
    stage_shards(f, clip, vq, run, d)
    gpt = stage_prior(run, prior_cfg, d, clip, vq, size)
    if export is not None and d.main:
        export_run(run, export, clip, _tokenizer_dir(clip_path), gpt, vq, name)
        log(f"exported to {export}")
    if report and d.main:
        from .folder_report import write_report

        page = write_report(run, f, clip, vq, gpt, export=export)
        log(f"report: {page}")


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
    f = load_data(folder, run, data.DecodeOptions(models.builtin_vqgan_config().resolution), d)
    times["load"] = time.time() - t
    t = time.time()
    vq = stage_vqgan(f, run, cfg.vqgan, d, models.builtin_vqgan_config(), clip)
    times["vqgan"] = time.time() - t

    t = time.time()
    stage_shards(f, clip, vq, run, d)
    times["shards"] = time.time() - t

    t = time.time()
    gpt = stage_prior(run, cfg.prior, d, clip, vq)
    times["prior"] = time.time() - t
    if d.main:
        times["total"] = time.time() - t_start
        (run / "timings.json").write_text(json.dumps(times, indent=1) + "\n")
        (run / "config.json").write_text(json.dumps(asdict(cfg), indent=1) + "\n")
    if export is not None and d.main:
        export_run(run, export, clip, run / "tokenizer", gpt, vq, name="builtin-shapes")
        copy_training_log(run, Path(export) / "training-log")
        log(f"exported the built-in model to {export} ({times['total']:.0f} s in all)")
    return times


TRAINING_LOG_FILES = ("config.json", "timings.json", "data-report.json", "clip-metrics.jsonl",
                      "clip-summary.json", "vqgan-metrics.jsonl", "vqgan-summary.json",
                      "prior-metrics.jsonl", "fingerprints.json")


def copy_training_log(run: Path, dest: Path) -> None:
    """The run's curves, summaries and timings, kept beside the exported model (small text
    files; the engine ignores them) so the report can draw them from a fresh clone."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in TRAINING_LOG_FILES:
        if (Path(run) / name).exists():
            shutil.copy(Path(run) / name, dest / name)


def seed_all(seed: int) -> None:
    torch.manual_seed(seed)
