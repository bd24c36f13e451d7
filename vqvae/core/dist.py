"""Distributed helpers that are no-ops in a single process.

Reads the torchrun environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``).
Every collective here returns its input unchanged when torch.distributed is
not initialised, so the same training code runs on one CPU and under
``torchrun``. Used by the quantizers so EMA statistics, k-means data and
dead-code restarts are identical on every rank.
"""

from __future__ import annotations

import os
import socket

import torch
import torch.distributed as td


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` now, for a local rendezvous (``--master_port``; tests, benchmarks)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def init_from_env() -> bool:
    """Join the process group that ``torchrun`` describes (``WORLD_SIZE`` > 1): NCCL with one GPU
    per process (``LOCAL_RANK``) where CUDA is available, else gloo. Returns whether this is a
    multi-process run; a no-op in one process or when already initialised."""
    if is_initialized():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank())
        td.init_process_group("nccl")
    else:
        td.init_process_group("gloo")
    return True


def barrier() -> None:
    """Wait for every rank (after rank 0 wrote a file the others read)."""
    if is_initialized():
        td.barrier()


def shutdown() -> None:
    """Leave the process group (after a barrier, so rank 0 finishes writing first)."""
    if is_initialized():
        td.barrier()
        td.destroy_process_group()


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", 0))


def any_true(flag: bool, device: torch.device | str = "cpu") -> bool:
    """True if ``flag`` is true on any rank (so every rank takes the same branch)."""
    if not is_initialized():
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    td.all_reduce(t, op=td.ReduceOp.SUM)
    return bool(t.item() > 0)


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


def broadcast_object(obj, src: int = 0):
    """Rank ``src``'s ``obj`` (any picklable value made by this code, e.g. a run's time stamp) on every rank."""
    if not is_initialized():
        return obj
    box = [obj]
    td.broadcast_object_list(box, src)
    return box[0]


def all_gather_cat(t: torch.Tensor) -> torch.Tensor:
    """Concatenate ``t`` (same shape on every rank) along dim 0 over ranks."""
    if not is_initialized():
        return t
    parts = [torch.empty_like(t) for _ in range(world_size())]
    td.all_gather(parts, t.contiguous())
    return torch.cat(parts)
