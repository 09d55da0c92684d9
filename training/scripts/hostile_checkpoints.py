"""Writes the hand-crafted hostile checkpoints under Tests/ClipGenEngineTests/Fixtures/checkpoints/
hostile/ (no torch needed: the pickles are spelled out opcode by opcode).

    expanded.pt   {"w": a float tensor of shape [2^40, 4], strides [0, 1], over a storage of 4
                  floats} - PyTorch's expand(); converting it would materialise 2^42 floats.
"""

from __future__ import annotations

import io
import struct
import sys
import zipfile
from pathlib import Path


def text(s: str) -> bytes:
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def long1(n: int) -> bytes:
    b = n.to_bytes((n.bit_length() + 8) // 8 or 1, "little", signed=True)
    return b"\x8a" + bytes([len(b)]) + b


def tensor_pickle(shape: list[int], strides: list[int], numel: int) -> bytes:
    b = b"\x80\x02}" + text("w") + b"ctorch._utils\n_rebuild_tensor_v2\n("
    b += b"(" + text("storage") + b"ctorch\nFloatStorage\n" + text("0") + text("cpu") + long1(numel)
    b += b"tQ"  # TUPLE, BINPERSID
    b += b"K\x00"  # storage offset
    b += b"(" + b"".join(long1(s) for s in shape) + b"t"
    b += b"(" + b"".join(long1(s) for s in strides) + b"t"
    b += b"\x89"  # requires_grad False
    b += b"ccollections\nOrderedDict\n)R"  # backward hooks
    b += b"tR"  # TUPLE, REDUCE
    b += b"s."  # SETITEM, STOP
    return b


def torch_zip(pickle: bytes, storages: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pickle)
        for key, data in storages.items():
            z.writestr(f"archive/data/{key}", data)
        z.writestr("archive/version", b"3\n")
    return buf.getvalue()


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    floats = struct.pack("<4f", 1, 2, 3, 4)
    (out / "expanded.pt").write_bytes(torch_zip(tensor_pickle([2**40, 4], [0, 1], 4), {"0": floats}))
    print(f"wrote {out / 'expanded.pt'}")


if __name__ == "__main__":
    root = Path(__file__).resolve().parents[2]
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else
         root / "Tests/ClipGenEngineTests/Fixtures/checkpoints/hostile")
