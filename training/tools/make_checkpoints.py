"""Writes PyTorch checkpoints in the published layouts under
Tests/ClipGenEngineTests/Fixtures/checkpoints/ (about 3 MB in all).

    python -m tools.make_checkpoints            (from training/)

The files are deterministic except `legacy.pt` (its storage keys are memory addresses).
Each file is what `torch.save` / `torch.jit.save` write for the real releases, at tiny sizes:

* `gpt_hfai.pt` - HFAiLab/clip-gen's `train_gpt.py` checkpoint: {"model": state_dict (with the
  `blocks.{i}.mask` buffers), "optimizer", "scaler", "epoch", "step", "val_loss"}. The weights
  are tiny_model's GPT, so `io/gpt.safetensors` holds its expected outputs. `head.weight` is
  saved as a transposed view (non-contiguous strides).
* `vqgan_hfai.pt` - HFAiLab's VQGAN checkpoint {"model": state_dict with HFAiLab's names and
  `discriminator.*`, "epoch"}; float16 storage.
* `vqgan_taming.ckpt` - a PyTorch Lightning checkpoint of taming's VQModel: {"state_dict" (with
  `loss.discriminator.*` / `loss.perceptual_loss.*`, float16), "epoch", "global_step",
  "pytorch-lightning_version", "optimizer_states", "lr_schedulers", "callbacks" (a numpy scalar),
  "hyper_parameters" (Lightning's AttributeDict, with taming's ddconfig)}.
* `clip_openai.pt` - an OpenAI-named CLIP state dict as HFAiLab ships `clip_vit_b32.pt`
  (`torch.load` + `load_state_dict`), float16 storage like OpenAI's release;
  `text_projection` saved as a transposed view.
* `clip_hf/` - the same CLIP as a Hugging Face folder: `pytorch_model.bin` (HF names, float16,
  with the int64 `position_ids` buffers), `config.json`, `vocab.json`, `merges.txt`.
* `clip_openai_torchscript.pt` - the same CLIP as a traced TorchScript archive, as OpenAI's
  own `ViT-B-32.pt` is (float16 parameters, `input_resolution` / `context_length` /
  `vocab_size` attributes, deflated code records).
* `dtypes.pt` + `dtypes.safetensors` - one tensor per dtype and strided view (transposed,
  sliced with a storage offset, expanded with stride 0, two views sharing a storage, empty,
  0-d, a Parameter); the safetensors file holds each as contiguous float32.
* `legacy.pt` - the pre-1.6 format (`_use_new_zipfile_serialization=False`); expected values
  in `dtypes.safetensors` under `legacy.*`.
* `missing_storage.pt` - a zip checkpoint with one tensor's data record removed.
* `zip64.pt` - a small checkpoint with the ZIP64 records of a >4 GiB file (0xFFFFFFFF sizes and
  offsets, ZIP64 extra fields and end record).
* `bpe_tiny.txt.gz` - tiny_model's merges in OpenAI's `bpe_simple_vocab_16e6.txt.gz` format.
* `io.safetensors` - inputs and float64-computed expected outputs of the fresh CLIP and VQGAN.
* `configs.json` - the sizes of the fresh CLIP and VQGAN (what inference must find).

With `--full DIR` (default `.cache/vit-b32`) it writes instead the published shapes with random
weights for the slow tests (about 2.3 GB, not committed): `clip_vit_b32.pt` (ViT-B/32, a float16
state dict, as HFAiLab ships it), `ViT-B-32.pt` (TorchScript, as OpenAI ships it),
`gpt_coco.pt` (gpt2_medium in HFAiLab's checkpoint dict), `vqgan_f16_16384.ckpt` (taming's
f16-16384 VQGAN as a Lightning checkpoint without hyper-parameters, like the released one) and
`io.safetensors` (inputs and float64 expected outputs). The Swift tests run with
CLIPGEN_SLOW_TESTS=1:

    python -m tools.make_checkpoints --full
    CLIPGEN_SLOW_TESTS=1 swift test --filter PyTorchViTB32

The fresh CLIP and VQGAN weights are rounded to float16 first, so float16 storage is exact
and every file of a model holds the same numbers.
"""

from __future__ import annotations

import gzip
import io as _io
import json
import math
import struct
import sys
import types
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from reference.clip import CLIP, CLIPConfig, hf_config, to_hf_state_dict
from reference.gpt import GPT, gpt2_medium
from reference.vqgan import VQGAN, VQGANConfig, f16_16384, load_vqgan, taming_to_hfai

from .make_fixtures import FIXTURES, as64, f32, init_weights

OUT = FIXTURES / "checkpoints"

# Sizes chosen to plug into tiny_model's GPT (vocab 64 = n_embed, 16x16 grid, condition 64).
SMALL_CLIP = CLIPConfig(
    embed_dim=64,
    image_resolution=32,
    vision_layers=1,
    vision_width=64,
    vision_patch_size=8,
    context_length=77,
    vocab_size=614,  # tiny_model's tokenizer
    transformer_width=64,
    transformer_layers=1,
)
SMALL_VQGAN = VQGANConfig(
    embed_dim=16,
    n_embed=64,
    ch=32,
    out_ch=3,
    ch_mult=(1, 1),
    num_res_blocks=1,
    attn_resolutions=(16,),
    in_channels=3,
    resolution=32,
    z_channels=16,
    norm_eps=1e-6,
)


def half_exact(model: torch.nn.Module) -> None:
    """Rounds every parameter to the nearest float16 value (kept as float32)."""
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.half().float())


def transposed_view(t: torch.Tensor) -> torch.Tensor:
    """The same values, stored column-major: a non-contiguous view of a fresh storage."""
    v = t.t().contiguous().t()
    assert not v.is_contiguous() and torch.equal(v, t)
    return v


def save_st(tensors: dict[str, torch.Tensor], path: Path) -> None:
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata={"format": "pt"})


# ---------------------------------------------------------------------------------------------
# GPT: tiny_model's weights in HFAiLab's train_gpt.py checkpoint
# ---------------------------------------------------------------------------------------------


def make_gpt() -> None:
    sd = load_file(str(FIXTURES / "tiny_model" / "gpt" / "model.safetensors"))
    cfg = json.loads((FIXTURES / "tiny_model" / "gpt" / "config.json").read_text())
    model_sd: OrderedDict[str, torch.Tensor] = OrderedDict()
    block = cfg["block_size"]
    mask = ~torch.tril(torch.ones(block, block, dtype=torch.bool))
    for k, v in sd.items():
        model_sd[k] = transposed_view(v) if k == "head.weight" else v
    for i in range(cfg["n_layer"]):
        model_sd[f"blocks.{i}.mask"] = mask.clone()
    state = {
        "model": model_sd,
        "optimizer": {
            "state": {
                0: {
                    "step": torch.tensor(3.0),
                    "exp_avg": torch.zeros(4),
                    "exp_avg_sq": torch.zeros(4),
                }
            },
            "param_groups": [
                {"lr": 1e-4, "betas": (0.9, 0.95), "weight_decay": 0.01, "params": [0]}
            ],
        },
        "scaler": {"scale": 65536.0, "growth_factor": 2.0, "_growth_tracker": 0},
        "epoch": 200,
        "step": 0,
        "val_loss": 4.125,
    }
    torch.save(state, OUT / "gpt_hfai.pt")


# ---------------------------------------------------------------------------------------------
# CLIP: OpenAI names, state dict and TorchScript
# ---------------------------------------------------------------------------------------------


def make_clip(io: dict) -> dict:
    gen = torch.Generator().manual_seed(701)
    model = CLIP(SMALL_CLIP).eval()
    w = SMALL_CLIP.transformer_width
    init_weights(
        model,
        gen,
        {
            "token_embedding.weight": 1.0,
            "positional_embedding": 0.5,
            "visual.class_embedding": 1.0,
            "visual.positional_embedding": 0.5,
            "text_projection": w**-0.5,
            "visual.proj": SMALL_CLIP.vision_width**-0.5,
            "logit_scale": 0.0,
        },
    )
    with torch.no_grad():
        model.logit_scale.fill_(math.log(1 / 0.07))
    half_exact(model)

    # The state dict HFAiLab ships: torch.save(model.state_dict()), here in float16.
    sd = model.state_dict()  # an OrderedDict with _metadata, as torch writes it
    half_sd = OrderedDict((k, v.half()) for k, v in sd.items())
    half_sd._metadata = sd._metadata  # type: ignore[attr-defined]
    half_sd["text_projection"] = transposed_view(half_sd["text_projection"])
    torch.save(half_sd, OUT / "clip_openai.pt")

    # Hugging Face's folder layout: pytorch_model.bin (a plain state dict with HF names and the
    # int64 position_ids buffers older transformers versions saved), config.json, tokenizer files.
    hf_dir = OUT / "clip_hf"
    hf_dir.mkdir(exist_ok=True)
    hf_sd = OrderedDict((k, v.half()) for k, v in to_hf_state_dict(dict(sd)).items())
    hf_sd["text_model.embeddings.position_ids"] = torch.arange(77).view(1, 77)
    hf_sd["vision_model.embeddings.position_ids"] = torch.arange(17).view(1, 17)
    torch.save(hf_sd, hf_dir / "pytorch_model.bin")
    (hf_dir / "config.json").write_text(
        json.dumps(hf_config(SMALL_CLIP, 612, 613, 0), indent=2) + "\n"
    )
    for name in ("vocab.json", "merges.txt"):
        (hf_dir / name).write_bytes((FIXTURES / "tiny_model" / "tokenizer" / name).read_bytes())

    # Inputs: ids of random tokens with EOT (the highest id) at varying positions; pixels ~ N(0,1).
    g = torch.Generator().manual_seed(702)
    ids = torch.zeros(2, 77, dtype=torch.long)
    for b, n in enumerate((9, 30)):
        ids[b, 0] = 612
        ids[b, 1 : n - 1] = torch.randint(0, 612, (n - 2,), generator=g)
        ids[b, n - 1] = 613
    pixels = torch.randn(2, 3, 32, 32, generator=g)

    # TorchScript, as OpenAI's ViT-B-32.pt: traced, float16, with its three int attributes.
    traced_src = CLIP(SMALL_CLIP).eval()
    traced_src.load_state_dict(sd)
    traced_src.register_buffer("input_resolution", torch.tensor(SMALL_CLIP.image_resolution))
    traced_src.register_buffer("context_length", torch.tensor(SMALL_CLIP.context_length))
    traced_src.register_buffer("vocab_size", torch.tensor(SMALL_CLIP.vocab_size))
    with torch.no_grad():
        traced = torch.jit.trace_module(
            traced_src, {"encode_text": (ids,), "encode_image": (pixels,)}, check_trace=False
        )
    traced = traced.half()
    torch.jit.save(traced, str(OUT / "clip_openai_torchscript.pt"))

    m64 = as64(model)
    with torch.no_grad():
        text = m64.encode_text(ids)
        image = m64.encode_image(pixels.double())
    io["clip.input_ids"] = ids
    io["clip.pixel_values"] = f32(pixels)
    io["clip.text_embeds"] = f32(text)
    io["clip.image_embeds"] = f32(image)
    return {
        "embed_dim": SMALL_CLIP.embed_dim,
        "image_resolution": SMALL_CLIP.image_resolution,
        "vision_layers": SMALL_CLIP.vision_layers,
        "vision_width": SMALL_CLIP.vision_width,
        "vision_patch_size": SMALL_CLIP.vision_patch_size,
        "context_length": SMALL_CLIP.context_length,
        "vocab_size": SMALL_CLIP.vocab_size,
        "transformer_width": SMALL_CLIP.transformer_width,
        "transformer_layers": SMALL_CLIP.transformer_layers,
    }


# ---------------------------------------------------------------------------------------------
# VQGAN: taming Lightning .ckpt and HFAiLab .pt
# ---------------------------------------------------------------------------------------------


def _lightning_attribute_dict() -> type:
    """A stand-in for pytorch_lightning.utilities.parsing.AttributeDict (a dict subclass), so
    the checkpoint pickles it under Lightning's class name, as real ones do."""
    name = "pytorch_lightning.utilities.parsing"
    for part in ("pytorch_lightning", "pytorch_lightning.utilities", name):
        sys.modules.setdefault(part, types.ModuleType(part))

    class AttributeDict(dict):
        pass

    AttributeDict.__module__ = name
    AttributeDict.__qualname__ = "AttributeDict"
    sys.modules[name].AttributeDict = AttributeDict  # type: ignore[attr-defined]
    return AttributeDict


def make_vqgan(io: dict) -> dict:
    gen = torch.Generator().manual_seed(703)
    model = VQGAN(SMALL_VQGAN).eval()
    init_weights(model, gen, {"quantize.embedding.weight": 1.0})
    half_exact(model)
    sd = OrderedDict((k, v.clone()) for k, v in model.state_dict().items())

    # taming + Lightning.
    g = torch.Generator().manual_seed(704)
    loss = OrderedDict()
    loss["loss.logvar"] = torch.zeros(())
    loss["loss.perceptual_loss.net.slice1.0.weight"] = torch.randn(8, 3, 3, 3, generator=g).half()
    loss["loss.perceptual_loss.lin0.model.1.weight"] = torch.randn(1, 8, 1, 1, generator=g).half()
    loss["loss.discriminator.main.0.weight"] = torch.randn(8, 3, 4, 4, generator=g).half()
    loss["loss.discriminator.main.0.bias"] = torch.randn(8, generator=g).half()
    loss["loss.discriminator.main.2.running_mean"] = torch.zeros(8).half()
    loss["loss.discriminator.main.2.num_batches_tracked"] = torch.tensor(1234)
    state_dict = OrderedDict(list(sd.items()) + list(loss.items()))
    attribute_dict = _lightning_attribute_dict()
    c = SMALL_VQGAN
    ddconfig = {
        "double_z": False,
        "z_channels": c.z_channels,
        "resolution": c.resolution,
        "in_channels": c.in_channels,
        "out_ch": c.out_ch,
        "ch": c.ch,
        "ch_mult": list(c.ch_mult),
        "num_res_blocks": c.num_res_blocks,
        "attn_resolutions": list(c.attn_resolutions),
        "dropout": 0.0,
    }
    hyper = attribute_dict(
        ddconfig=ddconfig,
        lossconfig={
            "target": "taming.modules.losses.vqperceptual.VQLPIPSWithDiscriminator",
            "params": {"disc_start": 0},
        },
        n_embed=c.n_embed,
        embed_dim=c.embed_dim,
        ckpt_path=None,
        ignore_keys=[],
        image_key="image",
        colorize_nlabels=None,
        monitor="val/rec_loss",
    )
    ckpt = {
        "epoch": 7,
        "global_step": 123456,
        "pytorch-lightning_version": "1.0.8",
        "state_dict": state_dict,
        "callbacks": {
            "ModelCheckpoint": {
                "best_model_score": np.float64(0.25),
                "best_model_path": "logs/last.ckpt",
            }
        },
        "optimizer_states": [
            {
                "state": {},
                "param_groups": [{"lr": 4.5e-6, "betas": (0.5, 0.9), "params": [0, 1, 2]}],
            }
        ],
        "lr_schedulers": [],
        "hyper_parameters": hyper,
    }
    torch.save(ckpt, OUT / "vqgan_taming.ckpt")

    # HFAiLab: {"model": sd (HFAiLab names + discriminator.*), "epoch"}, float16 storage.
    hfai = OrderedDict((k, v.half()) for k, v in taming_to_hfai(sd, c).items())
    hfai["discriminator.main.0.weight"] = torch.randn(8, 3, 4, 4, generator=g).half()
    hfai["discriminator.main.0.bias"] = torch.randn(8, generator=g).half()
    torch.save({"model": hfai, "epoch": 50}, OUT / "vqgan_hfai.pt")

    # Expected outputs: decode tokens, encode an image; taming eps 1e-6, HFAiLab eps 1e-5.
    tokens = torch.randint(0, c.n_embed, (2, 256), generator=g)
    image = torch.rand(2, 3, c.resolution, c.resolution, generator=g) * 2 - 1
    hfai_cfg = VQGANConfig(**{**c.__dict__, "norm_eps": 1e-5})
    for tag, m in (("vqgan", model), ("vqgan_hfai", load_vqgan(sd, hfai_cfg))):
        m64 = as64(m)
        with torch.no_grad():
            io[f"{tag}.decoded"] = f32(m64.decode_indices(tokens))
            io[f"{tag}.encode_latent"] = f32(m64.encode(image.double())["latent"])
    io["vqgan.decode_tokens"] = tokens
    io["vqgan.encode_image"] = f32(image)
    return c.to_json()


# ---------------------------------------------------------------------------------------------
# dtypes, strided views, the legacy format, OpenAI's BPE file
# ---------------------------------------------------------------------------------------------


def make_dtypes() -> None:
    g = torch.Generator().manual_seed(705)
    base = torch.randn(4, 6, generator=g)
    big = torch.randn(5, 7, generator=g)
    shared = torch.randn(12, generator=g)
    row = torch.randn(4, generator=g)
    values = {
        "f32": torch.randn(2, 3, generator=g),
        "f64": torch.randn(3, generator=g).double(),
        "f16": torch.randn(2, 2, generator=g).half(),
        "bf16": torch.randn(5, generator=g).bfloat16(),
        "i64": torch.tensor([-3, 0, 7, 1 << 20]),
        "i32": torch.tensor([[1, -2], [3, -4]], dtype=torch.int32),
        "i16": torch.tensor([-300, 300], dtype=torch.int16),
        "i8": torch.tensor([-7, 5], dtype=torch.int8),
        "u8": torch.tensor([0, 200, 255], dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "scalar": torch.tensor(3.5),
        "transposed": base.t(),  # strides (1, 6)
        "sliced": big[1:4, 2:6],  # storage offset 9, strides (7, 1)
        "expanded": row.view(1, 4).expand(3, 4),  # stride 0
        "shared_a": shared[:6].view(2, 3),
        "shared_b": shared[6:].view(3, 2).t(),  # same storage, offset 6, transposed
        "empty": torch.zeros(0, 3),
        "param": torch.nn.Parameter(torch.randn(3, generator=g)),
    }
    state = dict(values)
    state["complex"] = torch.randn(2, generator=g, dtype=torch.complex64)
    torch.save(state, OUT / "dtypes.pt")
    expected = {k: v.detach().float().contiguous() for k, v in values.items()}

    legacy = {"w": torch.randn(3, 4, generator=g), "h": torch.randn(4, generator=g).half()}
    legacy["t"] = legacy["w"].t()
    torch.save(legacy, OUT / "legacy.pt", _use_new_zipfile_serialization=False)
    for k, v in legacy.items():
        expected[f"legacy.{k}"] = v.float().contiguous()
    save_st(expected, OUT / "dtypes.safetensors")


def make_missing_storage() -> None:
    """A zip checkpoint whose second tensor's data record was dropped (a damaged file)."""
    buf = _io.BytesIO()
    torch.save({"a": torch.ones(2), "b": torch.zeros(3)}, buf)
    src = zipfile.ZipFile(_io.BytesIO(buf.getvalue()))
    out = _io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            if not info.filename.endswith("/data/1"):
                info.date_time = (1980, 1, 1, 0, 0, 0)
                dst.writestr(info, src.read(info.filename))
    (OUT / "missing_storage.pt").write_bytes(out.getvalue())


def make_zip64() -> None:
    """A small checkpoint rewritten with every ZIP64 structure a >4 GiB torch.save file has:
    0xFFFFFFFF sizes and offsets in the central directory with ZIP64 extra fields, and an end
    record of 0xFFFF counts pointing to the ZIP64 end record (as for an HFAiLab GPT checkpoint
    saved with its optimizer state)."""
    buf = _io.BytesIO()
    torch.save(
        {"a": torch.arange(6, dtype=torch.float32).view(2, 3), "b": torch.ones(4).half()}, buf
    )
    data = buf.getvalue()
    eocd = data.rfind(b"PK\x05\x06")
    count, _, cd_offset = struct.unpack_from("<HII", data, eocd + 10)
    entries = []
    o = cd_offset
    for _ in range(count):
        fixed = bytearray(data[o : o + 46])
        n, e, c = struct.unpack_from("<HHH", fixed, 28)
        name = data[o + 46 : o + 46 + n]
        comp, uncomp = struct.unpack_from("<II", fixed, 20)
        (offset,) = struct.unpack_from("<I", fixed, 42)
        struct.pack_into("<II", fixed, 20, 0xFFFFFFFF, 0xFFFFFFFF)
        struct.pack_into("<I", fixed, 42, 0xFFFFFFFF)
        extra = struct.pack("<HHQQQ", 1, 24, uncomp, comp, offset)
        struct.pack_into("<HH", fixed, 30, len(extra), 0)
        entries.append(bytes(fixed) + name + extra)
        o += 46 + n + e + c
    cd = b"".join(entries)
    body = data[:cd_offset]
    eocd64_offset = len(body) + len(cd)
    eocd64 = struct.pack(
        "<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, count, count, len(cd), len(body)
    )
    locator = struct.pack("<IIQI", 0x07064B50, 0, eocd64_offset, 1)
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    out = body + cd + eocd64 + locator + end
    check = torch.load(_io.BytesIO(out))
    assert torch.equal(check["a"], torch.arange(6, dtype=torch.float32).view(2, 3))
    (OUT / "zip64.pt").write_bytes(out)


def make_bpe_gz() -> None:
    """tiny_model's merges as OpenAI ships them: a first line, then one merge per line."""
    lines = (FIXTURES / "tiny_model" / "tokenizer" / "merges.txt").read_text().splitlines()
    merges = [line for line in lines[1:] if line]
    text = '"bpe_simple_vocab_16e6.txt#version: 0.2\n' + "\n".join(merges) + "\n"
    buf = _io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0) as f:
        f.write(text.encode("utf-8"))
    (OUT / "bpe_tiny.txt.gz").write_bytes(buf.getvalue())


def make_full_vit_b32(out: Path) -> None:
    """The published shapes with random weights: ViT-B/32 CLIP (float16-exact), gpt2_medium,
    taming's f16-16384 VQGAN."""
    out.mkdir(parents=True, exist_ok=True)
    cfg = CLIPConfig()  # the defaults are ViT-B/32
    model = CLIP(cfg).eval()
    init_weights(
        model,
        torch.Generator().manual_seed(801),
        {
            "token_embedding.weight": 1.0,
            "positional_embedding": 0.5,
            "visual.class_embedding": 1.0,
            "visual.positional_embedding": 0.5,
            "text_projection": cfg.transformer_width**-0.5,
            "visual.proj": cfg.vision_width**-0.5,
            "logit_scale": 0.0,
        },
    )
    with torch.no_grad():
        model.logit_scale.fill_(math.log(1 / 0.07))
    half_exact(model)
    sd = model.state_dict()
    torch.save(OrderedDict((k, v.half()) for k, v in sd.items()), out / "clip_vit_b32.pt")

    g = torch.Generator().manual_seed(802)
    ids = torch.zeros(2, 77, dtype=torch.long)
    for b, n in enumerate((12, 77)):
        ids[b, 0] = 49406
        ids[b, 1 : n - 1] = torch.randint(0, 49406, (n - 2,), generator=g)
        ids[b, n - 1] = 49407
    pixels = torch.randn(2, 3, 224, 224, generator=g)
    src = CLIP(cfg).eval()
    src.load_state_dict(sd)
    src.register_buffer("input_resolution", torch.tensor(224))
    src.register_buffer("context_length", torch.tensor(77))
    src.register_buffer("vocab_size", torch.tensor(49408))
    with torch.no_grad():
        traced = torch.jit.trace_module(
            src, {"encode_text": (ids,), "encode_image": (pixels,)}, check_trace=False
        )
    torch.jit.save(traced.half(), str(out / "ViT-B-32.pt"))
    m64 = as64(model)
    with torch.no_grad():
        io = {
            "input_ids": ids,
            "pixel_values": f32(pixels),
            "text_embeds": f32(m64.encode_text(ids)),
            "image_embeds": f32(m64.encode_image(pixels.double())),
        }
    del m64, traced, src

    # gpt2_medium as HFAiLab's train_gpt.py saves it (float32, with the mask buffers).
    gpt = GPT(gpt2_medium()).eval()
    torch.save({"model": gpt.state_dict(), "epoch": 200, "step": 0}, out / "gpt_coco.pt")
    cond = torch.nn.functional.normalize(torch.randn(2, 512, generator=g), dim=-1)
    prefix = torch.randint(0, 16384, (2, 3), generator=g)
    with torch.no_grad():
        io["gpt.cond_embeds"] = f32(cond)
        io["gpt.prefix_tokens"] = prefix
        io["gpt.logits"] = f32(as64(gpt)(prefix, cond.double()))
    del gpt

    # taming's f16-16384 VQGAN in a Lightning checkpoint (no hyper_parameters, a loss tensor).
    vq = VQGAN(f16_16384()).eval()
    state = OrderedDict(vq.state_dict())
    state["loss.discriminator.main.0.weight"] = torch.zeros(64, 3, 4, 4)
    torch.save(
        {
            "epoch": 10,
            "global_step": 1,
            "state_dict": state,
            "optimizer_states": [],
            "lr_schedulers": [],
        },
        out / "vqgan_f16_16384.ckpt",
    )
    save_st(io, out / "io.safetensors")
    for p in sorted(out.iterdir()):
        print(f"{p.name:32s} {p.stat().st_size / 1e6:8.1f} MB")


def main() -> None:
    torch.set_num_threads(1)
    if "--full" in sys.argv:
        i = sys.argv.index("--full")
        root = Path(__file__).resolve().parents[2]
        target = Path(sys.argv[i + 1]) if i + 1 < len(sys.argv) else root / ".cache" / "vit-b32"
        torch.set_num_threads(2)
        make_full_vit_b32(target)
        return
    OUT.mkdir(parents=True, exist_ok=True)
    io: dict[str, torch.Tensor] = {}
    make_gpt()
    configs = {"clip_openai": make_clip(io), "vqgan": make_vqgan(io)}
    make_dtypes()
    make_missing_storage()
    make_zip64()
    make_bpe_gz()
    save_st(io, OUT / "io.safetensors")
    (OUT / "README.md").write_text(
        "# PyTorch checkpoint fixtures\n\nGenerated by `training/tools/make_checkpoints.py`"
        " (its docstring, below); do not edit by hand.\n\n```\n"
        + (__doc__ or "").strip()
        + "\n```\n"
    )
    (OUT / "configs.json").write_text(json.dumps(configs, indent=2) + "\n")
    for p in sorted(OUT.iterdir()):
        print(f"{p.name:32s} {p.stat().st_size / 1024:8.1f} KiB")


if __name__ == "__main__":
    main()
