"""Fast checks of the PyTorch reference implementations and of the committed fixtures."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from reference import clip, gpt, tokenizer, vqgan
from tools.make_fixtures import FIXTURES, init_weights

torch.set_num_threads(1)


def seeded(module: nn.Module, seed: int, special: dict | None = None) -> nn.Module:
    init_weights(module, torch.Generator().manual_seed(seed), special or {})
    return module.eval()


# ---------------------------------------------------------------------------------------------
# CLIP
# ---------------------------------------------------------------------------------------------

SMALL_CLIP = clip.CLIPConfig(
    embed_dim=32,
    image_resolution=16,
    vision_layers=2,
    vision_width=128,
    vision_patch_size=8,
    context_length=12,
    vocab_size=50,
    transformer_width=128,
    transformer_layers=2,
)
CLIP_SPECIAL = {
    "token_embedding.weight": 1.0,
    "positional_embedding": 0.5,
    "visual.class_embedding": 1.0,
    "text_projection": 0.1,
    "visual.proj": 0.1,
    "logit_scale": 1.0,
}


def test_clip_hf_round_trip_and_config():
    model = seeded(clip.CLIP(SMALL_CLIP), 1, CLIP_SPECIAL)
    sd = model.state_dict()
    hf = clip.to_hf_state_dict(sd)
    assert "vision_model.pre_layrnorm.weight" in hf
    assert hf["text_projection.weight"].shape == (32, 128)
    assert hf["text_model.encoder.layers.1.self_attn.k_proj.weight"].shape == (128, 128)
    back = clip.from_hf_state_dict(hf)
    assert back.keys() == sd.keys()
    assert all(torch.equal(back[k], sd[k]) for k in sd)
    assert clip.config_from_openai_state_dict(sd) == SMALL_CLIP
    cfg = clip.hf_config(SMALL_CLIP, 48, 49)
    assert clip.config_from_hf(cfg) == SMALL_CLIP
    assert cfg["text_config"]["hidden_act"] == "quick_gelu"
    assert cfg["vision_config"]["num_attention_heads"] == 2


def _hf_layer(sd: dict, p: str, x: torch.Tensor, heads: int, mask: torch.Tensor | None):
    """One CLIP encoder layer from HF-named weights, written out by hand."""

    def lin(name, t):
        return t @ sd[f"{p}{name}.weight"].t() + sd[f"{p}{name}.bias"]

    def ln(name, t):
        return F.layer_norm(t, t.shape[-1:], sd[f"{p}{name}.weight"], sd[f"{p}{name}.bias"], 1e-5)

    b, n, w = x.shape
    h = ln("layer_norm1", x)
    q, k, v = (lin(f"self_attn.{s}_proj", h).view(b, n, heads, -1).transpose(1, 2) for s in "qkv")
    att = q @ k.transpose(-1, -2) / math.sqrt(w // heads)
    if mask is not None:
        att = att + mask
    y = (att.softmax(-1) @ v).transpose(1, 2).reshape(b, n, w)
    x = x + lin("self_attn.out_proj", y)
    return x + lin("mlp.fc2", clip.quick_gelu(lin("mlp.fc1", ln("layer_norm2", x))))


def test_clip_hf_weights_compute_the_same_embeddings():
    model = seeded(clip.CLIP(SMALL_CLIP), 2, CLIP_SPECIAL)
    sd = clip.to_hf_state_dict(model.state_dict())
    ids = torch.tensor([[48, 5, 7, 9, 49, 0, 0, 0, 0, 0, 0, 0], [48, 3, 49] + [0] * 9])
    pixels = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        x = sd["text_model.embeddings.token_embedding.weight"][ids]
        x = x + sd["text_model.embeddings.position_embedding.weight"]
        for i in range(2):
            x = _hf_layer(sd, f"text_model.encoder.layers.{i}.", x, 2, clip.causal_mask(12))
        x = F.layer_norm(
            x,
            (128,),
            sd["text_model.final_layer_norm.weight"],
            sd["text_model.final_layer_norm.bias"],
            1e-5,
        )
        text = x[torch.arange(2), ids.argmax(-1)] @ sd["text_projection.weight"].t()
        e = "vision_model.embeddings."
        v = F.conv2d(pixels, sd[e + "patch_embedding.weight"], stride=8).flatten(2).transpose(1, 2)
        v = torch.cat([sd[e + "class_embedding"].expand(2, 1, 128), v], 1)
        v = v + sd[e + "position_embedding.weight"]
        v = F.layer_norm(
            v,
            (128,),
            sd["vision_model.pre_layrnorm.weight"],
            sd["vision_model.pre_layrnorm.bias"],
            1e-5,
        )
        for i in range(2):
            v = _hf_layer(sd, f"vision_model.encoder.layers.{i}.", v, 2, None)
        v = F.layer_norm(
            v[:, 0],
            (128,),
            sd["vision_model.post_layernorm.weight"],
            sd["vision_model.post_layernorm.bias"],
            1e-5,
        )
        image = v @ sd["visual_projection.weight"].t()
        torch.testing.assert_close(text, model.encode_text(ids), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(image, model.encode_image(pixels), atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# GPT
# ---------------------------------------------------------------------------------------------

SMALL_GPT = gpt.GPTConfig(
    vocab_size=40,
    n_layer=2,
    n_embd=32,
    n_head=4,
    block_size=24,
    n_cond_embd=16,
    uncond_embedding=True,
)
GPT_SPECIAL = {"tok_emb.weight": 1.0, "pos_emb": 0.5, "cond_proj.weight": 1.0, "uncond_emb": 1.0}


def _gpt_inputs(seed: int = 5):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randint(0, 40, (3, 20), generator=g),
        F.normalize(torch.randn(3, 16, generator=g), dim=-1),
    )


def test_gpt_hfai_key_names():
    plain = gpt.GPT(
        gpt.GPTConfig(vocab_size=40, n_layer=1, n_embd=32, n_head=4, block_size=24, n_cond_embd=16)
    )
    assert set(plain.state_dict()) == {
        "tok_emb.weight",
        "pos_emb",
        "cond_proj.weight",
        "cond_proj.bias",
        "blocks.0.mask",
        "blocks.0.encoder.self_attn.in_proj_weight",
        "blocks.0.encoder.self_attn.in_proj_bias",
        "blocks.0.encoder.self_attn.out_proj.weight",
        "blocks.0.encoder.self_attn.out_proj.bias",
        "blocks.0.encoder.linear1.weight",
        "blocks.0.encoder.linear1.bias",
        "blocks.0.encoder.linear2.weight",
        "blocks.0.encoder.linear2.bias",
        "blocks.0.encoder.norm1.weight",
        "blocks.0.encoder.norm1.bias",
        "blocks.0.encoder.norm2.weight",
        "blocks.0.encoder.norm2.bias",
        "norm.weight",
        "norm.bias",
        "head.weight",
        "head.bias",
    }
    assert plain.state_dict()["pos_emb"].shape == (1, 24, 32)


def test_gpt_is_causal():
    model = seeded(gpt.GPT(SMALL_GPT), 11, GPT_SPECIAL)
    tokens, cond = _gpt_inputs()
    with torch.no_grad():
        base = model(tokens, cond)
        assert base.shape == (3, 21, 40)
        for i in (0, 1, 7, 19):
            changed = tokens.clone()
            changed[:, i:] = (changed[:, i:] + 13) % 40
            out = model(changed, cond)
            # logits at position p see tokens 0..p-1 only: positions 0..i are unchanged
            torch.testing.assert_close(out[:, : i + 1], base[:, : i + 1], rtol=0, atol=1e-5)
            assert (out[:, i + 1 :] - base[:, i + 1 :]).abs().max() > 1e-3


def test_gpt_uncond_and_cache():
    model = seeded(gpt.GPT(SMALL_GPT), 12, GPT_SPECIAL)
    tokens, cond = _gpt_inputs()
    with torch.no_grad():
        u = model(tokens, cond, uncond=True)
        u0 = model(tokens[:, :0], None)
        torch.testing.assert_close(u[:, 0], u0[:, 0].expand(3, -1))
        assert (u[:, 0] - model(tokens, cond)[:, 0]).abs().max() > 1e-2
        mixed = model(tokens, cond, uncond=torch.tensor([True, False, True]))
        torch.testing.assert_close(mixed[0], u[0])
        torch.testing.assert_close(mixed[1], model(tokens, cond)[1])
        # explicit KV-cache math == nn.TransformerEncoderLayer recompute
        full, logits_full = model.generate(cond, 23)
        kv, logits_kv = model.generate(cond, 23, kv_cache=True)
        assert torch.equal(full, kv)
        torch.testing.assert_close(logits_full, logits_kv, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(model(full[:, :-1], cond), logits_full, atol=1e-5, rtol=1e-5)


def test_gpt_loads_with_or_without_masks():
    model = seeded(gpt.GPT(SMALL_GPT), 13, GPT_SPECIAL)
    sd = model.state_dict()
    for source in (sd, gpt.strip_masks(sd)):
        loaded = gpt.load_gpt(source, SMALL_GPT)
        assert all(torch.equal(loaded.state_dict()[k], v) for k, v in sd.items())


# ---------------------------------------------------------------------------------------------
# VQGAN
# ---------------------------------------------------------------------------------------------

SMALL_VQ = vqgan.VQGANConfig(
    embed_dim=8,
    n_embed=20,
    ch=32,
    ch_mult=(1, 2),
    num_res_blocks=1,
    attn_resolutions=(8,),
    resolution=16,
    z_channels=8,
    norm_eps=1e-5,
)


class _HResnet(nn.Module):
    """HFAiLab's ResnetBlock layout: Sequential(GN, SiLU, Conv, GN, SiLU, Dropout, Conv)."""

    def __init__(self, cin, cout):
        super().__init__()
        self.block = nn.Sequential(
            nn.GroupNorm(32, cin),
            nn.SiLU(),
            nn.Conv2d(cin, cout, 3, 1, 1),
            nn.GroupNorm(32, cout),
            nn.SiLU(),
            nn.Dropout(0.0),
            nn.Conv2d(cout, cout, 3, 1, 1),
        )
        self.shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x):
        return (self.shortcut(x) if self.shortcut is not None else x) + self.block(x)


class _HAttn(nn.Module):
    """HFAiLab's AttnBlock layout: GroupNorm + single-head nn.MultiheadAttention."""

    def __init__(self, c):
        super().__init__()
        self.norm = nn.GroupNorm(32, c)
        self.attn = nn.MultiheadAttention(c, 1, batch_first=True)

    def forward(self, x):
        b, c, h, w = x.shape
        t = self.norm(x).flatten(2).transpose(1, 2)
        out = self.attn(t, t, t, need_weights=False)[0]
        return x + out.transpose(1, 2).reshape(b, c, h, w)


class _HResample(nn.Module):
    def __init__(self, c, down):
        super().__init__()
        self.down = down
        self.conv = nn.Conv2d(c, c, 3, 2 if down else 1, 0 if down else 1)

    def forward(self, x):
        if self.down:
            return self.conv(F.pad(x, (0, 1, 0, 1)))
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class _HFAiLayout(nn.Module):
    """A model with HFAiLab's module tree (our own code), to check the key map numerically."""

    def __init__(self, c: vqgan.VQGANConfig):
        super().__init__()
        enc, res, cin = [], c.resolution, c.ch
        for i, m in enumerate(c.ch_mult):
            for _ in range(c.num_res_blocks):
                enc.append(_HResnet(cin, c.ch * m))
                cin = c.ch * m
                if res in c.attn_resolutions:
                    enc.append(_HAttn(cin))
            if i != len(c.ch_mult) - 1:
                enc.append(_HResample(cin, True))
                res //= 2
        self.encoder = nn.Module()
        self.encoder.conv_in = nn.Conv2d(c.in_channels, c.ch, 3, 1, 1)
        self.encoder.down = nn.Sequential(*enc)
        self.encoder.mid = nn.Sequential(_HResnet(cin, cin), _HAttn(cin), _HResnet(cin, cin))
        self.encoder.final = nn.Sequential(
            nn.GroupNorm(32, cin),
            nn.SiLU(),
            nn.Conv2d(cin, c.z_channels, 3, 1, 1),
            nn.Conv2d(c.z_channels, c.z_channels, 1),
        )
        dec = []
        for i in reversed(range(len(c.ch_mult))):
            for _ in range(c.num_res_blocks + 1):
                dec.append(_HResnet(cin, c.ch * c.ch_mult[i]))
                cin = c.ch * c.ch_mult[i]
                if res in c.attn_resolutions:
                    dec.append(_HAttn(cin))
            if i != 0:
                dec.append(_HResample(cin, False))
                res *= 2
        top = c.ch * c.ch_mult[-1]
        self.decoder = nn.Module()
        self.decoder.quant_conv_in = nn.Conv2d(c.z_channels, c.z_channels, 1)
        self.decoder.conv_in = nn.Conv2d(c.z_channels, top, 3, 1, 1)
        self.decoder.mid = nn.Sequential(_HResnet(top, top), _HAttn(top), _HResnet(top, top))
        self.decoder.up = nn.Sequential(*dec)
        self.decoder.final = nn.Sequential(
            nn.GroupNorm(32, cin), nn.SiLU(), nn.Conv2d(cin, c.out_ch, 3, 1, 1)
        )
        self.quantizer = nn.Module()
        self.quantizer.embedding = nn.Embedding(c.n_embed, c.embed_dim)

    def encode(self, x):
        e = self.encoder
        return e.final(e.mid(e.down(e.conv_in(x))))

    def decode(self, z):
        d = self.decoder
        return d.final(d.up(d.mid(d.conv_in(d.quant_conv_in(z)))))


def test_vqgan_hfai_key_map_round_trip_and_numerics():
    model = seeded(vqgan.VQGAN(SMALL_VQ), 21, {"quantize.embedding.weight": 1.0})
    sd = model.state_dict()
    hsd = vqgan.taming_to_hfai(sd, SMALL_VQ)
    back = vqgan.hfai_to_taming({**hsd, "discriminator.x.weight": torch.zeros(1)}, SMALL_VQ)
    assert back.keys() == sd.keys() and all(torch.equal(back[k], sd[k]) for k in sd)

    layout = _HFAiLayout(SMALL_VQ).eval()
    layout.load_state_dict(hsd, strict=True)  # every HFAiLab-layout key is produced, no more
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(4)) * 2 - 1
    idx = torch.randint(0, 20, (2, 64), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        enc = model.encode(x)
        torch.testing.assert_close(layout.encode(x), enc["latent"], atol=1e-5, rtol=1e-5)
        z_q = layout.quantizer.embedding(idx).view(2, 8, 8, 8).permute(0, 3, 1, 2)
        torch.testing.assert_close(
            layout.decode(z_q), model.decode_indices(idx), atol=1e-5, rtol=1e-5
        )
        flat = enc["latent"].permute(0, 2, 3, 1).reshape(-1, 8)
        nearest = torch.cdist(flat, layout.quantizer.embedding.weight).argmin(1).view(2, 64)
        assert torch.equal(nearest, enc["indices"])


def test_vqgan_attention_matches_plain_math():
    block = seeded(vqgan.AttnBlock(32, 1e-6), 22)
    x = torch.randn(1, 32, 4, 4, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        h = block.norm(x).flatten(2)  # [1, C, N]
        q, k, v = (
            F.conv2d(h.view_as(x), getattr(block, n).weight, getattr(block, n).bias).flatten(2)
            for n in "qkv"
        )
        w = torch.einsum("bci,bcj->bij", q, k) / math.sqrt(32)
        out = torch.einsum("bij,bcj->bci", w.softmax(-1), v).view_as(x)
        torch.testing.assert_close(block(x), x + block.proj_out(out), atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# tokenizer
# ---------------------------------------------------------------------------------------------


def test_tokenizer_format_and_rules(tmp_path):
    merges = tokenizer.learn_merges(["a red circle on the left", "a red square"], 12)
    tokenizer.write_files(merges, tmp_path)
    lines = (tmp_path / "merges.txt").read_text().splitlines()
    assert lines[0] == "#version: 0.2" and len(lines) == 13
    vocab = json.loads((tmp_path / "vocab.json").read_text(encoding="utf-8"))
    assert vocab["!"] == 0 and vocab["!</w>"] == 256 and vocab[lines[1].replace(" ", "")] == 512
    assert vocab["<|endoftext|>"] == len(vocab) - 1 == max(vocab.values())
    tok = tokenizer.Tokenizer.from_dir(tmp_path)
    assert tok.decode(tok.encode("A  Red\tcircle!")) == "a red circle !"
    ctx = tok.context("a red circle", 77)
    assert ctx[0] == tok.bos_id and ctx[ctx.index(tok.eot_id) + 1 :] == [0] * (
        76 - ctx.index(tok.eot_id)
    )
    long = tok.context(" ".join(["red"] * 100), 77)
    assert len(long) == 77 and long[-1] == tok.eot_id and long.count(tok.eot_id) == 1


# ---------------------------------------------------------------------------------------------
# committed fixtures agree with the reference code
# ---------------------------------------------------------------------------------------------

needs_fixtures = pytest.mark.skipif(
    not (FIXTURES / "tiny_model" / "model.json").exists(), reason="fixtures not generated"
)


@needs_fixtures
def test_fixtures_reproduce():
    m = FIXTURES / "tiny_model"
    model_json = json.loads((m / "model.json").read_text())
    cfg = json.loads((m / model_json["clip"]["config"]).read_text())
    hf_model = clip.load_hf(load_file(str(m / "clip/model.safetensors")), cfg)
    oa_model = clip.load_openai(load_file(str(FIXTURES / "clip_openai/model.safetensors")))
    io = load_file(str(FIXTURES / "io/clip.safetensors"))
    tok = tokenizer.Tokenizer.from_dir(m / "tokenizer")
    cases = json.loads((FIXTURES / "io/tokenizer_cases.json").read_text())["cases"]
    assert all(tok.context(c["text"]) == c["input_ids"] for c in cases)
    with torch.no_grad():
        for model in (hf_model, oa_model):
            torch.testing.assert_close(
                model.encode_text(io["input_ids"]), io["text_embeds"], atol=1e-4, rtol=1e-4
            )
            torch.testing.assert_close(
                model.encode_image(io["pixel_values"]), io["image_embeds"], atol=1e-4, rtol=1e-4
            )

    g = load_file(str(FIXTURES / "io/gpt.safetensors"))
    gcfg = gpt.GPTConfig.load(m / "gpt/config.json")
    prior = gpt.load_gpt(load_file(str(m / "gpt/model.safetensors")), gcfg)
    with torch.no_grad():
        torch.testing.assert_close(
            prior(g["prefix_tokens"], g["cond_embeds"]), g["logits"], atol=1e-4, rtol=1e-4
        )
        torch.testing.assert_close(
            prior(g["prefix_tokens"], g["cond_embeds"], uncond=True),
            g["logits_uncond"],
            atol=1e-4,
            rtol=1e-4,
        )
        tokens, _ = prior.generate(g["cond_embeds"], 256, kv_cache=True)
    assert torch.equal(tokens, g["greedy_tokens"])

    for d, cfg_path, weights, layout in (
        (
            FIXTURES / "io/vqgan.safetensors",
            m / "vqgan/config.json",
            m / "vqgan/model.safetensors",
            "taming",
        ),
        (
            FIXTURES / "vqgan_hfai/io.safetensors",
            FIXTURES / "vqgan_hfai/config.json",
            FIXTURES / "vqgan_hfai/model.safetensors",
            "hfai",
        ),
    ):
        v = load_file(str(d))
        vcfg = vqgan.VQGANConfig.load(cfg_path)
        sd = load_file(str(weights))
        if layout == "hfai":
            sd = vqgan.hfai_to_taming(sd, vcfg)
        model = vqgan.load_vqgan(sd, vcfg)
        with torch.no_grad():
            torch.testing.assert_close(
                model.decode_indices(v["decode_tokens"]), v["decoded"], atol=1e-4, rtol=1e-4
            )
            enc = model.encode(v["encode_image"])
        torch.testing.assert_close(enc["latent"], v["encode_latent"], atol=1e-4, rtol=1e-4)
        assert torch.equal(enc["indices"], v["encode_indices"])
