#!/usr/bin/env python3
"""Runs every fuzz target of clipgen-fuzz under libFuzzer + AddressSanitizer (make fuzz).

    python3 Fuzz/run_fuzzers.py BINARY [--seconds S] [--jobs J] [--only TARGET ...]

Each target starts from its committed seeds (Fuzz/corpus/TARGET, read-only here) and keeps what
it finds in runs/fuzz/corpus/TARGET; a crash, hang (> 10 s per input) or allocation over 2 GB is
written to runs/fuzz/crashes/TARGET/ and fails the run. Leaks are not reported. The summary
(executions, coverage, features, crashes per target) goes to runs/fuzz/summary.json and stdout.
Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGETS = ["safetensors", "checkpoint", "pickle", "image", "model", "tokenizer", "styles",
           "theme", "terminal"]


def run_target(binary: Path, target: str, seconds: int, out: Path) -> dict:
    corpus = out / "corpus" / target
    crashes = out / "crashes" / target
    corpus.mkdir(parents=True, exist_ok=True)
    crashes.mkdir(parents=True, exist_ok=True)
    log = out / "logs" / f"{target}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    cmd = [str(binary), f"-max_total_time={seconds}", "-timeout=10", "-rss_limit_mb=2048",
           "-detect_leaks=0", "-print_final_stats=1", "-max_len=65536",
           f"-dict={ROOT / 'Fuzz' / 'dictionaries' / f'{target}.dict'}",
           f"-artifact_prefix={crashes}/", str(corpus), str(ROOT / "Fuzz" / "corpus" / target)]
    env = {**os.environ, "CLIPGEN_FUZZ_TARGET": target, "OPENBLAS_NUM_THREADS": "1",
           "CLIPGEN_FUZZ_FIXTURES": str(ROOT / "Tests" / "ClipGenEngineTests" / "Fixtures"),
           "ASAN_OPTIONS": "detect_leaks=0:allocator_may_return_null=1",
           "SWIFT_BACKTRACE": "enable=no"}
    t = time.time()
    with open(log, "w") as f:
        rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
                            check=False).returncode
    text = log.read_text(errors="replace")

    def stat(name: str) -> int:
        m = re.findall(rf"stat::{name}:\s+(\d+)", text)
        return int(m[-1]) if m else 0

    cov = re.findall(r"cov: (\d+) ft: (\d+)", text)
    # libFuzzer also keeps inputs slower than -report_slow_units (10 s); with -timeout=10 a truly
    # slow input is a timeout-* crash, so a slow unit that is not one was a stalled process
    # (suspended, starved of CPU) and is listed, not failed.
    new = [p for p in crashes.iterdir() if p.stat().st_mtime >= t]
    return {"target": target, "seconds": round(time.time() - t, 1), "exit": rc,
            "executions": stat("number_of_executed_units"),
            "executions_per_second": stat("average_exec_per_sec"),
            "new_units": stat("new_units_added"),
            "coverage": int(cov[-1][0]) if cov else 0, "features": int(cov[-1][1]) if cov else 0,
            "crashes": sorted(p.name for p in new if not p.name.startswith("slow-unit-")),
            "slow_units": sorted(p.name for p in new if p.name.startswith("slow-unit-")),
            "log": str(log)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("binary", type=Path)
    p.add_argument("--seconds", type=int, default=60)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--only", nargs="*", choices=TARGETS, default=None)
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "fuzz")
    args = p.parse_args()
    if not args.binary.exists():
        print(f"{args.binary} is not built (make fuzz builds it)", file=sys.stderr)
        return 2
    targets = args.only or TARGETS
    with ThreadPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(lambda t: run_target(args.binary, t, args.seconds, args.out),
                             targets))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(rows, indent=1) + "\n")
    print(f"{'target':<12} {'seconds':>7} {'executions':>11} {'exec/s':>7} {'cov':>6} "
          f"{'features':>8}  crashes")
    failed = False
    for r in rows:
        bad = r["crashes"] or r["exit"] != 0
        failed |= bool(bad)
        print(f"{r['target']:<12} {r['seconds']:>7} {r['executions']:>11} "
              f"{r['executions_per_second']:>7} {r['coverage']:>6} {r['features']:>8}  "
              f"{', '.join(r['crashes']) or ('exit ' + str(r['exit']) if r['exit'] else 'none')}")
    if failed:
        print(f"fuzzing found a problem: see the crashes and logs above ({args.out}); "
              "reproduce with a plain build: .build/debug/clipgen-fuzz TARGET FILE", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
