"""Writes the fuzzers' seed corpora and dictionaries under Fuzz/ (deterministic; committed).

    python training/scripts/fuzz_corpus.py            (make fuzz-corpus)

Fuzz/corpus/TARGET/ holds small valid files of every flavour the parser knows (so the fuzzer
starts from deep inside it) and hand-crafted edge cases: the structures that crashed or hung
the release build before issue 11 (byte counts that overflow, pickle bombs, zip sizes claiming
gigabytes, a JPEG claiming 16384 x 16384 pixels, context lengths out of range). Crashes a fuzzer
finds are added as crash-*.bin by hand (never regenerated away: this script only writes seed-*
files). Fuzz/dictionaries/TARGET.dict gives libFuzzer the format's keywords: pickle opcodes,
zip record signatures, JSON keys, dtype names and integer boundaries.
"""

from __future__ import annotations

import io
import json
import pickle
import struct
import sys
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.numpy import save as st_save

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hostile_checkpoints import long1, tensor_pickle, text
from hostile_checkpoints import torch_zip as hostile_zip

ROOT = Path(__file__).resolve().parents[2]
FUZZ = ROOT / "Fuzz"
TINY = ROOT / "Tests/ClipGenEngineTests/Fixtures/tiny_model"
# The model target's first byte chooses the file it replaces (FuzzFiles.modelFiles).
MODEL_FILES = ["model.json", "clip/config.json", "gpt/config.json", "vqgan/config.json",
               "tokenizer/vocab.json", "tokenizer/merges.txt"]
BOUNDARIES = ["0", "-1", "1", "2147483647", "2147483648", "4294967295", "4294967296",
              "4611686018427387904", "9223372036854775807", "9223372036854775808",
              "18446744073709551615", "1e308", "-0", "NaN"]


def write(target: str, seeds: dict[str, bytes]) -> None:
    d = FUZZ / "corpus" / target
    d.mkdir(parents=True, exist_ok=True)
    for old in d.glob("seed-*"):
        old.unlink()
    for name, data in seeds.items():
        (d / f"seed-{name}").write_bytes(data)


def dictionary(target: str, comment: str, words: list[str | bytes]) -> None:
    d = FUZZ / "dictionaries"
    d.mkdir(parents=True, exist_ok=True)
    lines = [f"# {comment}"]
    seen = set()
    for w in words:
        b = w.encode() if isinstance(w, str) else w
        if b in seen:
            continue
        seen.add(b)
        esc = "".join(chr(c) if 0x20 <= c < 0x7F and c not in (0x22, 0x5C) else f"\\x{c:02x}"
                      for c in b)
        lines.append(f'"{esc}"')
    (d / f"{target}.dict").write_text("\n".join(lines) + "\n")


def safetensors_bytes(header: dict, data: bytes = b"") -> bytes:
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + data


def torch_bytes(obj, legacy: bool = False) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf, _use_new_zipfile_serialization=not legacy)
    return buf.getvalue()


def small_state() -> OrderedDict:
    g = torch.Generator().manual_seed(0)
    return OrderedDict([
        ("w", torch.randn(3, 4, generator=g)),
        ("b", torch.randn(4, generator=g).half()),
        ("e", torch.randn(2, 2, generator=g).bfloat16()),
        ("i", torch.arange(6, dtype=torch.int64).view(2, 3)),
        ("t", torch.randn(4, 3, generator=g).t()),  # strided view
        ("x", torch.randn(1, 3, generator=g).expand(4, 3)),  # stride 0
        ("s", torch.tensor(2.5)),  # a scalar
    ])


def safetensors_seeds() -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    arrays = {"a.weight": rng.standard_normal((3, 4)).astype(np.float32),
              "a.bias": rng.standard_normal(4).astype(np.float16),
              "ids": np.arange(6, dtype=np.int64).reshape(2, 3),
              "flag": np.array([True, False]), "s": np.array(1.5, dtype=np.float32)}
    f32 = struct.pack("<4f", 1, 2, 3, 4)
    return {
        "valid.safetensors": st_save(arrays, metadata={"format": "pt"}),
        "empty.safetensors": safetensors_bytes({}),
        "overflow.safetensors": safetensors_bytes(
            {"w": {"dtype": "F32", "shape": [2**62, 4], "data_offsets": [0, 16]}}, f32),
        "negative.safetensors": safetensors_bytes(
            {"w": {"dtype": "F32", "shape": [-1, 4], "data_offsets": [0, 16]}}, f32),
        "offsets-past-end.safetensors": safetensors_bytes(
            {"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 1 << 40]}}, f32),
        "header-too-long.safetensors": struct.pack("<Q", 1 << 40) + b"{}",
        "zero-dim.safetensors": safetensors_bytes(
            {"w": {"dtype": "F32", "shape": [0, 4], "data_offsets": [0, 0]}}),
        "bf16.safetensors": safetensors_bytes(
            {"w": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}}, b"\x80\x3f\x00\x40"),
    }


def checkpoint_seeds() -> dict[str, bytes]:
    seeds = {
        "zip.pt": torch_bytes(small_state()),
        "legacy.pt": torch_bytes(small_state(), legacy=True),
        "nested.pt": torch_bytes({"state_dict": OrderedDict(
            [("model.w", torch.ones(2, 2)), ("model.b", torch.zeros(2))]),
            "hyper_parameters": {"n_embed": 16, "ddconfig": {"ch": 8, "ch_mult": [1, 2]}}}),
        "expanded.pt": hostile_zip(tensor_pickle([2**40, 4], [0, 1], 4),
                                   {"0": struct.pack("<4f", 1, 2, 3, 4)}),
        "negative-stride.pt": hostile_zip(tensor_pickle([4, 4], [-1, 1], 4),
                                          {"0": struct.pack("<4f", 1, 2, 3, 4)}),
        "laughs.pt": hostile_zip(b"\x80\x02)" + b"2\x86" * 60 + b".", {}),
        "deep.pt": hostile_zip(b"\x80\x02)" + b"\x85" * 5000 + b".", {}),
        "os-system.pt": hostile_zip(b"\x80\x02cos\nsystem\n(" + text("true") + b"tR.", {}),
    }
    # A zip entry claiming ~4 GB uncompressed.
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
        z.writestr("archive/version", b"3\n")
    b = bytearray(buf.getvalue())
    local, central = b.find(b"PK\x03\x04"), b.find(b"PK\x01\x02")
    b[local + 22:local + 26] = struct.pack("<I", 0xFFFFFFF0)
    b[central + 24:central + 28] = struct.pack("<I", 0xFFFFFFF0)
    seeds["claims-4gb.pt"] = bytes(b)
    # TorchScript: a scripted module's archive (code/, constants.pkl, data.pkl).
    m = torch.jit.script(torch.nn.Linear(2, 2))
    buf = io.BytesIO()
    torch.jit.save(m, buf)
    seeds["torchscript.pt"] = buf.getvalue()
    return seeds


def pickle_seeds() -> dict[str, bytes]:
    value = {"a": [1, 2.5, "x", None, True], "b": (1, (2, 3)), "c": {"d": b"bytes"},
             "big": 2**70, "neg": -(2**40)}
    seeds = {f"protocol{p}.pkl": pickle.dumps(value, protocol=p) for p in (0, 2, 4)}
    seeds["ordered.pkl"] = pickle.dumps(OrderedDict(a=1, b=[1, 2]), protocol=2)
    seeds["tensor.pkl"] = tensor_pickle([2, 2], [2, 1], 4)
    seeds["laughs.pkl"] = b"\x80\x02)" + b"2\x86" * 40 + b"."
    seeds["deep.pkl"] = b"\x80\x02" + b"]" * 3000 + b"a" * 2999 + b"."
    seeds["memo.pkl"] = b"\x80\x02]q\x00(h\x00h\x00e." + long1(-1)
    seeds["os-system.pkl"] = b"\x80\x02cos\nsystem\n(" + text("true") + b"tR."
    seeds["eval.pkl"] = b"\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00\x8c\x08builtins\x8c\x04eval\x93."
    return seeds


def image_seeds() -> dict[str, bytes]:
    rng = np.random.default_rng(1)
    rgb = Image.fromarray(rng.integers(0, 256, (7, 5, 3), dtype=np.uint8))
    out: dict[str, bytes] = {}

    def save(name: str, im: Image.Image, fmt: str, **kw) -> None:
        buf = io.BytesIO()
        im.save(buf, fmt, **kw)
        out[name] = buf.getvalue()

    save("rgb.png", rgb, "PNG")
    save("rgba.png", rgb.convert("RGBA"), "PNG")
    save("palette.png", rgb.convert("P"), "PNG", transparency=0)
    save("gray.png", rgb.convert("L"), "PNG")
    save("gray1.png", rgb.convert("1"), "PNG")
    save("gray16.png", Image.fromarray((np.arange(35, dtype=np.uint16) * 1800).reshape(7, 5)), "PNG")
    save("interlaced.png", rgb, "PNG", interlace=1)  # Pillow ignores it; kept as a variant
    save("baseline.jpg", rgb, "JPEG", quality=80)
    save("progressive.jpg", rgb, "JPEG", progressive=True)
    save("gray.jpg", rgb.convert("L"), "JPEG")
    save("cmyk.jpg", rgb.convert("CMYK"), "JPEG")
    save("444.jpg", rgb, "JPEG", subsampling=0)
    jpg = bytearray(out["baseline.jpg"])
    sof = next(i for i in range(len(jpg) - 9) if jpg[i] == 0xFF and jpg[i + 1] in (0xC0, 0xC2))
    jpg[sof + 5:sof + 9] = struct.pack(">HH", 16384, 16384)
    out["claims-16384.jpg"] = bytes(jpg)
    png = bytearray(out["rgb.png"])
    png[16:24] = struct.pack(">II", 0x7FFFFFFF, 0x7FFFFFFF)  # IHDR width/height (CRC now wrong)
    out["claims-huge.png"] = bytes(png)
    out["truncated.png"] = out["rgb.png"][:40]
    return out


def model_seeds() -> dict[str, bytes]:
    seeds = {}
    for i, name in enumerate(MODEL_FILES):
        seeds[f"{i}-{name.replace('/', '-')}"] = bytes([i]) + (TINY / name).read_bytes()
    manifest = json.loads((TINY / "model.json").read_text())
    for n in (-1, 0, 1, 1000, 2**62):
        m = json.loads(json.dumps(manifest))
        m["tokenizer"]["context_length"] = n
        seeds[f"0-context-{n}.json"] = b"\x00" + json.dumps(m).encode()
    m = json.loads(json.dumps(manifest))
    m["defaults"] = {"temperature": 0.7, "top_k": 0, "top_p": 1, "guidance": 3, "candidates": 4}
    m["sample_prompts"] = ["a red circle", ""]
    seeds["0-defaults.json"] = b"\x00" + json.dumps(m).encode()
    vq = json.loads((TINY / "vqgan/config.json").read_text())
    for key, value in (("ch_mult", [1, 0]), ("ch", 1 << 40), ("resolution", 0), ("z_channels", -1)):
        v = {**vq, key: value}
        seeds[f"3-vqgan-{key}.json"] = b"\x03" + json.dumps(v).encode()
    gpt = json.loads((TINY / "gpt/config.json").read_text())
    for key, value in (("n_head", 0), ("block_size", 1 << 31), ("vocab_size", 0)):
        g = {**gpt, key: value}
        seeds[f"2-gpt-{key}.json"] = b"\x02" + json.dumps(g).encode()
    return seeds


def json_keys(value, out: set[str]) -> set[str]:
    if isinstance(value, dict):
        for k, v in value.items():
            out.add(k)
            json_keys(v, out)
    elif isinstance(value, list):
        for v in value:
            json_keys(v, out)
    elif isinstance(value, str) and len(value) < 40:
        out.add(value)
    return out


def main() -> None:
    torch.manual_seed(0)
    write("safetensors", safetensors_seeds())
    dictionary("safetensors", "safetensors: header keys, dtypes, integer boundaries", [
        '"dtype"', '"shape"', '"data_offsets"', '"__metadata__"', *[f'"{t}"' for t in (
            "F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL", "F8_E4M3")],
        *BOUNDARIES, "[", "]", "{", "}", ":", ",", b"\xff\xff\xff\xff\xff\xff\xff\x7f",
        b"\x00\x00\x00\x00\x01\x00\x00\x00"])

    write("checkpoint", checkpoint_seeds())
    opcodes = [b"\x80\x02", b"\x80\x04", b"\x95", b"(", b")", b".", b"]", b"}", b"q", b"r", b"h",
               b"j", b"\x93", b"\x94", b"\x85", b"\x86", b"\x87", b"t", b"s", b"u", b"e", b"a",
               b"R", b"b", b"Q", b"K", b"M", b"J", b"\x8a", b"\x8b", b"X", b"\x8c", b"\x8d",
               b"G", b"N", b"\x88", b"\x89", b"2", b"0", b"1", b"p", b"g", b"l", b"d", b"C",
               b"B", b"U", b"T", b"\x81", b"\x92", b"\x8f", b"\x90", b"\x91"]
    globals_ = [b"ctorch._utils\n_rebuild_tensor_v2\n", b"ctorch\nFloatStorage\n",
                b"ctorch\nHalfStorage\n", b"ctorch\nBFloat16Storage\n", b"ctorch\nLongStorage\n",
                b"ccollections\nOrderedDict\n", b"ctorch._utils\n_rebuild_parameter\n",
                b"cos\nsystem\n", b"cbuiltins\neval\n", b"csubprocess\nPopen\n"]
    dictionary("checkpoint", "PyTorch zip/legacy/TorchScript: zip records, entry names, pickle",
               [b"PK\x03\x04", b"PK\x01\x02", b"PK\x05\x06", b"PK\x06\x06", b"PK\x06\x07",
                b"\x01\x00", b"\xff\xff\xff\xff", b"\xff\xff", "archive/data.pkl",
                "archive/version", "archive/data/0", "archive/constants.pkl", "archive/code/",
                "archive/byteorder", "little", "big", "storage", "cpu", *opcodes, *globals_,
                *BOUNDARIES])

    write("pickle", pickle_seeds())
    dictionary("pickle", "pickle opcodes and the globals a checkpoint names",
               [*opcodes, *globals_, b"\xff\xff\xff\x7f", b"\x00\x00\x00\x80"])

    write("image", image_seeds())
    dictionary("image", "PNG chunks and JPEG markers; sizes at their limits", [
        b"\x89PNG\r\n\x1a\n", "IHDR", "IDAT", "IEND", "PLTE", "tRNS", "gAMA", "iCCP", "tEXt",
        "zTXt", "iTXt", "sBIT", "acTL", b"\xff\xd8", b"\xff\xc0", b"\xff\xc1", b"\xff\xc2",
        b"\xff\xc4", b"\xff\xdb", b"\xff\xda", b"\xff\xd9", b"\xff\xdd", b"\xff\xe0", b"\xff\xee",
        "JFIF", "Adobe", b"\x00\x00\x40\x00", b"\x40\x00", b"\xff\xff", b"\x7f\xff\xff\xff",
        b"\x00\x00\x00\x00"])

    write("model", model_seeds())
    keys: set[str] = set()
    for name in MODEL_FILES[:4]:
        json_keys(json.loads((TINY / name).read_text()), keys)
    keys |= {"defaults", "temperature", "top_k", "top_p", "guidance", "candidates",
             "sample_prompts", "context_length", "conditioning", "normalize", "layout", "hf",
             "openai", "taming", "hfai", "uncond_emb", "assumptions"}
    dictionary("model", "model.json and config keys, layouts, integer boundaries",
               [f'"{k}"' for k in sorted(keys)] + BOUNDARIES + ["<|endoftext|>", "</w>"])

    write("tokenizer", {
        "plain.txt": b"a large red circle on the left",
        "punctuation.txt": b"It's a RED circle!!! ... (on the left) -- isn't it? 123,456.7",
        "combining.txt": b"e" + "\u0301".encode() * 200,
        "rtl.txt": "\u05e9\u05dc\u05d5\u05dd \u202eabc\u202c \u0627\u0644\u0633\u0644\u0627\u0645".encode(),
        "nul.txt": b"a red\x00circle\x00\x00",
        "invalid-utf8.txt": b"a \xff\xfe red \xc3\x28 circle \xed\xa0\x80",
        "mojibake.txt": "cafÃ© donâ€™t".encode(),
        "html.txt": b"a &amp; b &lt;red&gt; &#x41; &quot;circle&quot;",
        "emoji.txt": "a \U0001F468\u200d\U0001F469\u200d\U0001F467 family \U0001F534".encode(),
        "special.txt": b"<|startoftext|> a red <|endoftext|> circle",
    })
    dictionary("tokenizer", "CLIP tokenizer: special tokens, contractions, marks, entities", [
        "<|startoftext|>", "<|endoftext|>", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d",
        b"\xcc\x81", b"\xe2\x80\x8f", b"\xe2\x80\xae", b"\xef\xbb\xbf", b"\xe2\x80\x8d",
        b"\xc3\xa2\xe2\x82\xac\xe2\x84\xa2", b"\xc3\x83", "&amp;", "&lt;", "&#", "&#x", " ",
        "\t", "\n", b"\x00", b"\xff"])

    styles = (ROOT / "samples/styles.json").read_bytes()
    write("styles", {
        "samples.json": styles,
        "empty.json": b"[]",
        "no-placeholder.json": b'[{"name": "x", "template": "no placeholder"}]',
        "missing-key.json": b'[{"name": "x"}]',
        "nested.json": b"[" * 2000 + b"]" * 2000,
        "object.json": b'{"name": "x", "template": "{prompt}"}',
    })
    dictionary("styles", "styles.json keys and JSON punctuation",
               ['"name"', '"template"', '"model"', '"{prompt}"', "{prompt}", "[", "]", "{", "}",
                ":", ",", '"', "\\u0000", "\\ud800"])

    themes = {p.name: p.read_bytes() for p in sorted((ROOT / "themes").glob("*.theme"))}
    write("theme", {**themes, "bad-colour.theme": b"text = #12345g\n",
                    "unknown-key.theme": b"nonsense = #ffffff\n", "no-equals.theme": b"text\n",
                    "indexed.theme": b"text = 255\nbackground = 256\naccent = -1\n"})
    roles = ["text", "background", "muted", "accent", "border", "border.focus", "header.text",
             "header.background", "status.text", "status.background", "selection.text",
             "selection.background", "progress.done", "progress.todo", "error", "warning",
             "success", "favorite", "key"]
    dictionary("theme", "theme roles and colour syntax",
               [*roles, "name", "=", "#", ";", "default", "#ffffff", "#000", "255", "256", "\n"])

    write("terminal", {
        "da1-sixel.bin": b"\x1b[?62;4;22c",
        "da1-plain.bin": b"\x1b[?1;2c",
        "cell-size.bin": b"\x1b[6;20;10t",
        "text-area.bin": b"\x1b[4;600;800t",
        "all-with-typeahead.bin": b"ab\x1b[?64;4c\x1b[6;16;8tcd\x1b[4;480;640tef",
        "huge-numbers.bin": b"\x1b[6;99999999999999999999;1t\x1b[?" + b"4;" * 500 + b"c",
        "truncated.bin": b"\x1b[?62;4",
    })
    dictionary("terminal", "terminal replies: CSI, DA1, window reports",
               [b"\x1b[", b"\x1b[?", b"\x1b", "c", "t", ";", "4", "6", "14", "16", "62", "64",
                "99999999999"])
    print(f"wrote {FUZZ / 'corpus'} and {FUZZ / 'dictionaries'}")


if __name__ == "__main__":
    main()
