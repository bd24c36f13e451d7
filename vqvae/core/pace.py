"""How fast a run goes on the machine it has: the thread count, timed (``train.threads=-1``)."""

from __future__ import annotations

import time

import torch


class ThreadTuner:
    """``train.threads=-1``: time the first steps on every candidate thread count and keep the fastest.

    On a machine that is busy with other work, fewer threads than cores are faster: each parallel op waits for
    its slowest thread, and a thread that shares a core with another job is slow. Measured on a 2-core CPU beside
    one CPU-bound job (2026-11-30): the preset transformer prior (4 x 192, batch 64, 7 x 7 codes) took 1.11 s a
    step on 2 threads and 0.63 s on 1. Candidates are torch's default count, half of it and 1; after ``warmup``
    steps each gets ``per`` steps, timed."""

    def __init__(self, warmup: int = 2, per: int = 3):
        n = torch.get_num_threads()
        self.candidates = sorted({n, max(1, n // 2), 1}, reverse=True)
        self.warmup, self.per = warmup, per
        self.ticks, self.last, self.times = 0, None, {c: 0.0 for c in self.candidates}
        self.choice: int | None = None if len(self.candidates) > 1 else n

    def tick(self) -> str | None:
        """Call before each step; returns a line to print once the choice is made."""
        if self.choice is not None:
            return None
        now, k = time.perf_counter(), self.ticks - self.warmup  # steps timed so far
        if k > 0:
            self.times[self.candidates[(k - 1) // self.per]] += now - self.last
        self.ticks, self.last = self.ticks + 1, now
        if k >= self.per * len(self.candidates):
            self.choice = min(self.times, key=self.times.get)
            torch.set_num_threads(self.choice)
            per_step = ", ".join(f"{c}: {v / self.per:.3f} s" for c, v in self.times.items())
            return f"threads: {self.choice} (seconds a step with each count: {per_step})"
        if k >= 0:
            torch.set_num_threads(self.candidates[k // self.per])
        return None
