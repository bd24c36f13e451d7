"""Entropy coding of code sequences under an autoregressive prior, with constriction's range coder.

Paper: a VQ-VAE's prior ``p(z)`` turns its codes into a compressor: arithmetic
(here range) coding spends ``-log2 p(z_t | z_<t)`` bits per code, plus a few
bytes. The coder is constriction's (Bamler 2022, ``constriction.stream.queue``
with ``stream.model.Categorical(perfect=False)``), not a hand-rolled one.

**Determinism.** The decoder must rebuild *exactly* the encoder's probability
tables, on another machine, with another thread count. Floating-point logits
are not reproducible to the last bit across thread counts or CPUs, so the
tables are made from them in a way that is:

1. the prior runs in **float64 on the CPU, single-threaded** (restored after),
   and the encoder runs the same incremental (KV-cached) computation as the
   decoder, with the same batch shapes, rather than one teacher-forced pass;
2. logits are **rounded to a grid of 1/16 nat** after subtracting their
   maximum, and clamped to ``[-24, 0]`` nats: a last-bit difference in a
   logit changes a table only if the logit lies within ~1e-13 of a grid
   boundary;
3. frequencies come from a fixed **integer table** ``EXP_TABLE[a] =
   round(2^24 exp(-a/16))`` (at least 1), so no ``exp`` of the platform's
   maths library is on the path; constriction gets these integers as float64
   (exact) and rescales them deterministically.

Rounding the logits costs almost nothing (less than 0.001 bits per code;
measured in BENCHMARKS.md as real bits against the model's NLL). The file
stores a CRC of the codes, so a table mismatch (astronomically unlikely across
CPUs, impossible on one machine) is reported, not decoded into a wrong image.
"""

from __future__ import annotations

import contextlib
import copy
import math

import constriction
import numpy as np
import torch

GRID = 16  # logit steps per nat
FLOOR = 24  # nats: logits further below the maximum are clamped
PRECISION = 24  # bits of the integer table
EXP_TABLE = np.maximum(1, np.round(2.0**PRECISION * np.exp(-np.arange(GRID * FLOOR + 1) / GRID))).astype(np.int64)
_MODEL = constriction.stream.model.Categorical(perfect=False)
GROUP = 256  # sequences coded together (one batch through the prior): bounds the KV cache on large images


@contextlib.contextmanager
def single_thread():
    """Run torch on one CPU thread inside the block (reproducible reductions), restoring the count after."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def frequencies(logits: torch.Tensor) -> np.ndarray:
    """Logits ``(B, K)`` (float64) -> integer frequency tables ``(B, K)`` as exact float64, deterministically."""
    lg = logits.detach().to(torch.float64).cpu()
    steps = torch.round((lg.max(dim=-1, keepdim=True).values - lg) * GRID).clamp_(0, GRID * FLOOR).long().numpy()
    return EXP_TABLE[steps].astype(np.float64)


def nll_bits(logits: torch.Tensor, symbols: torch.Tensor) -> float:
    """``-log2 p(symbols)`` under the unrounded logits: what the model says the codes cost."""
    lp = torch.log_softmax(logits.double(), -1).gather(-1, symbols.long()[:, None])
    return float(-lp.sum()) / math.log(2)


def prepare(prior) -> torch.nn.Module:
    """A float64, eval-mode CPU copy of a transformer prior, for coding."""
    model = copy.deepcopy(prior).to("cpu", torch.float64).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


@torch.no_grad()
def _run(prior, n_seq: int, length: int, visit) -> None:
    """Feed the prior step by step for ``n_seq`` sequences of ``length`` codes; ``visit(t, logits) -> codes (n_seq,)``."""
    with single_thread():
        cache = prior.new_cache(n_seq)
        logits = prior.start(cache)
        for t in range(length):
            codes = visit(t, logits)
            if t + 1 < length:
                logits = prior.step(cache, codes)


def encode(prior, seq: torch.Tensor, group: int = GROUP) -> tuple[np.ndarray, float]:
    """Sequences ``(N, L)`` (a prefix of the prior's order) -> (range-coder words ``uint32``, model NLL in bits).
    The sequences go through the prior in batches of ``group`` (the decoder uses the same batches)."""
    seq = seq.long().cpu()
    n, length = seq.shape
    enc = constriction.stream.queue.RangeEncoder()
    total = 0.0
    for g0 in range(0, n, group):
        chunk = seq[g0 : g0 + group]

        def visit(t, logits, chunk=chunk):
            nonlocal total
            sym = chunk[:, t]
            enc.encode(sym.numpy().astype(np.int32), _MODEL, frequencies(logits))
            total += nll_bits(logits, sym)
            return sym

        _run(prior, chunk.shape[0], length, visit)
    return enc.get_compressed(), total


def decode(prior, words: np.ndarray, n: int, length: int, group: int = GROUP) -> torch.Tensor:
    """Range-coder words -> sequences ``(n, length)`` int64, rebuilding the encoder's tables step by step."""
    dec = constriction.stream.queue.RangeDecoder(np.ascontiguousarray(words, dtype=np.uint32))
    seq = torch.zeros(n, length, dtype=torch.long)
    for g0 in range(0, n, group):
        chunk = seq[g0 : g0 + group]  # a view: decoded codes land in seq

        def visit(t, logits, chunk=chunk):
            chunk[:, t] = torch.from_numpy(np.asarray(dec.decode(_MODEL, frequencies(logits)), dtype=np.int64))
            return chunk[:, t]

        _run(prior, chunk.shape[0], length, visit)
    return seq
