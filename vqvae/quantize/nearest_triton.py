"""Fused nearest-code search on CUDA: distances and a running argmin in one Triton kernel.

``nearest_code_triton(x (N, D), codebook (K, D)) -> (N,) int64`` returns the same
``argmin_k ||e_k||^2 - 2 x . e_k`` as :func:`vqvae.quantize.search.nearest_code` (fp32,
ties to the smallest index, like ``torch.argmin``) without ever materialising a
distance matrix, not even a chunk of it: memory is ``O(N + K)``.

Why it is faster than ``addmm`` + ``argmin``
    The torch path writes every distance (``N x K`` fp32, 8 GiB at N = 32768,
    K = 65536; in chunks, but the bytes still go through L2/HBM) and ``argmin``
    reads them back. Here each program keeps a ``(BLOCK_N, BLOCK_K)`` distance
    tile in registers, turns the dot tile into distances (one FMA), and folds it
    into a per-row running (min, argmin) with a warp-level reduction; only
    ``8 N`` bytes leave the chip. What remains is the matmul floor
    ``2 N K D`` flops plus ~4 ops per distance for the epilogue (3-6 % at D = 64).

Expected bottleneck and Hopper blocking
    With ``precision="ieee"`` (exact fp32 products and sums, no TF32)
    the dot runs on the FP32 FMA pipes: 275 GFLOP at (32768, 65536, 64) is
    >= 4.1 ms at the H100 SXM's ~67 TFLOP/s, the same pipes cuBLAS SGEMM uses,
    so the kernel is FMA-issue bound, and the operand traffic from shared memory
    is what separates it from the peak; large tiles (BLOCK_N x BLOCK_K = 64-128 x
    64-128, 4-8 warps, 2-3 pipeline stages) raise the reuse per loaded operand.
    Two tilings, both autotuned per (K, D, split, precision): the x block
    (BLOCK_N x D) kept whole in registers for the entire codebook loop
    (``BLOCK_DK = 0``; up to 64 x 128 / 128 x 64 tiles before ptxas spills at
    D = 64), or D taken in slices of ``BLOCK_DK`` with the x slices re-read from
    L1, which frees the operand registers for 128 x 128 tiles (64 accumulators a
    thread at 8 warps). The codebook streams through shared memory (2-3 stages
    of BLOCK_K x D x 4 B) and from L2 (16 MiB at K = 65536, D = 64, re-read by
    every program: ~0.3 ms of L2 bandwidth).
    ``precision="tf32x3"`` (three TF32 tensor-core products, hi*hi + hi*lo + lo*hi)
    is several times faster on Hopper's tensor cores (4.49 ms against 14.0 ms at
    N = 32768, K = 65536, D = 64 on an H200, agreement 1.0 with fp32) and is the
    default on GPUs that have TF32 (compute capability >= 8.0); ``ieee`` is the
    option (``precision="ieee"``, or ``VQVAE_NEAREST_PRECISION=ieee``).

Why tf32x3 is as exact as fp32 for the argmin
    TF32 keeps 10 explicit mantissa bits (11 with the implicit one). Split each
    operand as ``x = hi + lo`` with ``hi = tf32(x)`` and ``lo = tf32(x - hi)``:
    ``hi`` holds the top 11 bits and ``lo`` the next 11, so ``|x - hi - lo| <=
    2^-22 |x|``. Each product of two TF32 numbers (11 x 11 = 22 significant bits)
    is exact in the fp32 accumulator, and ``x . e = hi.hi' + hi.lo' + lo.hi' +
    lo.lo'`` with the dropped ``lo.lo'`` at most ``2^-22 |x| |e|`` per term. So the
    dot product's error is a few units of ``2^-22 sum_i |x_i e_i|``, against fp32's
    own ``~D 2^-24 sum_i |x_i e_i|`` from accumulating D terms: the same order. The
    argmin can then differ from the float64 one only where two codes are within
    that error of each other (a near-tie, which fp32 cannot resolve either); one
    TF32 pass (``2^-11``) misorders codes far more often. Tested: an emulation of
    the three passes against float64 (near-ties aside, the same indices, and one
    pass visibly worse), and the kernel with ``tf32x3`` in Triton's interpreter.

Grid and small N
    Programs = ``cdiv(N, BLOCK_N) x split``. When N is small (inference) the
    codebook is split into ``split`` contiguous ranges searched by separate
    programs; each writes its partial (min, argmin) and a tiny torch reduction
    picks the first minimal split, so ties still go to the smallest index.

Limits
    ``D <= MAX_D = 256``, what the tiles and their pruning were sized for (the
    resident-x tiling holds BLOCK_N x D in registers). Larger D is refused:
    :func:`supported` is False and the caller keeps the chunked torch path,
    which loses little there, as its extra distance traffic (4 B written and
    read back per distance) shrinks against the ``2 D`` flops per distance.
    NaN inputs give an unspecified index. Timings: written without a GPU
    (compiled for sm_90 offline, checked in the interpreter); measure with
    ``benchmarks/bench_nearest_gpu.py``.

On the CPU the kernel runs under Triton's interpreter when the module is
imported with ``TRITON_INTERPRET=1`` (tests only; slow). ``VQVAE_TRITON=0`` in
the environment (or ``ENABLED = False``) makes :func:`supported` False.
"""

from __future__ import annotations

import os

import torch

try:
    import triton
    import triton.language as tl

    AVAILABLE = True
except Exception:  # noqa: BLE001 - no triton (or a broken install): the torch path is used
    triton = tl = None
    AVAILABLE = False

# The kernel object is built for the interpreter when this module is imported with TRITON_INTERPRET=1.
INTERPRET = AVAILABLE and os.environ.get("TRITON_INTERPRET", "0") == "1"
ENABLED = os.environ.get("VQVAE_TRITON", "1") != "0"
MAX_D = 256
PRECISIONS = ("ieee", "tf32x3")


def supported(x: torch.Tensor, codebook: torch.Tensor) -> bool:
    """Whether :func:`nearest_code_triton` can run on these inputs (else use the torch path)."""
    return (
        AVAILABLE
        and ENABLED
        and (x.is_cuda or INTERPRET)
        and x.device == codebook.device
        and x.ndim == 2
        and codebook.ndim == 2
        and x.shape[1] == codebook.shape[1]
        and 1 <= x.shape[1] <= MAX_D
    )


if AVAILABLE:

    @triton.jit
    def _nearest_kernel(
        x_ptr, e_ptr, esq_ptr, idx_ptr, min_ptr, N, K, D, SPLIT,
        BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_DK: tl.constexpr,
        PRECISION: tl.constexpr, WRITE_MIN: tl.constexpr,
    ):
        """One program: rows ``[pid_n * BLOCK_N, +BLOCK_N)`` against codes of split ``pid_s``.

        x: (N, D), e: (K, D) contiguous fp32; esq: (K,) = ||e_k||^2.
        idx: (SPLIT, N) int64 argmin; min: (SPLIT, N) fp32 minimum (if WRITE_MIN).
        """
        RESIDENT: tl.constexpr = BLOCK_DK == 0 or BLOCK_DK >= BLOCK_D
        pid_n = tl.program_id(0)
        pid_s = tl.program_id(1)
        rows = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        row_ok = rows < N
        x_rows = x_ptr + rows.to(tl.int64)[:, None] * D
        if RESIDENT:  # whole (padded) D at once: the x block stays in registers
            cols = tl.arange(0, BLOCK_D)
            x = tl.load(x_rows + cols[None, :], mask=row_ok[:, None] & (cols < D)[None, :], other=0.0)
        else:
            cols = tl.arange(0, BLOCK_DK)
        # This split's code range, a whole number of blocks so block starts stay aligned.
        per_split = tl.cdiv(tl.cdiv(K, SPLIT), BLOCK_K) * BLOCK_K
        k_lo = pid_s * per_split
        k_hi = tl.minimum(k_lo + per_split, K)
        best = tl.full([BLOCK_N], float("inf"), tl.float32)
        best_idx = tl.full([BLOCK_N], 0, tl.int32) + k_lo
        for k0 in range(k_lo, k_hi, BLOCK_K):
            ks = k0 + tl.arange(0, BLOCK_K)
            k_ok = ks < k_hi
            e_rows = e_ptr + ks.to(tl.int64)[:, None] * D
            esq = tl.load(esq_ptr + ks, mask=k_ok, other=0.0)
            # Padded dimensions load as 0 and add nothing to the dot products.
            if RESIDENT:
                e = tl.load(e_rows + cols[None, :], mask=k_ok[:, None] & (cols < D)[None, :], other=0.0)
                dot = tl.dot(x, tl.trans(e), input_precision=PRECISION)
            else:  # D in slices of BLOCK_DK (x slices re-read from L1): fewer live operand registers, bigger tiles
                dot = tl.zeros([BLOCK_N, BLOCK_K], tl.float32)
                for d0 in tl.static_range(0, BLOCK_D, BLOCK_DK):
                    c_ok = (d0 + cols < D)[None, :]
                    xs = tl.load(x_rows + d0 + cols[None, :], mask=row_ok[:, None] & c_ok, other=0.0)
                    e = tl.load(e_rows + d0 + cols[None, :], mask=k_ok[:, None] & c_ok, other=0.0)
                    dot = tl.dot(xs, tl.trans(e), dot, input_precision=PRECISION)
            dist = esq[None, :] - 2.0 * dot  # as addmm(e_sq, x, e.T, alpha=-2): one rounding
            dist = tl.where(k_ok[None, :], dist, float("inf"))
            # First minimum inside the block, then strict < across blocks: ties keep the smaller index.
            blk_min, blk_arg = tl.min(dist, axis=1, return_indices=True, return_indices_tie_break_left=True)
            better = blk_min < best
            best = tl.where(better, blk_min, best)
            best_idx = tl.where(better, blk_arg + k0, best_idx)
        out = pid_s.to(tl.int64) * N + rows
        tl.store(idx_ptr + out, best_idx.to(tl.int64), mask=row_ok)
        if WRITE_MIN:
            tl.store(min_ptr + out, best, mask=row_ok)

    def _prune(configs, named_args, **kwargs):
        """Keep tiles whose pipelined stages fit in shared memory and whose resident x block fits in registers."""
        bd = kwargs.get("BLOCK_D", named_args.get("BLOCK_D", 64))

        def fits(c):
            bn, bk, dk = c.kwargs["BLOCK_N"], c.kwargs["BLOCK_K"], c.kwargs["BLOCK_DK"]
            resident = dk == 0 or dk >= bd
            smem = c.num_stages * (bk + (0 if resident else bn)) * bd * 4
            return smem <= 200 * 1024 and (not resident or bn * bd <= 32 * 32 * c.num_warps)  # <= 32 x floats a thread

        return [c for c in configs if fits(c)] or configs[-1:]

    # (BLOCK_N, BLOCK_K, BLOCK_DK (0: whole D resident), warps, stages); 64-128 square-ish tiles for Hopper.
    _CONFIGS = [
        triton.Config({"BLOCK_N": bn, "BLOCK_K": bk, "BLOCK_DK": dk}, num_warps=w, num_stages=s)
        for bn, bk, dk, w, s in [
            (128, 64, 0, 8, 3), (64, 128, 0, 8, 2), (64, 64, 0, 4, 3), (32, 64, 0, 4, 2),
            (128, 128, 16, 8, 2), (128, 128, 16, 8, 3), (128, 64, 16, 4, 3), (64, 128, 32, 4, 3), (32, 32, 16, 4, 2),
        ]
    ]
    _nearest_tuned = triton.autotune(_CONFIGS, key=["K", "D", "SPLIT", "PRECISION"], prune_configs_by={"early_config_prune": _prune})(
        _nearest_kernel
    )


def _pick_split(n: int, k: int, device: torch.device) -> int:
    """Codebook splits so that small N still fills the GPU: about 2 programs per SM, >= 1024 codes a split."""
    if INTERPRET or device.type != "cuda":
        return 1
    sms = torch.cuda.get_device_properties(device).multi_processor_count
    programs = -(-n // 128)
    split = 1
    while programs * split < 2 * sms and k // (split * 2) >= 1024:
        split *= 2
    return split


@torch.no_grad()
def default_precision(device: torch.device) -> str:
    """``tf32x3`` on GPUs with TF32 (compute capability >= 8.0), else ``ieee``; ``VQVAE_NEAREST_PRECISION`` (``ieee``
    or ``tf32x3``) in the environment overrides it (a bad value is an error, not ignored)."""
    chosen = os.environ.get("VQVAE_NEAREST_PRECISION", "")
    if chosen:
        if chosen not in PRECISIONS:
            raise ValueError(f"VQVAE_NEAREST_PRECISION must be one of {PRECISIONS}, got {chosen!r}")
        return chosen
    if device.type == "cuda" and not INTERPRET and torch.cuda.get_device_capability(device)[0] >= 8:
        return "tf32x3"
    return "ieee"


def nearest_code_triton(x: torch.Tensor, codebook: torch.Tensor, precision: str | None = None, split: int | None = None) -> torch.Tensor:
    """Index of the nearest codebook row for each row of ``x``; fused Triton kernel.

    x: ``(N, D)``, codebook: ``(K, D)``, any float dtype and strides (cast to
    contiguous fp32); returns ``(N,)`` int64 on x's device. ``precision``:
    ``"ieee"`` (exact fp32) or ``"tf32x3"`` (as exact for the argmin: see the
    module); None: :func:`default_precision`. ``split``: codebook splits
    (None: chosen from N, K and the SM count; always 1 in the interpreter unless
    given). Raises ValueError on bad shapes or D > MAX_D, RuntimeError when the
    kernel cannot run here (no Triton, or a CPU tensor outside the interpreter).
    """
    if x.ndim != 2 or codebook.ndim != 2 or x.shape[1] != codebook.shape[1]:
        raise ValueError(f"expected x (N, D) and codebook (K, D), got {tuple(x.shape)} and {tuple(codebook.shape)}")
    n, d = x.shape
    k = codebook.shape[0]
    if k < 1 or d < 1 or d > MAX_D:
        raise ValueError(f"need K >= 1 and 1 <= D <= {MAX_D}, got K = {k}, D = {d}; use the torch path for larger D")
    if precision is None:
        precision = default_precision(x.device)
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if x.device != codebook.device:
        raise ValueError(f"x and codebook on different devices: {x.device} and {codebook.device}")
    if not AVAILABLE or not (x.is_cuda or INTERPRET):
        raise RuntimeError("nearest_code_triton needs Triton and a CUDA tensor (or TRITON_INTERPRET=1 at import)")
    if n == 0:
        return torch.empty(0, dtype=torch.long, device=x.device)
    x = x.detach().to(torch.float32).contiguous()
    e = codebook.detach().to(torch.float32).contiguous()
    e_sq = (e * e).sum(1)  # (K,), the same fp32 sums as the torch path
    split = max(1, min(int(split), k)) if split else _pick_split(n, k, x.device)
    idx = torch.empty(split, n, dtype=torch.long, device=x.device)
    mins = torch.empty(split, n, dtype=torch.float32, device=x.device) if split > 1 else idx
    block_d = max(16, triton.next_power_of_2(d))  # tl.dot needs every dimension >= 16
    args = (x, e, e_sq, idx, mins, n, k, d, split)
    if INTERPRET:
        _nearest_kernel[(triton.cdiv(n, 16), split)](
            *args, BLOCK_N=16, BLOCK_K=16, BLOCK_D=block_d, BLOCK_DK=16 if block_d > 16 else 0,
            PRECISION=precision, WRITE_MIN=split > 1,
        )
    else:
        with torch.cuda.device(x.device):
            grid = lambda meta: (triton.cdiv(n, meta["BLOCK_N"]), split)  # noqa: E731
            _nearest_tuned[grid](*args, BLOCK_D=block_d, PRECISION=precision, WRITE_MIN=split > 1)
    if split == 1:
        return idx[0]
    # torch.argmin returns the first minimum: the lowest split, whose codes have the smallest indices.
    return idx.gather(0, mins.argmin(0, keepdim=True))[0]
