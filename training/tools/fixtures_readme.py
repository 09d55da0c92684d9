"""Writes Fixtures/README.md: prose plus tables generated from the files actually written."""

from __future__ import annotations

import json
import re
from pathlib import Path

from safetensors import safe_open

DESCRIPTIONS: dict[str, dict[str, str]] = {
    "io/clip.safetensors": {
        "input_ids": "the two captions of `CAPTIONS` above: [BOS] + BPE ids + [EOT], zero-padded",
        "text_embeddings": "token_embedding[ids] + positional_embedding (input of text layer 0)",
        "text_layer_0": "text residual stream after resblock / encoder layer 0",
        "text_last_hidden": "ln_final (HF final_layer_norm) output, every position",
        "text_pooled": "text_last_hidden at argmax(input_ids) (the EOT position)",
        "text_embeds": "text_pooled @ text_projection ([W, E]; HF text_projection.weight is its "
        "transpose). NOT normalised",
        "pixel_values": "io/clip_image_{0,1}.png as (v / 255 - mean[c]) / std[c], CLIP mean/std",
        "image_embeddings": "[class_embedding; conv1 patches (row-major)] + positional_embedding "
        "(before ln_pre)",
        "image_pre_layernorm": "after ln_pre (HF pre_layrnorm), input of vision layer 0",
        "image_layer_0": "vision residual stream after layer 0",
        "image_pooled": "ln_post (HF post_layernorm) of the CLS position",
        "image_embeds": "image_pooled @ proj ([W, E]; HF visual_projection.weight transposed). "
        "NOT normalised",
        "logits_per_image": "exp(logit_scale) * normalize(image_embeds) @ normalize(text_embeds)^T",
    },
    "io/gpt.safetensors": {
        "cond_embeds": "L2-normalised io/clip text_embeds (row b = caption b): the GPT condition",
        "prefix_tokens": "random image tokens (seeded)",
        "logits": "forward(prefix_tokens, cond_embeds): position 0 = cond_proj(cond); logits[:, i] "
        "predicts token i",
        "hidden_block_0": "residual stream after block 0 (same input as `logits`)",
        "logits_uncond": "same prefix with uncond_emb at position 0 (both rows; row 0 position 0 "
        "equals row 1 position 0)",
        "greedy_tokens": "argmax decoding, 256 steps, from cond_embeds (recompute loop; a KV-cache "
        "decoder must give the same tokens)",
        "greedy_logits": "logits of each greedy step: [b, t] is the distribution of token t given "
        "tokens < t",
        "greedy_min_gap": "smallest top-1 minus top-2 logit over the 256 steps, per row",
    },
    "vqgan": {
        "decode_tokens": "= io/gpt greedy_tokens (the end of the text-to-image chain)",
        "decode_z_q": "codebook rows of decode_tokens, as [B, E, 16, 16] (z_q[b, :, y, x] = "
        "codebook[tokens[b, 16y + x]])",
        "decode_post_quant": "post_quant_conv(z_q)",
        "decode_mid": "decoder after conv_in and mid (block_1, attn_1, block_2)",
        "decoded": "decoder output image, nominally [-1, 1] (not clamped)",
        "encode_image": "io/vqgan_image_{0,1}.png as v / 127.5 - 1",
        "encode_latent": "quant_conv(encoder(encode_image)): the pre-quantisation latent",
        "encode_indices": "nearest codebook row of each latent vector, raster order (16y + x)",
        "encode_margin": "second-nearest minus nearest squared distance, per position",
    },
}

HEADER = """# Parity fixtures

Written by `training/tools/make_fixtures.py` (`cd training && python -m
tools.make_fixtures`). Deterministic: a rerun gives byte-identical files. Do not edit by
hand; this README is generated too.

## Conventions

* Float tensors are float32, ids and indices int64, all little-endian safetensors.
* Expected outputs are computed in **float64** from exactly the stored float32 inputs and
  weights, then stored as float32. The same reference run in float32 differs from them by at
  most: CLIP embeds {clip_f32:.1e}, GPT logits {gpt_f32:.1e}, VQGAN decode {vq_f32:.1e}.
  Suggested test tolerance: `abs(a - b) <= 1e-4 + 1e-4 * abs(b)`; a wrong kernel is off by far
  more (weights are drawn with std ~ 1/sqrt(fan_in), so activations are O(1)).
* Discrete outputs must match **exactly**: every greedy step has a top-1/top-2 logit gap of at
  least {gpt_gap:.4f} (threshold {min_gap:g}; GPT seed {gpt_seed}), and every VQ position a
  squared-distance margin of at least {vq_margin:.4f} (threshold {min_margin:g}; VQGAN seed
  {vq_seed}, {vq_used}+ distinct codes per image).
* Layouts: images NCHW; token grids [B, 256] in raster order (index = row * 16 + col); GPT
  sequences [B, positions, dim] with position 0 = condition.
* The chain is consistent end to end: `CAPTIONS` -> `io/clip` input_ids -> text_embeds ->
  L2-normalise -> `io/gpt` cond_embeds -> greedy_tokens = `io/vqgan` decode_tokens -> decoded.
  So "tokenise, encode, generate greedily, decode" on tiny_model must reproduce `decoded`.

CAPTIONS = {captions}

## Files

| path | what |
|---|---|
| `tiny_model/model.json` | engine model manifest (format clipgen, version 1) |
| `tiny_model/clip/config.json` | Hugging Face CLIPModel config (quick_gelu, eps 1e-5, heads = width / 64) |
| `tiny_model/clip/model.safetensors` | CLIP weights, Hugging Face key names (no position_ids buffers) |
| `tiny_model/tokenizer/vocab.json`, `merges.txt` | tiny BPE in CLIP's file format ({vocab} tokens, 100 merges) |
| `tiny_model/gpt/config.json` | GPT sizes (HFAiLab architecture + uncond_embedding) |
| `tiny_model/gpt/model.safetensors` | GPT weights, HFAiLab key names, `uncond_emb` included, `blocks.{{i}}.mask` omitted |
| `tiny_model/vqgan/config.json` | VQGAN sizes, taming layout, norm_eps 1e-6 |
| `tiny_model/vqgan/model.safetensors` | VQGAN weights, taming key names |
| `clip_openai/model.safetensors` | the same CLIP weights under OpenAI key names, no config (sizes from shapes, as in OpenAI's build_model); expected outputs: `io/clip.safetensors` |
| `vqgan_hfai/config.json` | the same VQGAN sizes, norm_eps 1e-5 (HFAiLab's GroupNorm eps) |
| `vqgan_hfai/model.safetensors` | the same VQGAN weights under HFAiLab/clip-gen key names |
| `vqgan_hfai/io.safetensors` | VQGAN expected outputs recomputed at eps 1e-5 |
| `io/clip.safetensors` | CLIP inputs, intermediates, outputs |
| `io/gpt.safetensors` | GPT inputs, intermediates, outputs |
| `io/vqgan.safetensors` | VQGAN inputs, intermediates, outputs (eps 1e-6) |
| `io/tokenizer_cases.json` | tokenizer golden cases (see below) |
| `io/clip_image_{{0,1}}.png` | 32x32 RGB sources of `pixel_values` |
| `io/vqgan_image_{{0,1}}.png` | 64x64 RGB sources of `encode_image` |

Key maps: OpenAI <-> Hugging Face CLIP in `training/reference/clip.py` (`to_hf_state_dict`,
`from_hf_state_dict`); taming <-> HFAiLab VQGAN in `training/reference/vqgan.py`
(`hfai_module_map`, with the full table in the comment above it).

### The GroupNorm eps is observable

`encoder.conv_in` and `decoder.conv_in` are scaled down so the GroupNorm right after each sees a
variance of about 1e-5. Decoding the same tokens at eps 1e-6 (`io/vqgan.safetensors`) and at
1e-5 (`vqgan_hfai/io.safetensors`) differs by up to {vq_eps:.2f}, and {vq_eps_idx:.0%} of the
encoded indices differ, so using the wrong eps fails the test.

### model.json

```json
{model_json}
```

### Configs

`tiny_model/clip/config.json` (sizes: text width 128, 2 heads, 2 layers, 77 positions;
vision width 128, 2 heads, 2 layers, image 32, patch 8 -> 16 patches + CLS; projection 64):

```json
{clip_cfg}
```

`tiny_model/gpt/config.json` (logits positions <= block_size; vocab = VQGAN n_embed):

```json
{gpt_cfg}
```

`tiny_model/vqgan/config.json` (f4: 64x64 image <-> 16x16 grid; `vqgan_hfai/config.json` is the
same with norm_eps 1e-5):

```json
{vq_cfg}
```

## Tokenizer

`tiny_model/tokenizer/vocab.json` ids: 0-255 the byte-unicode characters in GPT-2's
`bytes_to_unicode` order, 256-511 the same + `</w>`, then one token per merge in merge order,
then `<|startoftext|>` = {bos}, `<|endoftext|>` = {eot} (the highest id; CLIP pools at
argmax). `merges.txt` starts with `#version: 0.2`; use every line after it (the real
openai/clip-vit-base-patch32 file likewise has exactly its 48894 merges).

`io/tokenizer_cases.json`: `{{"bos_id", "eot_id", "context_length": 77, "truncation", "cases":
[{{"text", "tokens" (BPE strings), "ids" (no BOS/EOT), "input_ids" (77 ids: BOS, ids, EOT, zero
padding; truncated to 77 with the last id set to EOT)}}]}}`. The cases were cross-checked
against ftfy + `regex` (CLIP's own cleaning and pattern) with the same vocabulary; they avoid
text where ftfy changes characters (curly quotes, mojibake), which this reference does not
reproduce. Covered: case folding, whitespace runs and tabs, punctuation, digits (one token
each), html entities (`&amp;lt;` -> `<`, two unescapes), non-ASCII letters and numbers
(`Ünïcödé ½ x²`), underscores, literal special-token strings (they map to BOS/EOT, as in
CLIP), empty and blank text, and a caption longer than 77 tokens.

## Weight files

CLIP and GPT keys are shown as patterns: `{{n}}` stands for a layer index, and the shape is the
same for every layer (`xN` = how many keys match). VQGAN keys are listed one by one (channel
counts differ between levels), in natural order.
"""


def _collapse(keys_shapes: list[tuple[str, list[int]]]) -> list[str]:
    groups: dict[str, list[tuple[str, list[int]]]] = {}
    for k, shape in keys_shapes:
        groups.setdefault(re.sub(r"\.\d+\.", ".{n}.", k), []).append((k, shape))
    lines = []
    for pattern, members in groups.items():
        shapes = {tuple(s) for _, s in members}
        if len(shapes) == 1:
            count = f" x{len(members)}" if len(members) > 1 else ""
            lines.append(f"| `{pattern}` | {list(members[0][1])}{count} |")
        else:
            lines += [f"| `{k}` | {s} |" for k, s in members]
    return lines


def _tensors(path: Path) -> list[tuple[str, str, list[int]]]:
    with safe_open(str(path), "pt") as f:
        out = []
        for k in f.keys():  # noqa: SIM118 (safe_open is not a dict)
            t = f.get_slice(k)
            out.append((k, t.get_dtype(), list(t.get_shape())))
    return out


def _natural(key: str) -> list:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", key)]


def write_readme(out: Path, stats: dict) -> None:
    """stats: numbers measured by make_fixtures (gaps, margins, seeds, float32 deviations)."""
    cases = json.loads((out / "io/tokenizer_cases.json").read_text())
    text = HEADER.format(
        clip_f32=max(stats["clip_f32_text"], stats["clip_f32_image"]),
        gpt_f32=stats["gpt_f32_logits"],
        vq_f32=stats["vq_f32_decode"],
        gpt_gap=stats["gpt_min_gap"],
        min_gap=stats["min_gap"],
        gpt_seed=stats["gpt_seed"],
        vq_margin=stats["vq_margin"],
        min_margin=stats["min_margin"],
        vq_seed=stats["vq_seed"],
        vq_used=stats["vq_used"],
        vq_eps=stats["vq_eps_decode"],
        vq_eps_idx=stats["vq_eps_indices"],
        captions=json.dumps(stats["captions"]),
        vocab=stats["clip_vocab"],
        bos=cases["bos_id"],
        eot=cases["eot_id"],
        model_json=(out / "tiny_model/model.json").read_text().strip(),
        clip_cfg=(out / "tiny_model/clip/config.json").read_text().strip(),
        gpt_cfg=(out / "tiny_model/gpt/config.json").read_text().strip(),
        vq_cfg=(out / "tiny_model/vqgan/config.json").read_text().strip(),
    )
    parts = [text]
    for rel, collapse in (
        ("tiny_model/clip/model.safetensors", True),
        ("clip_openai/model.safetensors", True),
        ("tiny_model/gpt/model.safetensors", True),
        ("tiny_model/vqgan/model.safetensors", False),
        ("vqgan_hfai/model.safetensors", False),
    ):
        tensors = sorted(_tensors(out / rel), key=lambda t: _natural(t[0]))
        dtypes = sorted({d for _, d, _ in tensors})
        parts.append(f"\n### `{rel}` ({len(tensors)} tensors, {', '.join(dtypes)})\n")
        parts.append("| key | shape |\n|---|---|")
        if collapse:
            parts += _collapse([(k, s) for k, _, s in tensors])
        else:
            parts += [f"| `{k}` | {s} |" for k, _, s in tensors]
    parts.append("\n## Inputs and expected outputs\n")
    for rel, desc in (
        ("io/clip.safetensors", DESCRIPTIONS["io/clip.safetensors"]),
        ("io/gpt.safetensors", DESCRIPTIONS["io/gpt.safetensors"]),
        ("io/vqgan.safetensors", DESCRIPTIONS["vqgan"]),
        ("vqgan_hfai/io.safetensors", DESCRIPTIONS["vqgan"]),
    ):
        parts.append(f"\n### `{rel}`\n")
        parts.append("| tensor | dtype | shape | what |\n|---|---|---|---|")
        order = list(desc)
        for k, dtype, shape in sorted(_tensors(out / rel), key=lambda t: order.index(t[0])):
            parts.append(f"| `{k}` | {dtype} | {shape} | {desc[k]} |")
    parts.append(
        "\n`vqgan_hfai/io.safetensors` holds the same tensor names, computed with GroupNorm "
        "eps 1e-5 from the\nsame weights (`decode_tokens`, `decode_z_q`, `decode_post_quant` and "
        "`encode_image` are identical\nto `io/vqgan.safetensors`).\n"
    )
    (out / "README.md").write_text("\n".join(parts))
