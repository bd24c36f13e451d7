"""Benchmark the fused Triton nearest-code kernel on CUDA against the torch paths, the matmul floor and vqp.

Cases: N = 32768 vectors of D = 64 against K in {512, 8192, 65536} codes, and
N = 262144 at K = 65536. Implementations (``--impls``):

* ``triton`` / ``triton-tf32x3``: :func:`vqvae.quantize.nearest_triton.nearest_code_triton`
  with exact fp32 (``ieee``, the default) / three-pass TF32 products.
* ``torch-chunked``: :func:`vqvae.quantize.search.nearest_code` with the kernel
  disabled (``nearest_triton.ENABLED = False``): chunked ``addmm`` + ``argmin``.
* ``addmm-full``: the whole ``N x K`` matrix, ``addmm`` + ``argmin`` (OOM reported).
* ``floor``: one fp32 ``x @ e.T`` of the same sizes (TF32 off): the matmul any
  exact search performs, and the write of its output.
* ``step-triton`` / ``step-torch``: forward + backward of one training step of
  ``VectorQuantizerEMA(K, 64, commitment_cost=0.25, decay=0.99)`` on
  ``(32, 64, N / 32)``, its ``nearest_code`` patched to the kernel / the torch path.
* ``step-vqp``: ``VectorQuantize(dim=64, codebook_size=K, decay=0.99,
  commitment_weight=0.25, rotation_trick=False)`` on ``(1, N, 64)``, if
  vector-quantize-pytorch is importable.

Time: CUDA events, ``--warmup`` calls first (they include Triton's autotuning),
then the median of ``--reps``. Memory: peak ``torch.cuda.max_memory_allocated``
during one call minus what was allocated before it (inputs and modules excluded).
``agree`` is the fraction of rows where the kernel's indices equal the torch
path's (below 1 only on fp32 near-ties). Prints one JSON object; ``--update-md``
writes the ``bench_nearest_gpu`` section of that Markdown file.

    python benchmarks/bench_nearest_gpu.py --update-md BENCHMARKS.md
    python benchmarks/bench_nearest_gpu.py --impls triton,floor,step-triton --ks 65536 --big-n 0
    python benchmarks/bench_nearest_gpu.py --interpret --update-md /tmp/x.md   # CPU smoke test of this script
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata as md
import json
import os
import shlex
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

IMPLS = ("triton", "triton-tf32x3", "torch-chunked", "addmm-full", "floor", "step-triton", "step-torch", "step-vqp")
BATCH = 32
GOAL = ("forward + backward at N = 32768, D = 64, K = 65536: ≤ 1.5× the fp32 matmul floor, ≥ 5× faster than "
        "vector-quantize-pytorch and ≤ 1/40 of its memory; no OOM at N = 262144")


def version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


class Bench:
    """Builds and measures the implementations on one device (CUDA, or the CPU under the interpreter)."""

    def __init__(self, device: str, d: int, warmup: int, reps: int):
        import torch

        from vqvae.quantize import vq as quantizers
        from vqvae.quantize import nearest_triton as nt

        self.torch, self.q, self.nt = torch, quantizers, nt
        self.device, self.d, self.warmup, self.reps = device, d, warmup, reps
        self.cuda = device == "cuda"
        self.torch_nearest = quantizers.nearest_code  # as wired; the kernel is switched off through nt.ENABLED

    def sync(self):
        if self.cuda:
            self.torch.cuda.synchronize()

    def measure(self, fn) -> dict:
        """Median ms over reps after warm-up; peak extra MiB of one call (CUDA only)."""
        torch = self.torch
        t0 = time.perf_counter()
        for _ in range(self.warmup):
            fn()
        self.sync()
        reps = self.reps if (time.perf_counter() - t0) / max(self.warmup, 1) < 2.0 else min(self.reps, 3)
        times = []
        for _ in range(reps):
            if self.cuda:
                a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                a.record()
                fn()
                b.record()
                b.synchronize()
                times.append(a.elapsed_time(b))
            else:
                t = time.perf_counter()
                fn()
                times.append(1e3 * (time.perf_counter() - t))
        extra = None
        if self.cuda:
            self.sync()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            fn()
            self.sync()
            extra = (torch.cuda.max_memory_allocated() - base) / 2**20
        return {"status": "ok", "ms": statistics.median(times), "peak_mb": extra, "reps": reps}

    def kernel_path(self, on: bool):
        """Route quantizers.nearest_code to the kernel (on) or to the torch path with the kernel disabled (off)."""
        nt = self.nt
        if on:
            nt.ENABLED = True
            self.q.nearest_code = lambda x, e, chunk_size=None: nt.nearest_code_triton(x, e)
        else:
            nt.ENABLED = False
            self.q.nearest_code = self.torch_nearest

    def build(self, impl: str, n: int, k: int):
        """A closure running ``impl`` once on fresh inputs of size (n, k)."""
        torch, d, dev = self.torch, self.d, self.device
        g = torch.Generator(device="cpu").manual_seed(0)
        x = torch.randn(n, d, generator=g).to(dev)
        e = torch.randn(k, d, generator=g).to(dev)
        if impl in ("triton", "triton-tf32x3"):
            prec = "tf32x3" if impl.endswith("tf32x3") else "ieee"
            return lambda: self.nt.nearest_code_triton(x, e, precision=prec)
        if impl == "torch-chunked":
            self.kernel_path(False)
            return lambda: self.q.nearest_code(x, e)
        if impl == "addmm-full":
            def run():
                dist = torch.addmm((e * e).sum(1), x, e.t(), alpha=-2.0)
                return dist.argmin(1)
            return run
        if impl == "floor":
            return lambda: torch.mm(x, e.t())
        del x
        if impl in ("step-triton", "step-torch"):
            self.kernel_path(impl == "step-triton")
            torch.manual_seed(0)
            mod = self.q.VectorQuantizerEMA(k, d, commitment_cost=0.25, decay=0.99).to(dev).train()
            z = torch.randn(BATCH, d, n // BATCH, generator=g).to(dev).requires_grad_()

            def run():
                z.grad = None
                out = mod(z)
                (out.z_q.sum() + out.loss).backward()
            return run
        if impl == "step-vqp":
            from vector_quantize_pytorch import VectorQuantize

            torch.manual_seed(0)
            mod = VectorQuantize(dim=d, codebook_size=k, decay=0.99, commitment_weight=0.25, rotation_trick=False).to(dev).train()
            z = torch.randn(1, n, d, generator=g).to(dev).requires_grad_()

            def run():
                z.grad = None
                mod.zero_grad(set_to_none=True)
                quantized, _, loss = mod(z)
                (quantized.sum() + loss.sum()).backward()
            return run
        raise ValueError(f"unknown impl {impl!r}")

    def run_case(self, impl: str, n: int, k: int) -> dict:
        torch = self.torch
        try:
            if impl == "step-vqp" and version("vector-quantize-pytorch") is None:
                return {"status": "not installed", "ms": None, "peak_mb": None}
            fn = self.build(impl, n, k)
            return self.measure(fn)
        except Exception as exc:  # noqa: BLE001 - report it, keep the sweep going
            oom = isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc)
            msg = "OOM" if oom else f"error: {type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:160]}"
            return {"status": msg, "ms": None, "peak_mb": None}
        finally:
            fn = None  # noqa: F841 - drop the closure (and its tensors) before the next case
            self.q.nearest_code = self.torch_nearest
            self.nt.ENABLED = True
            gc.collect()
            if self.cuda:
                torch.cuda.empty_cache()

    def agreement(self, n: int, k: int) -> float:
        torch = self.torch
        g = torch.Generator(device="cpu").manual_seed(1)
        x, e = torch.randn(n, self.d, generator=g).to(self.device), torch.randn(k, self.d, generator=g).to(self.device)
        a = self.nt.nearest_code_triton(x, e)
        self.nt.ENABLED = False
        try:
            b = self.torch_nearest(x, e)
        finally:
            self.nt.ENABLED = True
        return float((a == b).float().mean())


def ratio(a: dict | None, b: dict | None, key: str = "ms") -> float | None:
    ok = a and b and a.get("status") == b.get("status") == "ok" and a.get(key) and b.get(key)
    return a[key] / b[key] if ok else None


def goal_check(rows: list[dict], n: int = 32768, k: int = 65536, big_n: int = 262144) -> dict:
    main = next((r for r in rows if r["n"] == n and r["k"] == k), None)
    big = next((r for r in rows if r["n"] == big_n and r["k"] == k), None)
    res = main["results"] if main else {}
    over_floor = ratio(res.get("step-triton"), res.get("floor"))
    speedup = ratio(res.get("step-vqp"), res.get("step-triton"))
    mem = ratio(res.get("step-triton"), res.get("step-vqp"), "peak_mb")
    big_status = big["results"].get("step-triton", {}).get("status") if big else None
    checks = [  # None: not measured
        None if over_floor is None else over_floor <= 1.5,
        None if speedup is None else speedup >= 5,
        None if mem is None else mem <= 1 / 40,
        None if big_status is None else big_status == "ok",
    ]
    met = False if False in checks else (None if None in checks else True)
    return {"text": GOAL, "step_over_floor": over_floor, "vqp_over_step": speedup, "step_mem_over_vqp": mem,
            "big_n_step_status": big_status, "met": met}


def markdown(out: dict, command: str) -> str:
    impls = out["impls"]

    def cell(r):
        if r["status"] != "ok":
            return r["status"]
        mem = f", {r['peak_mb']:.0f} MiB" if r["peak_mb"] is not None and r["peak_mb"] >= 1 else (
            f", {r['peak_mb']:.2f} MiB" if r["peak_mb"] is not None else "")
        return f"{r['ms']:.3g} ms{mem}"

    fmt = lambda v, s="×": f"{v:.2f}{s}" if v is not None else "–"  # noqa: E731
    g = out["goal"]
    met = {True: "**met**", False: "**not met**", None: "not measured"}[g["met"]]
    lines = [
        f"`{command}` ({out['date']}, {out['device']}, torch {out['torch']}, triton {out['triton']}, "
        f"vector-quantize-pytorch {out['vqp']}, TF32 matmul off)"
        + (" — interpreter smoke run on the CPU: the times mean nothing" if out["interpret"] else ""),
        "",
        f"D = {out['d']}: median time and peak extra memory of one call (nearest-code search) or one training step "
        "(`step-*`, forward + backward).",
        "",
        f"Goal: {GOAL} — {met} (step-triton / floor {fmt(g['step_over_floor'])}, step-vqp / step-triton "
        f"{fmt(g['vqp_over_step'])}, memory step-triton / step-vqp "
        f"{'1/' + format(1 / g['step_mem_over_vqp'], '.0f') if g['step_mem_over_vqp'] else '–'}, "
        f"N = 262144: {g['big_n_step_status'] or 'not run'}).",
        "",
        "| N | K | " + " | ".join(impls) + " | step-triton / floor | step-vqp / step-triton | agree |",
        "|---|---|" + "---|" * (len(impls) + 3),
    ]
    for r in out["rows"]:
        res = r["results"]
        lines.append(f"| {r['n']} | {r['k']} | " + " | ".join(cell(res[i]) for i in impls)
                     + f" | {fmt(ratio(res.get('step-triton'), res.get('floor')))}"
                     + f" | {fmt(ratio(res.get('step-vqp'), res.get('step-triton')))}"
                     + f" | {r['agree'] if r['agree'] is not None else '–'} |")
    if out.get("autotuned"):
        lines += ["", "Autotuned kernel configs: " + "; ".join(f"`{k}`: {v}" for k, v in out["autotuned"].items())]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=None, help=f"vectors per case (multiple of {BATCH}; default 32768)")
    ap.add_argument("--d", type=int, default=64, help="vector dimension")
    ap.add_argument("--ks", default=None, help="comma-separated codebook sizes (default 512,8192,65536)")
    ap.add_argument("--big-n", type=int, default=None, help="extra case with this many vectors at --big-k (0: none; default 262144)")
    ap.add_argument("--big-k", type=int, default=None, help="codebook size of the --big-n case (default 65536)")
    ap.add_argument("--impls", default=",".join(IMPLS), help="comma-separated subset of " + ",".join(IMPLS))
    ap.add_argument("--warmup", type=int, default=None, help="untimed calls first (default 3)")
    ap.add_argument("--reps", type=int, default=None, help="timed calls (default 10; 3 when a call takes over 2 s)")
    ap.add_argument("--interpret", action="store_true",
                    help="no GPU: tiny sizes on the CPU, kernel in Triton's interpreter (tests this script, times mean nothing)")
    ap.add_argument("--update-md", default=None, help="Markdown file whose bench_nearest_gpu section to write")
    args = ap.parse_args()
    small = args.interpret
    n = args.n or (64 if small else 32768)
    ks = [int(k) for k in (args.ks or ("16,40" if small else "512,8192,65536")).split(",")]
    big_n = args.big_n if args.big_n is not None else (128 if small else 262144)
    big_k = args.big_k or (40 if small else 65536)
    warmup, reps = args.warmup or (1 if small else 3), args.reps or (2 if small else 10)
    impls = args.impls.split(",")
    if set(impls) - set(IMPLS):
        ap.error(f"unknown impls {sorted(set(impls) - set(IMPLS))}; choose from {', '.join(IMPLS)}")
    if n % BATCH or big_n % BATCH:
        ap.error(f"--n and --big-n must be multiples of {BATCH}")
    if small:
        os.environ["TRITON_INTERPRET"] = "1"  # before triton is imported
    import torch

    from benchmarks.mdsection import device_label, replace_section

    if not small and not torch.cuda.is_available():
        print("bench_nearest_gpu: no CUDA device here; this benchmark needs a GPU "
              "(use --interpret for a tiny CPU run that only checks the script)", file=sys.stderr)
        return 2
    from vqvae.quantize import nearest_triton as nt

    if not nt.AVAILABLE:
        print("bench_nearest_gpu: triton is not importable; install it (it ships with CUDA builds of torch)", file=sys.stderr)
        return 2
    torch.backends.cuda.matmul.allow_tf32 = False  # the floor and the torch paths in true fp32
    bench = Bench("cpu" if small else "cuda", args.d, warmup, reps)
    cases = [(n, k) for k in ks] + ([(big_n, big_k)] if big_n and (big_n, big_k) not in [(n, k) for k in ks] else [])
    t0 = time.time()
    rows = []
    for cn, ck in cases:
        results = {}
        for impl in impls:
            results[impl] = r = bench.run_case(impl, cn, ck)
            print(f"N={cn:<7d} K={ck:<6d} {impl:14s} {r['status']:>6s} {r['ms'] or 0:10.3f} ms "
                  f"{r['peak_mb'] or 0:10.1f} MiB", file=sys.stderr, flush=True)
        agree = round(bench.agreement(min(cn, 32768), ck), 6) if "triton" in impls else None
        rows.append({"n": cn, "k": ck, "results": results, "agree": agree})
    tuned = getattr(getattr(nt, "_nearest_tuned", None), "cache", {}) if not small else {}
    out = {
        "date": time.strftime("%Y-%m-%d"), "device": device_label(), "torch": torch.__version__,
        "triton": version("triton"), "vqp": version("vector-quantize-pytorch"), "interpret": small,
        "d": args.d, "impls": impls, "warmup": warmup, "reps": reps, "rows": rows,
        "autotuned": {str(k): str(v) for k, v in tuned.items()},
        "goal": goal_check(rows),
        "wall_s": round(time.time() - t0, 1),
    }
    print(json.dumps(out, indent=2))
    if args.update_md:
        command = "python benchmarks/bench_nearest_gpu.py " + shlex.join(sys.argv[1:])
        replace_section(Path(args.update_md), "bench_nearest_gpu", markdown(out, command.strip()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
