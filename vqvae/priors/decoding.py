"""Token-by-token decoding that never waits for the host: a decoding step over a static KV cache, captured once in a
CUDA graph and replayed for every position (the approach of gpt-fast, with a manual capture instead of compile).

Sampling is launch-bound on a GPU: one step of a 12-layer transformer at batch 64 is a few hundred small kernels and
took 5.5 ms eagerly. A graph replays them with one launch. Capture needs every shape and address fixed and no host
read inside the step, which the static cache gives (:func:`static_attention`: the position
is a device tensor, attention spans the whole cache) and ``tests/priors/test_static_decoding.py`` checks on the CPU
(0 host reads per step, one dynamo graph, the same samples as the sliced cache for a seed).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


def static_attention(q, k, v, kv, pos: torch.Tensor, mask: torch.Tensor | None, dropout: float) -> torch.Tensor:
    """Attention over a whole preallocated cache (gpt-fast's static KV cache): ``k``/``v`` of positions ``pos ..
    pos+T-1`` are written in place at a device-side ``pos`` (0-d int64) and the queries attend to all ``L`` cached
    positions, those not yet written masked out. No shape depends on ``pos`` and nothing is read back to the host, so
    a decoding step can be captured in a CUDA graph and replayed for every position; the maths is that of the
    sliced cache (masked positions get zero weight). ``mask``: the ``(L, L)`` pattern, as in the sliced path."""
    kc, vc = kv
    idx = pos + torch.arange(q.shape[2], device=q.device)
    kc.index_copy_(2, idx, k)
    vc.index_copy_(2, idx, v)
    allowed = torch.arange(kc.shape[2], device=q.device)[None, :] <= idx[:, None]  # (T, L): causal over the cache
    if mask is not None:
        allowed = allowed & mask.index_select(0, idx)[:, : kc.shape[2]]
    return F.scaled_dot_product_attention(q, kc, vc, attn_mask=allowed, dropout_p=dropout)


class CapturedStep:
    """``step(codes) -> logits`` recorded once in a CUDA graph: each call copies ``codes`` into the graph's input
    buffer and replays it; ``step`` must advance its cache's device position in place (it does, on a static cache).

    Warm-up runs (needed before capture) write keys and values at positions not yet decoded, which a later step
    overwrites before any query can see them; the position is put back after them."""

    def __init__(self, step: Callable[[torch.Tensor], torch.Tensor], codes: torch.Tensor, pos: torch.Tensor, warmup: int = 2):
        self.codes = codes.clone()
        start = pos.clone()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(warmup):
                step(self.codes)
        torch.cuda.current_stream().wait_stream(side)
        pos.copy_(start)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.out = step(self.codes)
        pos.copy_(start)  # capture records the increment without running it; keep the position exact anyway

    def __call__(self, codes: torch.Tensor) -> torch.Tensor:
        self.codes.copy_(codes)
        self.graph.replay()
        return self.out


def stepper(step: Callable[[torch.Tensor], torch.Tensor], codes: torch.Tensor, pos, capture: bool) -> Callable:
    """The decoding step to call per position: captured in a CUDA graph when ``capture`` (a static cache on CUDA),
    else ``step`` itself."""
    return CapturedStep(step, codes, pos) if capture else step


def on_device(generator: torch.Generator | None, device: torch.device) -> torch.Generator | None:
    """A generator on ``device`` seeded from ``generator`` (one draw, once), so per-token draws need no host round
    trip; None stays None, and a generator already there is used as is. The draws then differ from a CPU generator's
    for the same seed (each device has its own random stream)."""
    if generator is None or generator.device == device:
        return generator
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    return torch.Generator(device=device).manual_seed(seed)
