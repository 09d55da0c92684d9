"""OpenAI CLIP (vision transformer variant) with OpenAI's exact state-dict key names.

Mirrors the architecture of openai/CLIP `clip/model.py` (CLIP, VisionTransformer, Transformer,
ResidualAttentionBlock); the code here is our own. `to_hf_state_dict` / `hf_config` convert to
Hugging Face `CLIPModel` names and `config.json`.

Notation: W = tower width, E = embed_dim (projection size), L = context_length (77),
P = patch size, G = grid = resolution // P, V = vocab size, heads = W // 64 (OpenAI's rule,
for both towers).

Residual attention block (pre-LN), x: [B, T, W]
    h  = ln_1(x)                                   LayerNorm, eps 1e-5
    qkv = h @ in_proj_weight.T + in_proj_bias        in_proj_weight [3W, W]: rows q | k | v
    per head (head_dim = W / heads): softmax(q k^T / sqrt(head_dim) + mask) v
    x  = x + out_proj(concat heads)                 out_proj.weight [W, W]
    x  = x + c_proj(quick_gelu(c_fc(ln_2(x))))     c_fc [4W, W], c_proj [W, 4W]
    quick_gelu(x) = x * sigmoid(1.702 x)

Text tower, input_ids: int64 [B, L]
    x = token_embedding[ids] + positional_embedding          [B, L, W]
    x = resblocks(x) with a causal mask (position i sees 0..i)
    x = ln_final(x)
    text_embeds = x[b, argmax(ids[b])] @ text_projection       text_projection [W, E]
    (pooled at the EOT token, which has the highest id in the vocabulary)

Vision tower, pixel_values: float [B, 3, R, R], already normalised with CLIP's mean/std
    x = conv1(pixels)                 conv1.weight [W, 3, P, P], stride P, no bias -> [B, W, G, G]
    x = x.reshape(B, W, G*G).transpose(1, 2)                   patches in row-major (y, x) order
    x = concat([class_embedding, x]) + positional_embedding    [B, 1 + G*G, W]
    x = ln_pre(x); x = resblocks(x) (no mask)
    image_embeds = ln_post(x[:, 0]) @ proj                     proj [W, E]

Both embeddings are returned unnormalised; `forward` normalises them for logits.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

LAYER_NORM_EPS = 1e-5
HEAD_WIDTH = 64  # OpenAI: heads = width // 64


@dataclass
class CLIPConfig:
    """Sizes of a CLIP ViT model, named as in OpenAI's `build_model`."""

    embed_dim: int = 512  # E, joint embedding size (text_projection / proj columns)
    image_resolution: int = 224  # R, input image side
    vision_layers: int = 12
    vision_width: int = 768
    vision_patch_size: int = 32  # P
    context_length: int = 77  # L, text positions
    vocab_size: int = 49408
    transformer_width: int = 512  # text tower width
    transformer_layers: int = 12

    @property
    def vision_heads(self) -> int:
        return self.vision_width // HEAD_WIDTH

    @property
    def transformer_heads(self) -> int:
        return self.transformer_width // HEAD_WIDTH

    @property
    def grid(self) -> int:
        return self.image_resolution // self.vision_patch_size


def quick_gelu(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(1.702 * x)


class QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return quick_gelu(x)


class ResidualAttentionBlock(nn.Module):
    """Keys: attn.in_proj_weight/in_proj_bias, attn.out_proj.*, ln_1.*, mlp.c_fc.*,
    mlp.c_proj.*, ln_2.*"""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln_1 = nn.LayerNorm(width, eps=LAYER_NORM_EPS)
        self.mlp = nn.Sequential(
            OrderedDict(
                [
                    ("c_fc", nn.Linear(width, width * 4)),
                    ("gelu", QuickGELU()),
                    ("c_proj", nn.Linear(width * 4, width)),
                ]
            )
        )
        self.ln_2 = nn.LayerNorm(width, eps=LAYER_NORM_EPS)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, attn_mask=mask, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    """Keys: resblocks.{i}.*"""

    def __init__(self, width: int, layers: int, heads: int):
        super().__init__()
        self.width = width
        self.layers = layers
        self.resblocks = nn.ModuleList(
            [ResidualAttentionBlock(width, heads) for _ in range(layers)]
        )

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, states: list | None = None
    ) -> torch.Tensor:
        for block in self.resblocks:
            x = block(x, mask)
            if states is not None:
                states.append(x)
        return x


class VisionTransformer(nn.Module):
    """Keys (under `visual.`): conv1.weight, class_embedding, positional_embedding, ln_pre.*,
    transformer.resblocks.{i}.*, ln_post.*, proj"""

    def __init__(self, resolution: int, patch: int, width: int, layers: int, output_dim: int):
        super().__init__()
        grid = resolution // patch
        self.conv1 = nn.Conv2d(3, width, kernel_size=patch, stride=patch, bias=False)
        scale = width**-0.5
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(scale * torch.randn(grid * grid + 1, width))
        self.ln_pre = nn.LayerNorm(width, eps=LAYER_NORM_EPS)
        self.transformer = Transformer(width, layers, width // HEAD_WIDTH)
        self.ln_post = nn.LayerNorm(width, eps=LAYER_NORM_EPS)
        self.proj = nn.Parameter(scale * torch.randn(width, output_dim))

    def forward_states(self, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.conv1(pixels.to(self.conv1.weight.dtype))  # [B, W, G, G]
        b, w = x.shape[:2]
        x = x.reshape(b, w, -1).transpose(1, 2)  # [B, G*G, W]
        cls = self.class_embedding.to(x.dtype).expand(b, 1, w)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)  # [B, 1+G*G, W]
        embeddings = x
        x = self.ln_pre(x)
        pre = x
        layers: list[torch.Tensor] = []
        x = self.transformer(x, None, layers)
        pooled = self.ln_post(x[:, 0])  # [B, W]
        return {
            "embeddings": embeddings,
            "pre_layernorm": pre,
            "layers": layers,
            "pooled": pooled,
            "image_embeds": pooled @ self.proj,
        }

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.forward_states(pixels)["image_embeds"]


def causal_mask(n: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Additive mask [n, n]: 0 on and below the diagonal, -inf above (OpenAI's text mask)."""
    return torch.full((n, n), float("-inf"), dtype=dtype).triu_(1)


class CLIP(nn.Module):
    """Top-level keys: token_embedding.weight, positional_embedding, transformer.*, ln_final.*,
    text_projection, logit_scale, visual.*"""

    def __init__(self, config: CLIPConfig):
        super().__init__()
        c = config
        self.config = c
        self.visual = VisionTransformer(
            c.image_resolution, c.vision_patch_size, c.vision_width, c.vision_layers, c.embed_dim
        )
        self.transformer = Transformer(
            c.transformer_width, c.transformer_layers, c.transformer_heads
        )
        self.token_embedding = nn.Embedding(c.vocab_size, c.transformer_width)
        self.positional_embedding = nn.Parameter(torch.empty(c.context_length, c.transformer_width))
        self.ln_final = nn.LayerNorm(c.transformer_width, eps=LAYER_NORM_EPS)
        self.text_projection = nn.Parameter(torch.empty(c.transformer_width, c.embed_dim))
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        nn.init.normal_(self.text_projection, std=c.transformer_width**-0.5)

    def encode_text_states(self, input_ids: torch.Tensor) -> dict[str, torch.Tensor]:
        n = input_ids.shape[1]
        x = self.token_embedding(input_ids) + self.positional_embedding[:n]  # [B, L, W]
        embeddings = x
        layers: list[torch.Tensor] = []
        x = self.transformer(x, causal_mask(n, x.dtype).to(x.device), layers)
        x = self.ln_final(x)
        eot = input_ids.argmax(dim=-1)  # first position holding the highest id (EOT)
        pooled = x[torch.arange(x.shape[0], device=x.device), eot]  # [B, W]
        return {
            "embeddings": embeddings,
            "layers": layers,
            "last_hidden": x,
            "pooled": pooled,
            "text_embeds": pooled @ self.text_projection,
        }

    def encode_text(self, input_ids: torch.Tensor) -> torch.Tensor:
        """[B, L] int64 -> [B, E], not normalised."""
        return self.encode_text_states(input_ids)["text_embeds"]

    def encode_image(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """[B, 3, R, R] (CLIP-normalised) -> [B, E], not normalised."""
        return self.visual(pixel_values)

    def forward(
        self, pixel_values: torch.Tensor, input_ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (logits_per_image [Bi, Bt], logits_per_text [Bt, Bi])."""
        img = F.normalize(self.encode_image(pixel_values), dim=-1)
        txt = F.normalize(self.encode_text(input_ids), dim=-1)
        logits = self.logit_scale.exp() * img @ txt.t()
        return logits, logits.t()


# ---------------------------------------------------------------------------------------------
# OpenAI state dicts: size inference
# ---------------------------------------------------------------------------------------------

# Keys some OpenAI JIT checkpoints carry that are not parameters (OpenAI's build_model drops them).
OPENAI_EXTRA_KEYS = ("input_resolution", "context_length", "vocab_size")


def config_from_openai_state_dict(sd: dict[str, torch.Tensor]) -> CLIPConfig:
    """Infers sizes from tensor shapes, the way OpenAI's build_model does (ViT only)."""
    if "visual.proj" not in sd:
        raise ValueError("not a CLIP ViT state dict (no visual.proj)")
    vision_width = sd["visual.conv1.weight"].shape[0]
    patch = sd["visual.conv1.weight"].shape[-1]
    vision_layers = len(
        {k.split(".")[3] for k in sd if k.startswith("visual.transformer.resblocks.")}
    )
    grid = round((sd["visual.positional_embedding"].shape[0] - 1) ** 0.5)
    text_layers = len({k.split(".")[2] for k in sd if k.startswith("transformer.resblocks.")})
    return CLIPConfig(
        embed_dim=sd["text_projection"].shape[1],
        image_resolution=patch * grid,
        vision_layers=vision_layers,
        vision_width=vision_width,
        vision_patch_size=patch,
        context_length=sd["positional_embedding"].shape[0],
        vocab_size=sd["token_embedding.weight"].shape[0],
        transformer_width=sd["ln_final.weight"].shape[0],
        transformer_layers=text_layers,
    )


def load_openai(sd: dict[str, torch.Tensor]) -> CLIP:
    """Builds a CLIP from an OpenAI-named state dict (strict)."""
    sd = {k: v for k, v in sd.items() if k not in OPENAI_EXTRA_KEYS}
    model = CLIP(config_from_openai_state_dict(sd))
    model.load_state_dict(sd, strict=True)
    return model.eval()


# ---------------------------------------------------------------------------------------------
# Hugging Face conversion
# ---------------------------------------------------------------------------------------------

# Per residual block: OpenAI suffix -> HF suffix (q/k/v are split out of in_proj separately).
_BLOCK_MAP = {
    "attn.out_proj.weight": "self_attn.out_proj.weight",
    "attn.out_proj.bias": "self_attn.out_proj.bias",
    "ln_1.weight": "layer_norm1.weight",
    "ln_1.bias": "layer_norm1.bias",
    "mlp.c_fc.weight": "mlp.fc1.weight",
    "mlp.c_fc.bias": "mlp.fc1.bias",
    "mlp.c_proj.weight": "mlp.fc2.weight",
    "mlp.c_proj.bias": "mlp.fc2.bias",
    "ln_2.weight": "layer_norm2.weight",
    "ln_2.bias": "layer_norm2.bias",
}

# Non-block tensors: OpenAI name -> (HF name, transpose?)
_TOP_MAP = {
    "token_embedding.weight": ("text_model.embeddings.token_embedding.weight", False),
    "positional_embedding": ("text_model.embeddings.position_embedding.weight", False),
    "ln_final.weight": ("text_model.final_layer_norm.weight", False),
    "ln_final.bias": ("text_model.final_layer_norm.bias", False),
    "text_projection": ("text_projection.weight", True),  # [W, E] -> [E, W]
    "visual.class_embedding": ("vision_model.embeddings.class_embedding", False),
    "visual.conv1.weight": ("vision_model.embeddings.patch_embedding.weight", False),
    "visual.positional_embedding": ("vision_model.embeddings.position_embedding.weight", False),
    "visual.ln_pre.weight": ("vision_model.pre_layrnorm.weight", False),  # HF's spelling
    "visual.ln_pre.bias": ("vision_model.pre_layrnorm.bias", False),
    "visual.ln_post.weight": ("vision_model.post_layernorm.weight", False),
    "visual.ln_post.bias": ("vision_model.post_layernorm.bias", False),
    "visual.proj": ("visual_projection.weight", True),  # [W, E] -> [E, W]
    "logit_scale": ("logit_scale", False),
}

_TOWERS = (
    ("visual.transformer.resblocks.", "vision_model.encoder.layers."),
    ("transformer.resblocks.", "text_model.encoder.layers."),
)


def to_hf_state_dict(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """OpenAI key names -> Hugging Face CLIPModel key names.

    - attn.in_proj_weight [3W, W] splits into q_proj/k_proj/v_proj.weight (rows 0:W, W:2W,
      2W:3W); attn.in_proj_bias [3W] likewise.
    - text_projection and visual.proj [W, E] become Linear weights [E, W] (transposed).
    - HF's `position_ids` buffers are not produced (HF rebuilds them).
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        if key in OPENAI_EXTRA_KEYS:
            continue
        if key in _TOP_MAP:
            name, transpose = _TOP_MAP[key]
            out[name] = (value.t() if transpose else value).contiguous().clone()
            continue
        for src, dst in _TOWERS:
            if key.startswith(src):
                layer, suffix = key[len(src) :].split(".", 1)
                prefix = f"{dst}{layer}."
                if suffix in ("attn.in_proj_weight", "attn.in_proj_bias"):
                    kind = "weight" if suffix.endswith("weight") else "bias"
                    q, k, v = value.chunk(3, dim=0)
                    for part, t in (("q", q), ("k", k), ("v", v)):
                        out[f"{prefix}self_attn.{part}_proj.{kind}"] = t.contiguous().clone()
                elif suffix in _BLOCK_MAP:
                    out[prefix + _BLOCK_MAP[suffix]] = value.contiguous().clone()
                else:
                    raise KeyError(f"unexpected CLIP key {key!r}")
                break
        else:
            raise KeyError(f"unexpected CLIP key {key!r}")
    return out


def from_hf_state_dict(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Hugging Face CLIPModel key names -> OpenAI key names (inverse of to_hf_state_dict)."""
    top = {hf: (oa, t) for oa, (hf, t) in _TOP_MAP.items()}
    block = {hf: oa for oa, hf in _BLOCK_MAP.items()}
    out: dict[str, torch.Tensor] = {}
    qkv: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    for key, value in sd.items():
        if key.endswith("position_ids"):
            continue
        if key in top:
            name, transpose = top[key]
            out[name] = (value.t() if transpose else value).contiguous().clone()
            continue
        for dst, src in _TOWERS:
            if key.startswith(src):
                layer, suffix = key[len(src) :].split(".", 1)
                prefix = f"{dst}{layer}."
                if suffix.startswith("self_attn.") and suffix[10:12] in ("q_", "k_", "v_"):
                    kind = suffix.rsplit(".", 1)[1]
                    qkv.setdefault((prefix, kind), {})[suffix[10]] = value
                elif suffix in block:
                    out[prefix + block[suffix]] = value.contiguous().clone()
                else:
                    raise KeyError(f"unexpected HF CLIP key {key!r}")
                break
        else:
            raise KeyError(f"unexpected HF CLIP key {key!r}")
    for (prefix, kind), parts in qkv.items():
        out[f"{prefix}attn.in_proj_{kind}"] = torch.cat([parts["q"], parts["k"], parts["v"]])
    return out


def hf_config(
    config: CLIPConfig,
    bos_token_id: int = 49406,
    eos_token_id: int = 49407,
    pad_token_id: int = 0,
) -> dict:
    """A Hugging Face CLIPModel `config.json` for these sizes (quick_gelu, eps 1e-5).

    Text pooling: OpenAI pools at argmax(input_ids). Recent transformers versions pool at the
    first `eos_token_id` unless eos_token_id == 2 (the legacy value in openai/clip-vit-*
    configs, which selects argmax); with EOT the highest id, both give the same position.
    """
    c = config
    text = {
        "model_type": "clip_text_model",
        "vocab_size": c.vocab_size,
        "hidden_size": c.transformer_width,
        "intermediate_size": 4 * c.transformer_width,
        "num_attention_heads": c.transformer_heads,
        "num_hidden_layers": c.transformer_layers,
        "max_position_embeddings": c.context_length,
        "hidden_act": "quick_gelu",
        "layer_norm_eps": LAYER_NORM_EPS,
        "projection_dim": c.embed_dim,
        "bos_token_id": bos_token_id,
        "eos_token_id": eos_token_id,
        "pad_token_id": pad_token_id,
    }
    vision = {
        "model_type": "clip_vision_model",
        "hidden_size": c.vision_width,
        "intermediate_size": 4 * c.vision_width,
        "num_attention_heads": c.vision_heads,
        "num_hidden_layers": c.vision_layers,
        "image_size": c.image_resolution,
        "patch_size": c.vision_patch_size,
        "num_channels": 3,
        "hidden_act": "quick_gelu",
        "layer_norm_eps": LAYER_NORM_EPS,
        "projection_dim": c.embed_dim,
    }
    return {
        "architectures": ["CLIPModel"],
        "model_type": "clip",
        "projection_dim": c.embed_dim,
        "logit_scale_init_value": 2.6592,
        "initializer_factor": 1.0,
        "text_config": text,
        "vision_config": vision,
        "torch_dtype": "float32",
    }


def config_from_hf(cfg: dict) -> CLIPConfig:
    """Sizes from a Hugging Face CLIP config.json (checks OpenAI's heads rule holds)."""
    t, v = cfg["text_config"], cfg["vision_config"]
    c = CLIPConfig(
        embed_dim=cfg["projection_dim"],
        image_resolution=v["image_size"],
        vision_layers=v["num_hidden_layers"],
        vision_width=v["hidden_size"],
        vision_patch_size=v["patch_size"],
        context_length=t["max_position_embeddings"],
        vocab_size=t["vocab_size"],
        transformer_width=t["hidden_size"],
        transformer_layers=t["num_hidden_layers"],
    )
    if (t["num_attention_heads"], v["num_attention_heads"]) != (
        c.transformer_heads,
        c.vision_heads,
    ):
        raise ValueError("head counts differ from width // 64; this reference cannot represent it")
    return c


def load_hf(sd: dict[str, torch.Tensor], cfg: dict) -> CLIP:
    model = CLIP(config_from_hf(cfg))
    model.load_state_dict(from_hf_state_dict(sd), strict=True)
    return model.eval()
