#!/usr/bin/env python3
"""Fetch OpenAI CLIP's BPE vocabulary and the reference token ids for the Swift tokenizer.

Usage: python3 training/scripts/fetch_clip_vocab.py OUTDIR      (usually .cache/clip-vocab)

1. Downloads the pinned open_clip_torch wheel from PyPI (`pip download --no-deps`, cached
   under .cache/wheels) and takes `open_clip/bpe_simple_vocab_16e6.txt.gz` and
   `open_clip/tokenizer.py` out of it.
2. Writes OUTDIR/vocab.json and OUTDIR/merges.txt the way Hugging Face's
   `openai/clip-vit-base-patch32` files are built from that BPE file: 256 byte tokens in
   bytes_to_unicode order, the same 256 with `</w>`, the first 48894 merges joined, then
   `<|startoftext|>` (49406) and `<|endoftext|>` (49407): 49408 entries.  merges.txt is
   `#version: 0.2` followed by those 48894 merges.
3. Writes OUTDIR/expected_ids.json: for every string in
   Tests/ClipGenEngineTests/TokenizerHardStrings.json, the ids of open_clip's
   `SimpleTokenizer` (pinned ftfy and regex, installed into .cache/pydeps when missing;
   torch is not needed) padded to 77 with open_clip's truncation rule.

Special tokens: OpenAI's CLIP (and Hugging Face's CLIPTokenizer) recognise the literal
strings `<|startoftext|>` and `<|endoftext|>` in the input text.  open_clip renamed them
`<start_of_text>`/`<end_of_text>` (same ids 49406/49407), so unmodified open_clip splits
`<|endoftext|>` into ordinary BPE pieces.  The reference here is open_clip's
SimpleTokenizer with OpenAI's names restored in its split pattern -- the tokenizer the
real weights were trained with, and the one the Swift port implements.  For each string
whose ids differ under unmodified open_clip, those ids are stored too
(`open_clip_unpatched_ids`) so the difference stays visible.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
import subprocess
import sys
import types
import zipfile
from pathlib import Path

OPEN_CLIP_VERSION = "3.3.0"
FTFY_VERSION = "6.3.1"
REGEX_VERSION = "2026.11.19"
CONTEXT_LENGTH = 77
MERGE_COUNT = 49152 - 256 - 2  # the merges open_clip (and OpenAI's CLIP) keep: 48894

REPO_ROOT = Path(__file__).resolve().parents[2]
WHEEL_CACHE = REPO_ROOT / ".cache/wheels"
# Per interpreter version: regex ships compiled code.
PYDEPS = (
    REPO_ROOT / f".cache/pydeps/py{sys.version_info.major}.{sys.version_info.minor}"
)
HARD_STRINGS = REPO_ROOT / "Tests/ClipGenEngineTests/TokenizerHardStrings.json"
OPENAI_SPLIT_PATTERN = r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"


def ensure_python_deps() -> None:
    """Put pinned ftfy and regex first on sys.path, installing them into .cache/pydeps."""
    wanted = {"ftfy": FTFY_VERSION, "regex": REGEX_VERSION}
    missing = [
        f"{name}=={version}"
        for name, version in wanted.items()
        if not (PYDEPS / f"{name}-{version}.dist-info").is_dir()
    ]
    if missing:
        print(f"installing {' '.join(missing)} into {PYDEPS}", file=sys.stderr)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--target",
                str(PYDEPS),
                "--upgrade",
                *missing,
            ],
            check=True,
        )
    sys.path.insert(0, str(PYDEPS))


def ensure_wheel() -> Path:
    """The pinned open_clip_torch wheel, downloaded once into .cache/wheels."""
    pattern = f"open_clip_torch-{OPEN_CLIP_VERSION}-*.whl"
    found = sorted(WHEEL_CACHE.glob(pattern))
    if not found:
        WHEEL_CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--disable-pip-version-check",
                "--no-deps",
                f"open_clip_torch=={OPEN_CLIP_VERSION}",
                "-d",
                str(WHEEL_CACHE),
            ],
            check=True,
        )
        found = sorted(WHEEL_CACHE.glob(pattern))
    if not found:
        sys.exit(f"error: pip did not leave {pattern} in {WHEEL_CACHE}")
    return found[0]


def extract_open_clip(wheel: Path) -> Path:
    """Unpack tokenizer.py and the BPE file side by side (tokenizer.py finds the BPE
    file next to itself) and return that folder."""
    folder = WHEEL_CACHE / f"open_clip_torch-{OPEN_CLIP_VERSION}"
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as archive:
        for name in (
            "open_clip/tokenizer.py",
            "open_clip/bpe_simple_vocab_16e6.txt.gz",
        ):
            (folder / Path(name).name).write_bytes(archive.read(name))
    return folder


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable character map (the public algorithm), in
    the order the vocabulary lists it: printable bytes as themselves, then every other byte
    as chr(256 + n) in byte order."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    mapping = {b: chr(b) for b in printable}
    others = [b for b in range(256) if b not in mapping]
    mapping.update({b: chr(256 + n) for n, b in enumerate(others)})
    return mapping


def write_vocab(bpe_gz: Path, outdir: Path) -> tuple[int, int]:
    lines = gzip.decompress(bpe_gz.read_bytes()).decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : MERGE_COUNT + 1]]
    assert len(merges) == MERGE_COUNT and all(len(m) == 2 for m in merges)
    byte_chars = list(bytes_to_unicode().values())
    tokens = (
        byte_chars + [c + "</w>" for c in byte_chars] + ["".join(m) for m in merges]
    )
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {token: index for index, token in enumerate(tokens)}
    assert len(vocab) == len(tokens) == 49408, len(vocab)
    (outdir / "vocab.json").write_text(
        json.dumps(vocab, ensure_ascii=False), encoding="utf-8"
    )
    (outdir / "merges.txt").write_text(
        "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8"
    )
    return len(vocab), len(merges)


class _AnyAttribute(types.ModuleType):
    """Stands in for a module tokenizer.py imports but SimpleTokenizer never uses
    (torch, numpy): any attribute is a placeholder class, enough for annotations."""

    def __getattr__(self, name: str) -> type:
        if name.startswith("__"):
            raise AttributeError(name)
        return type(name, (), {})


def load_open_clip_tokenizer(folder: Path) -> types.ModuleType:
    for name in ("torch", "numpy"):
        try:
            __import__(name)
        except ImportError:
            sys.modules[name] = _AnyAttribute(name)
    spec = importlib.util.spec_from_file_location(
        "open_clip_tokenizer", folder / "tokenizer.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def padded(tokens: list[int], sot: int, eot: int) -> tuple[list[int], int, bool]:
    """open_clip's rule: [sot] + encode(text) + [eot]; if longer than the context, keep the
    first CONTEXT_LENGTH and make the last one eot; pad with zeros."""
    full = [sot] + tokens + [eot]
    truncated = len(full) > CONTEXT_LENGTH
    kept = full[:CONTEXT_LENGTH]
    if truncated:
        kept[-1] = eot
    return kept + [0] * (CONTEXT_LENGTH - len(kept)), len(full), truncated


def main() -> None:
    if len(sys.argv) != 2 or sys.argv[1].startswith("-"):
        sys.exit(__doc__.split("\n\n")[1])
    outdir = Path(sys.argv[1]).resolve()
    outdir.mkdir(parents=True, exist_ok=True)

    ensure_python_deps()
    import ftfy
    import regex

    wheel = ensure_wheel()
    folder = extract_open_clip(wheel)
    bpe_gz = folder / "bpe_simple_vocab_16e6.txt.gz"
    vocab_size, merge_count = write_vocab(bpe_gz, outdir)

    module = load_open_clip_tokenizer(folder)
    unpatched = module.SimpleTokenizer(str(bpe_gz))
    reference = module.SimpleTokenizer(str(bpe_gz))
    sot, eot = reference.sot_token_id, reference.eot_token_id
    for name, token_id in (("<|startoftext|>", sot), ("<|endoftext|>", eot)):
        reference.encoder[name] = token_id
        reference.decoder[token_id] = name
        reference.cache[name] = name
    reference.pat = regex.compile(OPENAI_SPLIT_PATTERN, regex.IGNORECASE)

    cases = json.loads(HARD_STRINGS.read_text(encoding="utf-8"))
    results = []
    differing = 0
    for case in cases:
        text = case["text"]
        tokens = reference.encode(text)
        ids, count, truncated = padded(tokens, sot, eot)
        entry = {
            "name": case["name"],
            "text": text,
            "ids": ids,
            "token_count": count,
            "truncated": truncated,
            "bpe": [reference.decoder[t] for t in tokens],
        }
        plain_ids, _, _ = padded(unpatched.encode(text), sot, eot)
        if plain_ids != ids:
            entry["open_clip_unpatched_ids"] = plain_ids
            differing += 1
        results.append(entry)

    report = {
        "generator": "training/scripts/fetch_clip_vocab.py",
        "open_clip_torch": OPEN_CLIP_VERSION,
        "ftfy": ftfy.__version__,
        "regex": regex.__version__,
        "python": sys.version.split()[0],
        "bpe_sha256": hashlib.sha256(bpe_gz.read_bytes()).hexdigest(),
        "context_length": CONTEXT_LENGTH,
        "sot_id": sot,
        "eot_id": eot,
        "split_pattern": OPENAI_SPLIT_PATTERN,
        "cases": results,
    }
    (outdir / "expected_ids.json").write_text(
        json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8"
    )
    print(
        f"wrote {outdir}/vocab.json ({vocab_size} tokens), merges.txt ({merge_count} merges), "
        f"expected_ids.json ({len(results)} strings; {differing} differ under unpatched open_clip)"
    )


if __name__ == "__main__":
    main()
