"""CLIP's byte-level BPE tokenizer, in the real file format, plus a tiny BPE trainer.

File format (identical to openai/clip-vit-base-patch32's `vocab.json` / `merges.txt`):

    merges.txt   first line "#version: 0.2", then one merge per line: "left right"
                 (two symbols separated by one space; rank = line index starting at 0
                 after the header).
    vocab.json   {token: id}. Ids, in order:
                   0..255     the 256 byte-unicode characters, in bytes_to_unicode() order
                   256..511   the same 256 characters + "</w>"
                   512..      one token per merge, "left" + "right", in merge order
                   V-2        "<|startoftext|>"  (BOS)
                   V-1        "<|endoftext|>"    (EOT, the highest id: CLIP pools at argmax)

Encoding text (what `encode` does, same steps as CLIP's SimpleTokenizer):
    1. clean: html.unescape twice, strip; collapse runs of whitespace to one space; strip;
       lowercase. (CLIP also runs ftfy.fix_text first; it is a no-op for ordinary text and
       is not reproduced here.)
    2. split with CLIP's pattern
         <|startoftext|>|<|endoftext|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+
       (\\p{L} / \\p{N} are spelled out as explicit classes from `unicodedata`, so the stdlib
       `re` matches what the `regex` module does, up to the Unicode version).
    3. each piece: UTF-8 bytes -> byte-unicode characters; the last character gets "</w>";
       repeatedly merge the adjacent pair with the lowest merge rank (all non-overlapping
       occurrences, left to right) until no pair is in merges.txt.
    4. look each resulting symbol up in vocab.json.

Context (open_clip's `tokenize`): [BOS] + ids + [EOT], then zero padding to 77. Truncation
rule: if the result is longer than 77, keep the first 77 and overwrite the last with EOT.
"""

from __future__ import annotations

import html
import itertools
import json
import re
import sys
import unicodedata
from collections import Counter
from pathlib import Path

BOS = "<|startoftext|>"
EOT = "<|endoftext|>"
END_OF_WORD = "</w>"
MERGES_HEADER = "#version: 0.2"


def _category_class(prefix: str) -> str:
    """A regex character-class body for every code point whose Unicode category starts with
    `prefix` ("L" letters, "N" numbers), so the stdlib `re` can express \\p{L} / \\p{N}."""
    parts, start, prev = [], None, None
    for cp in range(sys.maxunicode + 1):
        if unicodedata.category(chr(cp)).startswith(prefix):
            if start is None:
                start = cp
            prev = cp
        elif start is not None:
            parts.append(
                re.escape(chr(start)) + ("-" + re.escape(chr(prev)) if prev > start else "")
            )
            start = None
    if start is not None:
        parts.append(re.escape(chr(start)) + "-" + re.escape(chr(prev)))
    return "".join(parts)


_LETTERS = _category_class("L")
_NUMBERS = _category_class("N")
PATTERN = re.compile(
    r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d"
    rf"|[{_LETTERS}]+|[{_NUMBERS}]|[^\s{_LETTERS}{_NUMBERS}]+",
    re.IGNORECASE,
)


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP byte -> printable character map.

    Bytes that are printable and not whitespace ('!'..'~', '¡'..'¬', '®'..'ÿ') map to
    themselves; the other 68 bytes map, in increasing byte order, to U+0100, U+0101, ...
    The dict's insertion order (the printable ones first) is the vocabulary order.
    """
    keep = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    table = {b: chr(b) for b in keep}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


BYTE_ENCODER = bytes_to_unicode()


def clean(text: str) -> str:
    text = html.unescape(html.unescape(text)).strip()
    return re.sub(r"\s+", " ", text).strip().lower()


def pre_tokenize(text: str) -> list[str]:
    return PATTERN.findall(clean(text))


def word_symbols(piece: str) -> list[str]:
    chars = [BYTE_ENCODER[b] for b in piece.encode("utf-8")]
    return [*chars[:-1], chars[-1] + END_OF_WORD]


def _merge(symbols: list[str], pair: tuple[str, str]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(symbols):
        if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == pair:
            out.append(symbols[i] + symbols[i + 1])
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return out


def learn_merges(texts: list[str], n_merges: int) -> list[tuple[str, str]]:
    """Greedy BPE: repeatedly merges the most frequent adjacent pair (ties: the
    lexicographically smallest pair), counting within words, weighted by word frequency."""
    words = Counter(tuple(word_symbols(p)) for t in texts for p in pre_tokenize(t))
    corpus = {w: n for w, n in words.items()}
    merges: list[tuple[str, str]] = []
    while len(merges) < n_merges:
        pairs: Counter = Counter()
        for w, n in corpus.items():
            for a, b in itertools.pairwise(w):
                pairs[(a, b)] += n
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        corpus = {tuple(_merge(list(w), best)): n for w, n in corpus.items()}
    return merges


def build_vocab(merges: list[tuple[str, str]]) -> dict[str, int]:
    tokens = list(BYTE_ENCODER.values())
    tokens += [t + END_OF_WORD for t in tokens]
    tokens += [a + b for a, b in merges]
    tokens += [BOS, EOT]
    vocab: dict[str, int] = {}
    for t in tokens:
        if t in vocab:
            raise ValueError(f"duplicate token {t!r}")
        vocab[t] = len(vocab)
    return vocab


def write_files(merges: list[tuple[str, str]], directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    vocab = build_vocab(merges)
    (directory / "vocab.json").write_text(
        json.dumps(vocab, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    lines = [MERGES_HEADER] + [f"{a} {b}" for a, b in merges]
    (directory / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


class Tokenizer:
    """Reads vocab.json + merges.txt (every merge line after the header is used)."""

    def __init__(self, vocab: dict[str, int], merges: list[tuple[str, str]]):
        self.encoder = vocab
        self.decoder = {i: t for t, i in vocab.items()}
        self.ranks = {pair: i for i, pair in enumerate(merges)}
        self.bos_id = vocab[BOS]
        self.eot_id = vocab[EOT]

    @classmethod
    def from_dir(cls, directory: Path) -> Tokenizer:
        vocab = json.loads((directory / "vocab.json").read_text(encoding="utf-8"))
        lines = (directory / "merges.txt").read_text(encoding="utf-8").split("\n")
        if lines[0].startswith("#version"):
            lines = lines[1:]
        merges = [tuple(line.split(" ")) for line in lines if line]
        return cls(vocab, merges)

    def bpe(self, piece: str) -> list[str]:
        if piece in (BOS, EOT):
            return [piece]
        symbols = word_symbols(piece)
        while len(symbols) > 1:
            pairs = set(itertools.pairwise(symbols))
            best = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if best not in self.ranks:
                break
            symbols = _merge(symbols, best)
        return symbols

    def encode_symbols(self, text: str) -> list[str]:
        return [s for p in pre_tokenize(text) for s in self.bpe(p)]

    def encode(self, text: str) -> list[int]:
        """Ids without BOS/EOT."""
        return [self.encoder[s] for s in self.encode_symbols(text)]

    def context(self, text: str, context_length: int = 77) -> list[int]:
        """[BOS] + ids + [EOT], truncated (last kept id replaced by EOT), zero-padded."""
        ids = [self.bos_id, *self.encode(text), self.eot_id]
        if len(ids) > context_length:
            ids = ids[:context_length]
            ids[-1] = self.eot_id
        return ids + [0] * (context_length - len(ids))

    def decode(self, ids: list[int]) -> str:
        """Ids -> text; "</w>" becomes a space; BOS/EOT are kept as their strings."""
        byte_decoder = {c: b for b, c in BYTE_ENCODER.items()}
        parts: list[str] = []
        buf = bytearray()
        for i in ids:
            sym = self.decoder[i]
            if sym in (BOS, EOT):
                parts += [buf.decode("utf-8", "replace"), sym]
                buf = bytearray()
                continue
            end = sym.endswith(END_OF_WORD)
            word = sym[: -len(END_OF_WORD)] if end else sym
            buf += bytes(byte_decoder[c] for c in word)
            if end:
                buf += b" "
        parts.append(buf.decode("utf-8", "replace"))
        return "".join(parts).strip()
