"""taming-transformers' VQGAN (VQModel: Encoder, Decoder, VectorQuantizer, quant convs).

Parameter names are taming's (`taming/models/vqgan.py` VQModel with
`taming/modules/diffusionmodules/model.py` Encoder/Decoder and
`taming/modules/vqvae/quantize.py` VectorQuantizer); the code is our own. GroupNorm has 32
groups and a configurable eps (taming: 1e-6; HFAiLab/clip-gen's re-implementation: 1e-5,
PyTorch's default). `hfai_to_taming` / `taming_to_hfai` map HFAiLab's key names.

Notation: C = channels, E = embed_dim, K = n_embed (codebook size), Z = z_channels,
M = len(ch_mult), f = 2**(M-1) (downsampling factor), grid = resolution / f.

Blocks (swish(x) = x * sigmoid(x); every conv has a bias):
    ResnetBlock(cin, cout): h = conv1(swish(norm1(x)))      conv1 3x3 pad 1, cin -> cout
                            h = conv2(swish(norm2(h)))      conv2 3x3 pad 1 (dropout: none)
                            return (nin_shortcut(x) if cin != cout else x) + h   (1x1 conv)
    AttnBlock(C):  h = norm(x); q, k, v = 1x1 convs of h  [B, C, H, W] -> [B, C, N], N = H*W
                   w = softmax_over_keys(q^T k / sqrt(C))  (single head, [B, N_query, N_key])
                   return x + proj_out(v w^T)              (1x1 conv)
    Downsample:    pad right and bottom by one zero (F.pad (0,1,0,1)), then conv 3x3 stride 2
                   padding 0.
    Upsample:      nearest x2 (out[y, x] = in[y // 2, x // 2]), then conv 3x3 pad 1.

Encoder, x [B, in_channels, R, R]:
    conv_in (-> ch); for level i in 0..M-1: num_res_blocks x (down.i.block.j, then down.i.attn.j
    if the current resolution is in attn_resolutions); down.i.downsample unless i = M-1;
    mid.block_1, mid.attn_1, mid.block_2; norm_out, swish, conv_out (-> Z).
    Channels of level i: ch * ch_mult[i]; the first block of level i takes ch * ch_mult[i-1]
    (ch for i = 0).
Decoder, z [B, Z, grid, grid]:
    conv_in (Z -> ch * ch_mult[-1]); mid.block_1, mid.attn_1, mid.block_2;
    for level i = M-1 down to 0: (num_res_blocks + 1) x (up.i.block.j, then up.i.attn.j if the
    current resolution is in attn_resolutions); up.i.upsample unless i = 0;
    norm_out, swish, conv_out (-> out_ch). No tanh.
VQGAN:
    encode:  z = quant_conv(encoder(x))   (1x1, Z -> E; the "pre-quantisation latent")
             index[b, y*grid + x] = argmin_k |z[b, :, y, x] - codebook[k]|^2   (raster order)
    decode:  z_q[b, :, y, x] = codebook[index[b, y*grid + x]]   (quantize.embedding.weight [K, E])
             image = decoder(post_quant_conv(z_q))              (post_quant_conv 1x1, E -> Z)
    Images are in [-1, 1] (x * 0.5 + 0.5 gives [0, 1]).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class VQGANConfig:
    embed_dim: int = 256  # E, codebook vector size
    n_embed: int = 16384  # K, codebook size
    ch: int = 128
    out_ch: int = 3
    ch_mult: tuple[int, ...] = (1, 1, 2, 2, 4)
    num_res_blocks: int = 2
    attn_resolutions: tuple[int, ...] = (16,)
    in_channels: int = 3
    resolution: int = 256
    z_channels: int = 256
    norm_eps: float = 1e-6  # taming 1e-6; HFAiLab 1e-5

    @property
    def grid(self) -> int:
        return self.resolution // 2 ** (len(self.ch_mult) - 1)

    def to_json(self) -> dict:
        d = asdict(self)
        d["ch_mult"] = list(self.ch_mult)
        d["attn_resolutions"] = list(self.attn_resolutions)
        return d

    @classmethod
    def from_json(cls, d: dict) -> VQGANConfig:
        names = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k in names}
        for k in ("ch_mult", "attn_resolutions"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**d)

    @classmethod
    def load(cls, path: Path) -> VQGANConfig:
        return cls.from_json(json.loads(Path(path).read_text()))


def f16_16384(norm_eps: float = 1e-6) -> VQGANConfig:
    """taming's vqgan_imagenet_f16_16384 sizes; HFAiLab's COCO VQGAN has the same sizes."""
    return VQGANConfig(norm_eps=norm_eps)


def swish(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(x)


def group_norm(channels: int, eps: float) -> nn.GroupNorm:
    return nn.GroupNorm(32, channels, eps=eps, affine=True)


class ResnetBlock(nn.Module):
    def __init__(self, cin: int, cout: int, eps: float):
        super().__init__()
        self.norm1 = group_norm(cin, eps)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2 = group_norm(cout, eps)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.nin_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(swish(self.norm1(x)))
        h = self.conv2(swish(self.norm2(h)))
        if self.nin_shortcut is not None:
            x = self.nin_shortcut(x)
        return x + h


class AttnBlock(nn.Module):
    def __init__(self, c: int, eps: float):
        super().__init__()
        self.norm = group_norm(c, eps)
        self.q = nn.Conv2d(c, c, 1)
        self.k = nn.Conv2d(c, c, 1)
        self.v = nn.Conv2d(c, c, 1)
        self.proj_out = nn.Conv2d(c, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, hh, ww = x.shape
        h = self.norm(x)
        q = self.q(h).reshape(b, c, hh * ww)
        k = self.k(h).reshape(b, c, hh * ww)
        v = self.v(h).reshape(b, c, hh * ww)
        w = torch.softmax(q.transpose(1, 2) @ k / c**0.5, dim=-1)  # [B, Nq, Nk]
        out = (v @ w.transpose(1, 2)).reshape(b, c, hh, ww)
        return x + self.proj_out(out)


class Downsample(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1), value=0.0))


class Upsample(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Mid(nn.Module):
    def __init__(self, c: int, eps: float):
        super().__init__()
        self.block_1 = ResnetBlock(c, c, eps)
        self.attn_1 = AttnBlock(c, eps)
        self.block_2 = ResnetBlock(c, c, eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block_2(self.attn_1(self.block_1(x)))


class Level(nn.Module):
    """One resolution: `block` and `attn` lists, then `downsample` or `upsample` (or neither)."""

    def __init__(self):
        super().__init__()
        self.block = nn.ModuleList()
        self.attn = nn.ModuleList()

    def run(self, h: torch.Tensor) -> torch.Tensor:
        for j, block in enumerate(self.block):
            h = block(h)
            if len(self.attn) > 0:
                h = self.attn[j](h)
        return h


class Encoder(nn.Module):
    def __init__(self, c: VQGANConfig):
        super().__init__()
        eps = c.norm_eps
        self.conv_in = nn.Conv2d(c.in_channels, c.ch, 3, padding=1)
        self.down = nn.ModuleList()
        res = c.resolution
        cin = c.ch
        for i, mult in enumerate(c.ch_mult):
            level = Level()
            for _ in range(c.num_res_blocks):
                level.block.append(ResnetBlock(cin, c.ch * mult, eps))
                cin = c.ch * mult
                if res in c.attn_resolutions:
                    level.attn.append(AttnBlock(cin, eps))
            if i != len(c.ch_mult) - 1:
                level.downsample = Downsample(cin)
                res //= 2
            self.down.append(level)
        self.mid = Mid(cin, eps)
        self.norm_out = group_norm(cin, eps)
        self.conv_out = nn.Conv2d(cin, c.z_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for level in self.down:
            h = level.run(h)
            if hasattr(level, "downsample"):
                h = level.downsample(h)
        h = self.mid(h)
        return self.conv_out(swish(self.norm_out(h)))


class Decoder(nn.Module):
    def __init__(self, c: VQGANConfig):
        super().__init__()
        eps = c.norm_eps
        cin = c.ch * c.ch_mult[-1]
        res = c.grid
        self.conv_in = nn.Conv2d(c.z_channels, cin, 3, padding=1)
        self.mid = Mid(cin, eps)
        levels: list[Level] = []
        for i in reversed(range(len(c.ch_mult))):
            level = Level()
            cout = c.ch * c.ch_mult[i]
            for _ in range(c.num_res_blocks + 1):
                level.block.append(ResnetBlock(cin, cout, eps))
                cin = cout
                if res in c.attn_resolutions:
                    level.attn.append(AttnBlock(cin, eps))
            if i != 0:
                level.upsample = Upsample(cin)
                res *= 2
            levels.insert(0, level)  # up[i] is level i
        self.up = nn.ModuleList(levels)
        self.norm_out = group_norm(cin, eps)
        self.conv_out = nn.Conv2d(cin, c.out_ch, 3, padding=1)

    def forward_states(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.conv_in(z)
        conv_in = h
        h = self.mid(h)
        mid = h
        for i in reversed(range(len(self.up))):
            h = self.up[i].run(h)
            if i != 0:
                h = self.up[i].upsample(h)
        return {"conv_in": conv_in, "mid": mid, "image": self.conv_out(swish(self.norm_out(h)))}

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.forward_states(z)["image"]


class VectorQuantizer(nn.Module):
    """Key: embedding.weight [K, E]."""

    def __init__(self, n_embed: int, embed_dim: int):
        super().__init__()
        self.embedding = nn.Embedding(n_embed, embed_dim)

    def distances(self, z: torch.Tensor) -> torch.Tensor:
        """z [B, E, h, w] -> squared distances [B, h*w, K] (raster order), computed as
        |z|^2 + |e|^2 - 2 z.e like taming."""
        b, e = z.shape[:2]
        flat = z.permute(0, 2, 3, 1).reshape(b, -1, e)
        emb = self.embedding.weight
        return (flat**2).sum(-1, keepdim=True) + (emb**2).sum(-1) - 2 * flat @ emb.t()

    def lookup(self, indices: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """indices [B, h*w] -> z_q [B, E, h, w]."""
        b = indices.shape[0]
        return self.embedding(indices).reshape(b, grid[0], grid[1], -1).permute(0, 3, 1, 2)


class VQGAN(nn.Module):
    """Keys: encoder.*, decoder.*, quantize.embedding.weight, quant_conv.*, post_quant_conv.*"""

    def __init__(self, config: VQGANConfig):
        super().__init__()
        c = config
        self.config = c
        self.encoder = Encoder(c)
        self.decoder = Decoder(c)
        self.quantize = VectorQuantizer(c.n_embed, c.embed_dim)
        self.quant_conv = nn.Conv2d(c.z_channels, c.embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(c.embed_dim, c.z_channels, 1)

    def encode(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x [B, in_channels, R, R] in [-1, 1] ->
        latent [B, E, grid, grid] (pre-quantisation), indices int64 [B, grid*grid],
        distances [B, grid*grid, K]."""
        z = self.quant_conv(self.encoder(x))
        d = self.quantize.distances(z)
        return {"latent": z, "indices": d.argmin(dim=-1), "distances": d}

    def decode_states(self, indices: torch.Tensor) -> dict[str, torch.Tensor]:
        g = self.config.grid
        z_q = self.quantize.lookup(indices, (g, g))
        post = self.post_quant_conv(z_q)
        out = self.decoder.forward_states(post)
        return {"z_q": z_q, "post_quant": post, **out}

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """indices int64 [B, grid*grid] (raster order) -> image [B, out_ch, R, R]."""
        return self.decode_states(indices)["image"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode_indices(self.encode(x)["indices"])


def load_vqgan(sd: dict[str, torch.Tensor], config: VQGANConfig) -> VQGAN:
    model = VQGAN(config)
    model.load_state_dict(sd, strict=True)
    return model.eval()


# ---------------------------------------------------------------------------------------------
# HFAiLab/clip-gen key names
# ---------------------------------------------------------------------------------------------
#
# HFAiLab's VQGAN (models/vqgan.py, codec.py, quantizer.py) has the same architecture as
# taming's VQModel at the same sizes, with these differences:
#   * GroupNorm eps is PyTorch's default 1e-5 (nn.GroupNorm(32, c)), not 1e-6.
#   * Encoder levels and decoder levels are one flat nn.Sequential each (`encoder.down.{n}`,
#     `decoder.up.{n}`), numbered in execution order: res blocks, attention blocks and
#     Downsample/Upsample modules all take a number.
#   * ResnetBlock is an nn.Sequential `block` = [GroupNorm, SiLU, Conv, GroupNorm, SiLU,
#     Dropout, Conv], so its parameters are block.0 (norm1), block.2 (conv1), block.3 (norm2),
#     block.6 (conv2); the 1x1 shortcut is `shortcut` (taming: nin_shortcut).
#   * AttnBlock uses nn.MultiheadAttention(C, num_heads=1): `attn.in_proj_weight` [3C, C]
#     (rows q | k | v) and `attn.in_proj_bias` [3C] are taming's q/k/v 1x1 convs stacked;
#     `attn.out_proj` is proj_out. Same math (single head, scale 1/sqrt(C)).
#   * quant_conv lives inside the encoder (`encoder.final.3`, a 1x1 conv Z -> Z) and
#     post_quant_conv inside the decoder (`decoder.quant_conv_in`); there is no separate
#     embed_dim, so embed_dim must equal z_channels.
#   * The quantiser is `quantizer` (taming: `quantize`); it picks the nearest code with
#     torch.cdist (Euclidean) argmin, the same choice as taming's squared distance.
#   * The checkpoint also holds `discriminator.*` (training only); dropped here.
#
# Full map (HFAiLab -> taming), n = running index in the flat Sequential:
#   encoder.conv_in                     encoder.conv_in
#   encoder.down.{n}  (ResnetBlock)     encoder.down.{i}.block.{j}
#   encoder.down.{n}  (AttnBlock)       encoder.down.{i}.attn.{j}
#   encoder.down.{n}.conv (Downsample)  encoder.down.{i}.downsample.conv
#   encoder.mid.0 / mid.1 / mid.2       encoder.mid.block_1 / mid.attn_1 / mid.block_2
#   encoder.final.0 / final.2           encoder.norm_out / encoder.conv_out
#   encoder.final.3                     quant_conv
#   decoder.quant_conv_in               post_quant_conv
#   decoder.conv_in                     decoder.conv_in
#   decoder.mid.0 / mid.1 / mid.2       decoder.mid.block_1 / mid.attn_1 / mid.block_2
#   decoder.up.{n}  (ResnetBlock)       decoder.up.{i}.block.{j}   (n counts from the lowest
#   decoder.up.{n}  (AttnBlock)         decoder.up.{i}.attn.{j}     resolution, i = M-1 first)
#   decoder.up.{n}.conv (Upsample)      decoder.up.{i}.upsample.conv
#   decoder.final.0 / final.2           decoder.norm_out / decoder.conv_out
#   quantizer.embedding.weight          quantize.embedding.weight
# and inside the modules:
#   ResnetBlock  block.0 -> norm1, block.2 -> conv1, block.3 -> norm2, block.6 -> conv2,
#                shortcut -> nin_shortcut
#   AttnBlock    norm -> norm, attn.in_proj_weight[0:C] -> q.weight (reshaped [C, C, 1, 1]),
#                [C:2C] -> k, [2C:3C] -> v (biases likewise), attn.out_proj -> proj_out

_RESNET = (
    ("block.0", "norm1"),
    ("block.2", "conv1"),
    ("block.3", "norm2"),
    ("block.6", "conv2"),
    ("shortcut", "nin_shortcut"),
)


def hfai_module_map(c: VQGANConfig) -> list[tuple[str, str, str]]:
    """(HFAiLab prefix, taming prefix, kind) with kind in plain | resnet | attn."""
    m: list[tuple[str, str, str]] = [("encoder.conv_in", "encoder.conv_in", "plain")]
    n, res, levels = 0, c.resolution, len(c.ch_mult)
    for i in range(levels):
        for j in range(c.num_res_blocks):
            m.append((f"encoder.down.{n}", f"encoder.down.{i}.block.{j}", "resnet"))
            n += 1
            if res in c.attn_resolutions:
                m.append((f"encoder.down.{n}", f"encoder.down.{i}.attn.{j}", "attn"))
                n += 1
        if i != levels - 1:
            m.append((f"encoder.down.{n}.conv", f"encoder.down.{i}.downsample.conv", "plain"))
            n += 1
            res //= 2
    for part in ("encoder", "decoder"):
        m += [
            (f"{part}.mid.0", f"{part}.mid.block_1", "resnet"),
            (f"{part}.mid.1", f"{part}.mid.attn_1", "attn"),
            (f"{part}.mid.2", f"{part}.mid.block_2", "resnet"),
        ]
    m += [
        ("encoder.final.0", "encoder.norm_out", "plain"),
        ("encoder.final.2", "encoder.conv_out", "plain"),
        ("encoder.final.3", "quant_conv", "plain"),
        ("decoder.quant_conv_in", "post_quant_conv", "plain"),
        ("decoder.conv_in", "decoder.conv_in", "plain"),
    ]
    n, res = 0, c.grid
    for i in reversed(range(levels)):
        for j in range(c.num_res_blocks + 1):
            m.append((f"decoder.up.{n}", f"decoder.up.{i}.block.{j}", "resnet"))
            n += 1
            if res in c.attn_resolutions:
                m.append((f"decoder.up.{n}", f"decoder.up.{i}.attn.{j}", "attn"))
                n += 1
        if i != 0:
            m.append((f"decoder.up.{n}.conv", f"decoder.up.{i}.upsample.conv", "plain"))
            n += 1
            res *= 2
    m += [
        ("decoder.final.0", "decoder.norm_out", "plain"),
        ("decoder.final.2", "decoder.conv_out", "plain"),
        ("quantizer.embedding", "quantize.embedding", "plain"),
    ]
    return m


def _take(sd: dict, key: str, used: set) -> torch.Tensor:
    used.add(key)
    return sd[key]


def hfai_to_taming(sd: dict[str, torch.Tensor], c: VQGANConfig) -> dict[str, torch.Tensor]:
    """HFAiLab VQGAN state dict -> taming names (discriminator.* dropped; strict otherwise)."""
    out: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    for src, dst, kind in hfai_module_map(c):
        if kind == "plain":
            for p in ("weight", "bias"):
                if f"{src}.{p}" in sd:
                    out[f"{dst}.{p}"] = _take(sd, f"{src}.{p}", used).clone()
        elif kind == "resnet":
            for a, b in _RESNET:
                for p in ("weight", "bias"):
                    if f"{src}.{a}.{p}" in sd:
                        out[f"{dst}.{b}.{p}"] = _take(sd, f"{src}.{a}.{p}", used).clone()
        else:
            for p in ("weight", "bias"):
                out[f"{dst}.norm.{p}"] = _take(sd, f"{src}.norm.{p}", used).clone()
            w = _take(sd, f"{src}.attn.in_proj_weight", used)
            b = _take(sd, f"{src}.attn.in_proj_bias", used)
            ch = w.shape[1]
            for part, wp, bp in zip("qkv", w.chunk(3), b.chunk(3), strict=True):
                out[f"{dst}.{part}.weight"] = wp.reshape(ch, ch, 1, 1).clone()
                out[f"{dst}.{part}.bias"] = bp.clone()
            ow = _take(sd, f"{src}.attn.out_proj.weight", used)
            out[f"{dst}.proj_out.weight"] = ow.reshape(ch, ch, 1, 1).clone()
            out[f"{dst}.proj_out.bias"] = _take(sd, f"{src}.attn.out_proj.bias", used).clone()
    left = [k for k in sd if k not in used and not k.startswith("discriminator.")]
    if left:
        raise KeyError(f"unmapped HFAiLab VQGAN keys: {left[:8]}")
    return out


def taming_to_hfai(sd: dict[str, torch.Tensor], c: VQGANConfig) -> dict[str, torch.Tensor]:
    """taming VQGAN state dict -> HFAiLab names (requires embed_dim == z_channels)."""
    if c.embed_dim != c.z_channels:
        raise ValueError("HFAiLab's layout has no separate embed_dim (needs embed_dim == Z)")
    out: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    for dst, src, kind in hfai_module_map(c):
        if kind == "plain":
            for p in ("weight", "bias"):
                if f"{src}.{p}" in sd:
                    out[f"{dst}.{p}"] = _take(sd, f"{src}.{p}", used).clone()
        elif kind == "resnet":
            for a, b in _RESNET:
                for p in ("weight", "bias"):
                    if f"{src}.{b}.{p}" in sd:
                        out[f"{dst}.{a}.{p}"] = _take(sd, f"{src}.{b}.{p}", used).clone()
        else:
            for p in ("weight", "bias"):
                out[f"{dst}.norm.{p}"] = _take(sd, f"{src}.norm.{p}", used).clone()
            ws = [_take(sd, f"{src}.{x}.weight", used) for x in "qkv"]
            ch = ws[0].shape[0]
            out[f"{dst}.attn.in_proj_weight"] = torch.cat([w.reshape(ch, ch) for w in ws])
            out[f"{dst}.attn.in_proj_bias"] = torch.cat(
                [_take(sd, f"{src}.{x}.bias", used) for x in "qkv"]
            )
            ow = _take(sd, f"{src}.proj_out.weight", used)
            out[f"{dst}.attn.out_proj.weight"] = ow.reshape(ch, ch).clone()
            out[f"{dst}.attn.out_proj.bias"] = _take(sd, f"{src}.proj_out.bias", used).clone()
    left = [k for k in sd if k not in used]
    if left:
        raise KeyError(f"unmapped taming VQGAN keys: {left[:8]}")
    return out
