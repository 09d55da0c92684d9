"""Export to the engine's model directory (what `clipgen generate --model DIR` loads).

    DIR/model.json                 format, names of the parts below
    DIR/clip/config.json           Hugging Face CLIPConfig (quick_gelu, eps 1e-5)
    DIR/clip/model.safetensors     Hugging Face CLIPModel key names
    DIR/tokenizer/vocab.json       CLIP BPE files (real format)
    DIR/tokenizer/merges.txt
    DIR/gpt/config.json            {vocab_size, n_layer, n_embd, n_head, block_size, n_cond_embd,
                                    layer_norm_eps, uncond_embedding}
    DIR/gpt/model.safetensors      HFAiLab names (no mask buffers)
    DIR/vqgan/config.json          taming sizes
    DIR/vqgan/model.safetensors    taming names (encoder, decoder, quantize, quant convs)
Weights are stored as float16 by default (the engine reads F32/F16/BF16) to keep the
committed model small; `load_model_dir` reads a directory back into the PyTorch modules.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from . import models
from .reference import clip as ref_clip
from .reference.gpt import GPTConfig, strip_masks
from .reference.vqgan import VQGANConfig


def _save(sd: dict[str, torch.Tensor], path: Path, dtype: torch.dtype) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sd = {k: v.detach().to(dtype).contiguous() for k, v in sd.items()}
    save_file(sd, str(path))


def export_model(out: Path, clip: models.CLIP, tok_dir: Path, gpt: models.GPT,
                 vq: models.VQGAN, name: str = "builtin-shapes",
                 dtype: torch.dtype = torch.float16, extra: dict | None = None,
                 fingerprints: dict | None = None) -> Path:
    """`fingerprints`: what the weights were made from (data set, VQGAN, CLIP, prior; see
    pipeline.run_fingerprints), recorded in model.json under "fingerprints"."""
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tok = models.Tokenizer.from_dir(Path(tok_dir))
    (tmp / "clip").mkdir(parents=True)
    cfg = ref_clip.hf_config(clip.config, bos_token_id=tok.bos_id, eos_token_id=tok.eot_id)
    (tmp / "clip" / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    _save(ref_clip.to_hf_state_dict(clip.state_dict()), tmp / "clip" / "model.safetensors", dtype)
    (tmp / "tokenizer").mkdir()
    for f in ("vocab.json", "merges.txt"):
        shutil.copy(Path(tok_dir) / f, tmp / "tokenizer" / f)
    (tmp / "gpt").mkdir()
    (tmp / "gpt" / "config.json").write_text(json.dumps(gpt.config.to_json(), indent=2) + "\n")
    _save(strip_masks(gpt.state_dict()), tmp / "gpt" / "model.safetensors", dtype)
    (tmp / "vqgan").mkdir()
    (tmp / "vqgan" / "config.json").write_text(json.dumps(vq.config.to_json(), indent=2) + "\n")
    _save(vq.state_dict(), tmp / "vqgan" / "model.safetensors", dtype)
    if gpt.config.block_size != vq.config.grid**2:
        raise ValueError("block_size must equal the token grid's size")
    manifest = {
        "format": "clipgen", "version": 1, "name": name,
        "clip": {"layout": "hf", "config": "clip/config.json", "weights": "clip/model.safetensors"},
        "tokenizer": {"vocab": "tokenizer/vocab.json", "merges": "tokenizer/merges.txt",
                      "context_length": clip.config.context_length},
        "gpt": {"config": "gpt/config.json", "weights": "gpt/model.safetensors"},
        "vqgan": {"layout": "taming", "config": "vqgan/config.json",
                  "weights": "vqgan/model.safetensors"},
        "conditioning": {"normalize": True},
    }
    if fingerprints:
        manifest["fingerprints"] = fingerprints
    if extra:
        manifest.update(extra)
    (tmp / "model.json").write_text(json.dumps(manifest, indent=2) + "\n")
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out


def load_model_dir(path: Path) -> tuple[models.CLIP, models.Tokenizer, models.GPT, models.VQGAN]:
    """Reads an engine model directory back (float32 modules, eval mode)."""
    path = Path(path)
    m = json.loads((path / "model.json").read_text())

    def f32(sd):
        return {k: v.float() for k, v in sd.items()}

    ccfg = json.loads((path / m["clip"]["config"]).read_text())
    csd = f32(load_file(str(path / m["clip"]["weights"])))
    if m["clip"].get("layout", "hf") == "hf":
        clip = ref_clip.load_hf(csd, ccfg)
    else:
        clip = ref_clip.load_openai(csd)
    tok = models.Tokenizer.from_dir((path / m["tokenizer"]["vocab"]).parent)
    gcfg = GPTConfig.from_json(json.loads((path / m["gpt"]["config"]).read_text()))
    gcfg.dropout = 0.0
    gpt = models.GPT(gcfg)
    missing, unexpected = gpt.load_state_dict(f32(load_file(str(path / m["gpt"]["weights"]))),
                                              strict=False)
    if [k for k in missing if not k.endswith(".mask")] or unexpected:
        raise KeyError(f"{path}: GPT weights mismatch ({missing}, {unexpected})")
    vcfg = VQGANConfig.load(path / m["vqgan"]["config"])
    vq = models.VQGAN(vcfg)
    vq.load_state_dict(f32(load_file(str(path / m["vqgan"]["weights"]))), strict=True)
    return clip.eval(), tok, gpt.eval(), vq.eval()
