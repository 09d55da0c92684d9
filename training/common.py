"""Plumbing shared by the training loops: distributed setup, progress, checkpoints, logs.

Distributed runs use torch.distributed with gloo (CPU) under `torchrun`. Every loop draws its
randomness (data order, noise, dropout masks) for the whole *global* batch from a generator
seeded by (seed, step) and then takes this rank's slice, so a run with W processes and global
batch B follows the same trajectory as one process with batch B (up to float summation
order). Gradients are averaged by DistributedDataParallel.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist


class UserError(Exception):
    """A mistake the user can fix (a missing folder, a bad option, a run that does not fit the
    command): `python -m training` prints its message as one line and exits with status 2."""


@dataclass
class Where:
    """Where the run is: the stage, its step and the last checkpoint written (for the message
    Ctrl-C prints)."""

    stage: str = ""
    step: int = 0
    total: int = 0
    checkpoint: str = ""
    checkpoint_step: int = 0


WHERE = Where()


def interrupted_message(command: str) -> str:
    w = WHERE
    if not w.stage:
        return "interrupted; nothing was written yet"
    s = f"interrupted in {w.stage} at step {w.step}/{w.total}"
    if w.checkpoint:
        s += f"; the last checkpoint ({w.checkpoint}) is at step {w.checkpoint_step}"
    elif w.checkpoint_step:
        s += f"; its last checkpoint is at step {w.checkpoint_step}"
    else:
        s += "; no checkpoint of this stage yet"
    return s + f". Run the same command again to resume: {command}"


@dataclass
class Dist:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def slice(self, n: int) -> slice:
        """This rank's part of a global batch of n (n must divide evenly)."""
        if n % self.world:
            raise ValueError(f"global batch {n} is not divisible by {self.world} processes")
        per = n // self.world
        return slice(self.rank * per, (self.rank + 1) * per)

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def all_reduce_mean(self, t: torch.Tensor) -> torch.Tensor:
        if self.world > 1:
            t = t.clone()
            dist.all_reduce(t)
            t /= self.world
        return t

    def all_gather_rows(self, t: torch.Tensor, keep_grad: bool = False) -> torch.Tensor:
        """Every rank's rows of `t`, concatenated in rank order; with keep_grad, this rank's
        own rows are `t` itself (gradients flow to them; the others' arrive without graphs)."""
        if self.world == 1:
            return t
        parts = [torch.empty_like(t) for _ in range(self.world)]
        dist.all_gather(parts, t.detach().contiguous())
        if keep_grad:
            parts[self.rank] = t
        return torch.cat(parts)

    def average_gradients(self, model: torch.nn.Module) -> None:
        """Averages the parameters' gradients over the ranks (for a loop not wrapped by DDP)."""
        if self.world == 1:
            return
        for p in model.parameters():
            if p.grad is not None:
                dist.all_reduce(p.grad)
                p.grad /= self.world


def init_distributed() -> Dist:
    """Joins the process group when launched by torchrun (WORLD_SIZE > 1), else single."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    if not dist.is_initialized():
        # ranks wait at barriers while others decode or write shards: allow hours, not the
        # default 30 minutes
        dist.init_process_group("gloo", timeout=datetime.timedelta(hours=6))
    return Dist(dist.get_rank(), dist.get_world_size())


def set_threads(n: int | None) -> None:
    if n:
        torch.set_num_threads(n)


def wrap_ddp(model: torch.nn.Module, d: Dist) -> torch.nn.Module:
    if d.world == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return getattr(model, "module", model)


def step_generator(seed: int, step: int, salt: int = 0) -> torch.Generator:
    """The generator for everything random in one optimisation step (same on every rank)."""
    g = torch.Generator()
    g.manual_seed((seed * 1_000_003 + step * 7919 + salt * 104_729) % (2**63))
    return g


# -- progress ---------------------------------------------------------------------------------


class Progress:
    """A one-line progress bar on stderr (a line per update when stderr is not a terminal,
    at most every `every` seconds)."""

    def __init__(self, total: int, label: str, start: int = 0, enabled: bool = True,
                 every: float = 10.0):
        self.total, self.label, self.n = total, label, start
        self.start_n = start
        self.t0 = time.time()
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self.every = every if not self.tty else 0.2
        self.last = 0.0
        if enabled:  # a new stage: where Ctrl-C would leave it
            WHERE.stage, WHERE.step, WHERE.total = label, start, total
            WHERE.checkpoint, WHERE.checkpoint_step = "", start

    def update(self, n: int = 1, **info: float) -> None:
        self.n += n
        WHERE.stage, WHERE.step, WHERE.total = self.label, self.n, self.total
        now = time.time()
        if not self.enabled or (now - self.last < self.every and self.n < self.total):
            return
        self.last = now
        done = self.n / max(self.total, 1)
        rate = (self.n - self.start_n) / max(now - self.t0, 1e-9)
        eta = (self.total - self.n) / rate if rate > 0 else 0.0
        bar = "#" * int(24 * done) + "-" * (24 - int(24 * done))
        extra = " ".join(f"{k} {v:.4g}" for k, v in info.items())
        line = (f"{self.label} [{bar}] {self.n}/{self.total} {rate:.2f}/s "
                f"eta {eta:4.0f}s {extra}")
        if self.tty:
            sys.stderr.write("\r" + line[:160].ljust(160))
            if self.n >= self.total:
                sys.stderr.write("\n")
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()


def log(msg: str, d: Dist | None = None) -> None:
    if d is None or d.main:
        print(msg, file=sys.stderr, flush=True)


# -- checkpoints ------------------------------------------------------------------------------


@contextmanager
def ctrl_c_after() -> Iterator[None]:
    """Holds Ctrl-C (SIGINT) until the block is done, then raises KeyboardInterrupt: a
    checkpoint being written is finished first (a KeyboardInterrupt inside torch.save broke
    its zip writer and ended the run with a traceback instead of the resume message)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: pending.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if pending:
        raise KeyboardInterrupt


def atomic_save(obj, path: Path) -> None:
    """torch.save to a temporary file in the same directory, fsync, then rename over `path`:
    a crash leaves either the old checkpoint or the new one, never half of one; Ctrl-C waits
    until it is written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with ctrl_c_after():
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        if isinstance(obj, dict) and "step" in obj:
            WHERE.checkpoint, WHERE.checkpoint_step = str(path), int(obj["step"])


def atomic_write_text(path: Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict | None:
    path = Path(path)
    if not path.exists():
        return None
    return torch.load(path, map_location="cpu", weights_only=False)


class MetricLog:
    """Appends one JSON object per line (the training curves the report draws)."""

    def __init__(self, path: Path, enabled: bool = True, truncate_after: int | None = None):
        self.path = Path(path)
        self.enabled = enabled
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if truncate_after is not None and self.path.exists():
                # on resume at step s, the loop logs step s again: keep only rows before it
                rows = [r for r in read_jsonl(self.path) if r.get("step", 0) < truncate_after]
                atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in rows))
            elif truncate_after is None and self.path.exists():
                self.path.unlink()

    def write(self, **row) -> None:
        if self.enabled:
            with open(self.path, "a") as f:
                f.write(json.dumps(row) + "\n")


def read_jsonl(path: Path) -> list[dict]:
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def cosine_lr(step: int, total: int, base: float, warmup: int) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    t = (step - warmup) / max(total - warmup, 1)
    return base * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))


# -- fingerprints -----------------------------------------------------------------------------


def weights_hash(module_or_state: torch.nn.Module | dict) -> str:
    """sha256 (first 16 hex digits) over a state dict's names, shapes, dtypes and float32
    values: the identity of a set of weights, whatever file they came from."""
    sd = module_or_state.state_dict() if isinstance(module_or_state, torch.nn.Module) \
        else module_or_state
    h = hashlib.sha256()
    for k in sorted(sd):
        if k.endswith(".mask"):  # causal masks (buffers, not weights)
            continue
        v = sd[k].detach().cpu()
        if v.is_floating_point():
            v = v.float()
        h.update(f"{k}{tuple(v.shape)}{v.dtype}".encode())
        h.update(v.contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def short(fp: dict | str) -> str:
    """A short printable id of a fingerprint."""
    text = fp if isinstance(fp, str) else json.dumps(fp, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def describe_change(old: dict, new: dict) -> str:
    """'files 1500 -> 1600, listing 3fa2.. -> 9bc1..' for the keys whose values differ."""
    parts = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if a != b:
            if isinstance(a, dict) and isinstance(b, dict):
                parts.append(f"{k}: {describe_change(a, b)}")
                continue

            def fmt(v):
                t = json.dumps(v) if not isinstance(v, str) else v
                return t if len(t) <= 14 else t[:12] + ".."

            parts.append(f"{k} {fmt(a)} -> {fmt(b)}")
    return ", ".join(parts)
