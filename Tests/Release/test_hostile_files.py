"""Hostile files against the *release* binaries (what people run): each crafted file gets a
clear error naming it, within seconds, never a crash, a hang or a huge allocation.

    make test-release        (builds .build/release/clipgen, then runs this file)

The inputs are the shapes that crashed or hung the release build before (issue 11): a
safetensors byte size that overflows, model.json context lengths out of range, pickle bombs
(shared tuples, deep nesting), a pickle naming os.system, a zip entry claiming gigabytes, and
a JPEG header claiming 16384 x 16384 pixels.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import subprocess
import time
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLI = Path(os.environ.get("CLIPGEN_RELEASE_CLI", ROOT / ".build" / "release" / "clipgen"))
TINY = ROOT / "Tests" / "ClipGenEngineTests" / "Fixtures" / "tiny_model"
JPEG = ROOT / "Tests" / "ClipGenEngineTests" / "Fixtures" / "Image" / "jpeg_420.jpg"

pytestmark = pytest.mark.skipif(not CLI.exists(), reason=f"{CLI} is not built (make build)")


def run(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    t = time.time()
    r = subprocess.run([str(CLI), *args], check=False, capture_output=True, text=True, timeout=timeout,
                       env=env)
    r.seconds = time.time() - t  # type: ignore[attr-defined]
    return r


def refused(r: subprocess.CompletedProcess, *words: str) -> None:
    """Exited with an error of its own (not a signal), saying each of `words`."""
    assert r.returncode > 0, f"exit {r.returncode} (a signal is a crash)\n{r.stderr[-2000:]}"
    for w in words:
        assert w in r.stderr, f"{w!r} not in: {r.stderr[-2000:]}"


def safetensors(header: dict, data: bytes = b"") -> bytes:
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + data


def torch_zip(pickle: bytes, extra: dict[str, bytes] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pickle)
        z.writestr("archive/version", b"3\n")
        for k, v in (extra or {}).items():
            z.writestr(k, v)
    return buf.getvalue()


def test_safetensors_byte_count_overflow(tmp_path):
    f = tmp_path / "overflow.safetensors"
    f.write_bytes(safetensors({"w": {"dtype": "F32", "shape": [2**31, 2**31], "data_offsets": [0, 0]}}))
    refused(run("inspect", str(f)), "overflow.safetensors", "overflows")


def test_safetensors_header_longer_than_the_file(tmp_path):
    f = tmp_path / "long.safetensors"
    f.write_bytes(struct.pack("<Q", 2**62) + b"{}")
    refused(run("inspect", str(f)), "long.safetensors")


@pytest.mark.parametrize("length", [-1, 0, 1000, 2**62])
def test_context_length_out_of_range(tmp_path, length):
    model = tmp_path / "model"
    shutil.copytree(TINY, model)
    m = json.loads((model / "model.json").read_text())
    m["tokenizer"]["context_length"] = length
    (model / "model.json").write_text(json.dumps(m))
    refused(run("generate", "a red circle", "--model", str(model), "--out", str(tmp_path / "o")),
            "context_length")


def test_billion_laughs_pickle(tmp_path):
    f = tmp_path / "laughs.pt"
    f.write_bytes(torch_zip(b"\x80\x02)" + b"2\x86" * 60 + b"."))
    r = run("inspect", str(f), timeout=60)
    refused(r, "laughs.pt", "pickle bomb")
    assert r.seconds < 20


def test_deeply_nested_pickle(tmp_path):
    f = tmp_path / "deep.pt"
    f.write_bytes(torch_zip(b"\x80\x02)" + b"\x85" * 1_000_000 + b"."))
    refused(run("inspect", str(f), timeout=60), "deep.pt", "nested deeper")


def test_pickle_naming_os_system_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    cmd = f"touch {marker}".encode()
    payload = b"\x80\x02cos\nsystem\n(X" + struct.pack("<I", len(cmd)) + cmd + b"tR."
    f = tmp_path / "evil.pt"
    f.write_bytes(torch_zip(payload))
    refused(run("inspect", str(f)), "evil.pt", "os.system")
    assert not marker.exists()


def test_zip_entry_claiming_gigabytes(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
        z.writestr("archive/version", b"3\n")
    b = bytearray(buf.getvalue())
    # Claim ~4 GB uncompressed for data.pkl in its local header and central directory entry.
    local = b.find(b"PK\x03\x04")
    central = b.find(b"PK\x01\x02")
    b[local + 22 : local + 26] = struct.pack("<I", 0xFFFFFFF0)
    b[central + 24 : central + 28] = struct.pack("<I", 0xFFFFFFF0)
    f = tmp_path / "claims.pt"
    f.write_bytes(bytes(b))
    r = run("inspect", str(f))
    refused(r, "claims.pt")
    assert r.seconds < 20


def test_jpeg_header_claiming_16384_squared(tmp_path):
    b = bytearray(JPEG.read_bytes())
    sof = next(i for i in range(len(b) - 9) if b[i] == 0xFF and b[i + 1] in (0xC0, 0xC2))
    b[sof + 5 : sof + 9] = struct.pack(">HH", 16384, 16384)
    f = tmp_path / "bomb.jpg"
    f.write_bytes(bytes(b))
    r = run("generate", "--image", str(f), "--model", str(TINY), "--out", str(tmp_path / "o"))
    refused(r, "bomb.jpg", "decompression bomb")
    assert r.seconds < 20
