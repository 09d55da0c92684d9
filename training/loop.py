"""The scaffolding the three training loops share (clip_train, vqgan_train, prior_train).

A stage named NAME keeps its checkpoint in RUN/NAME.pt and its curve in RUN/NAME-metrics.jsonl.
`TrainLoop` does what every loop does around its own step, in the same order for each:

    loop = TrainLoop("vqgan", out, d, cfg.steps, cfg.checkpoint_every, metrics_every=10)
    ck = loop.load(resume)                 # RUN/vqgan.pt, or None (none, or resume=False)
    if ck is not None:                     # (the loop's own checks of the checkpoint first)
        loop.resume(ck, model=vq, opt=opt) # load_state_dict of each, "vqgan: resuming at ..."
    for step in loop.steps():              # opens the metrics and the progress line
        lr = loop.set_lr(opt, step, cfg.lr, cfg.warmup)     # warm-up + cosine
        ...                                                 # the loop's own step
        if loop.metrics_due(step):                          # on every rank (reductions)
            loop.write_metrics(step=step, loss=..., lr=lr)  # + "t": seconds since the start
        loop.end_step(step, state, loss=...)  # progress; checkpoint state(step + 1) when due

Checkpoints are written by rank 0 only, atomically (`common.atomic_save`), every
`checkpoint_every` steps and after the last one; their contents are the loop's own dict (with
"step": the number of steps done). On resume at step s the metrics keep their rows before s
(step s is logged again). Gradients of a distributed run are averaged by DDP, or by
`Dist.average_gradients` where the loss needs rows gathered from every rank
(`Dist.all_gather_rows`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from .common import Dist, MetricLog, Progress, atomic_save, cosine_lr, load_checkpoint, log


class TrainLoop:
    """Resume, schedule, progress, metrics and checkpoints of one training stage."""

    def __init__(self, name: str, out: Path, d: Dist, steps: int, checkpoint_every: int,
                 metrics_every: int = 10):
        self.name = name
        self.d = d
        self.total = steps
        self.checkpoint_every = checkpoint_every
        self.metrics_every = metrics_every
        self.path = Path(out) / f"{name}.pt"
        self.metrics_path = Path(out) / f"{name}-metrics.jsonl"
        self.start = 0
        self.metrics: MetricLog | None = None
        self.bar: Progress | None = None
        self.t0 = 0.0

    # -- resuming

    def load(self, resume: bool = True) -> dict | None:
        """The stage's checkpoint, or None when there is none or `resume` is False."""
        return load_checkpoint(self.path) if resume else None

    def resume(self, ck: dict, **states: torch.nn.Module | torch.optim.Optimizer) -> int:
        """Loads ck[key] into each object given as key=object, continues at ck["step"] and says
        so; returns that step."""
        for key, obj in states.items():
            obj.load_state_dict(ck[key])
        self.start = ck["step"]
        log(f"{self.name}: resuming at step {self.start}", self.d)
        return self.start

    @property
    def done(self) -> bool:
        """Every step was taken already (a finished stage started again)."""
        return self.start >= self.total

    # -- the steps

    def steps(self) -> Iterator[int]:
        """Opens the metric log (keeping the rows before the resumed step) and the progress
        line, then counts the steps from where the stage stands to the end."""
        self.metrics = MetricLog(self.metrics_path, self.d.main,
                                 truncate_after=self.start or None)
        self.bar = Progress(self.total, self.name, self.start, self.d.main)
        self.t0 = time.time()
        yield from range(self.start, self.total)

    def set_lr(self, opt: torch.optim.Optimizer, step: int, base: float, warmup: int) -> float:
        """Linear warm-up, then cosine decay to a tenth of `base`; sets every parameter group
        of `opt` and returns the rate."""
        lr = cosine_lr(step, self.total, base, warmup)
        for group in opt.param_groups:
            group["lr"] = lr
        return lr

    def metrics_due(self, step: int) -> bool:
        return step % self.metrics_every == 0 or step == self.total - 1

    def write_metrics(self, **row: float) -> None:
        """One row of the curve (rank 0 writes), with "t": seconds since the loop started."""
        assert self.metrics is not None, "write_metrics before steps()"
        self.metrics.write(**row, t=time.time() - self.t0)

    def checkpoint_due(self, step: int) -> bool:
        return (step + 1) % self.checkpoint_every == 0 or step + 1 == self.total

    def end_step(self, step: int, state: Callable[[int], dict], **progress: float) -> None:
        """Advances the progress line (showing `progress`), then on rank 0 writes the
        checkpoint `state(step + 1)` (its argument: the steps done) when one is due."""
        assert self.bar is not None, "end_step before steps()"
        self.bar.update(**progress)
        if self.checkpoint_due(step) and self.d.main:
            atomic_save(state(step + 1), self.path)
