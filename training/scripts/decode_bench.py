"""Decodes a folder into a fresh cache (data.decode_folder alone) and prints the time and
the peak RSS of each process. One process, or several under torchrun:

    OMP_NUM_THREADS=1 PYTHONPATH=. python training/scripts/decode_bench.py FOLDER CACHE [PX]
    OMP_NUM_THREADS=1 PYTHONPATH=. torchrun --nproc-per-node 2 \\
        training/scripts/decode_bench.py FOLDER CACHE2 [PX]
"""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from training import common, data


def main(folder: Path, cache: Path, resolution: int) -> None:
    d = common.init_distributed()
    t = time.time()
    f = data.decode_folder(folder, data.DecodeOptions(resolution), cache, d,
                           show_progress=False)
    dt = time.time() - t
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"rank {d.rank}/{d.world}: {f.report.loaded} images in {dt:.1f} s "
          f"({f.report.loaded / dt:.0f}/s), peak RSS {rss:.0f} MB", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 64)
