"""Distributed helpers that are no-ops in a single process.

Reads the torchrun environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``).
Every collective here returns its input unchanged when torch.distributed is
not initialised, so the same training code runs on one CPU and under
``torchrun``. Used by the quantizers so EMA statistics, k-means data and
dead-code restarts are identical on every rank.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as td


def is_initialized() -> bool:
    return td.is_available() and td.is_initialized()


def rank() -> int:
    return td.get_rank() if is_initialized() else int(os.environ.get("RANK", 0))


def world_size() -> int:
    return td.get_world_size() if is_initialized() else 1


def is_main() -> bool:
    """True on the process that logs and writes checkpoints (rank 0)."""
    return rank() == 0


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum ``t`` over ranks in place and return it."""
    if is_initialized():
        td.all_reduce(t, op=td.ReduceOp.SUM)
    return t


def broadcast_(t: torch.Tensor, src: int = 0) -> torch.Tensor:
    """Overwrite ``t`` with rank ``src``'s copy and return it."""
    if is_initialized():
        td.broadcast(t, src)
    return t


def all_gather_cat(t: torch.Tensor) -> torch.Tensor:
    """Concatenate ``t`` (same shape on every rank) along dim 0 over ranks."""
    if not is_initialized():
        return t
    parts = [torch.empty_like(t) for _ in range(world_size())]
    td.all_gather(parts, t.contiguous())
    return torch.cat(parts)
