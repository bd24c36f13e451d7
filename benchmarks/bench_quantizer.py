"""Benchmark our nearest-code quantizers against vector-quantize-pytorch (vqp).

One training step (forward + backward) on N vectors of dimension D = 64 for
each codebook size K; every (implementation, K) runs in a fresh subprocess with
a capped address space (``--mem-cap-gb``), so its peak memory is its own and a
case that does not fit is reported as ``OOM``. Implementations:

* ``ours-ema`` / ``ours-vq``: ``vqvae.quantize.vq.VectorQuantizerEMA`` /
  ``VectorQuantizer`` (no k-means init, no restarts) on ``(32, 64, N/32)``.
* ``plain``: the textbook reference, whole ``N x K`` distance matrix
  (``addmm`` + ``argmin``), learned codebook, straight-through, on ``(N, 64)``.
* ``vqp-fair``: ``VectorQuantize(dim=64, codebook_size=K, decay=0.99,
  commitment_weight=0.25, rotation_trick=False)``: EMA codebook and
  straight-through like ``ours-ema``, on ``(1, N, 64)`` (vqp is channel-last).
* ``vqp-default``: ``VectorQuantize(dim=64, codebook_size=K)`` as shipped.

Reports the median step time (2 warm-up steps, then 3-5 timed; 1 when a step
takes over 30 s) and extra memory = peak RSS during the steps minus the RSS
once inputs and modules are built. Prints one JSON object; ``--update-md``
writes a table into that Markdown file.

    python3 -m venv .venv-bench
    .venv-bench/bin/pip install torch==2.13.0 numpy safetensors pyyaml tqdm 'vector-quantize-pytorch>=1.32,<1.33'
    .venv-bench/bin/python benchmarks/bench_quantizer.py --update-md BENCHMARKS.md
    .venv-bench/bin/python benchmarks/bench_quantizer.py --n 4096 --ks 512,8192   # quick check
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.mdsection import replace_section  # noqa: E402

IMPLS = ("ours-ema", "ours-vq", "plain", "vqp-fair", "vqp-default")
D, BATCH, SLOW_S = 64, 32, 30.0
GOAL = "≥ 8× faster than the peer at K = 8192; K = 65536 in < 1 GB extra memory"
OOM_MARKS = ("out of memory", "DefaultCPUAllocator", "can't allocate memory", "Cannot allocate memory")


def proc_field(path: str, key: str) -> str | None:
    """Value of the first ``key: value`` line of a /proc file, or None."""
    try:
        with open(path) as f:
            return next((v.strip() for k, _, v in (line.partition(":") for line in f) if k.strip() == key), None)
    except OSError:
        return None


def rss_kib(field: str = "VmRSS") -> int:
    value = proc_field("/proc/self/status", field)
    return int(value.split()[0]) if value else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def build_step(impl: str, k: int, n: int):
    """Module, input and a closure running one forward + backward."""
    import torch

    torch.manual_seed(0)
    if impl.startswith("ours"):
        from vqvae.quantize.vq import VectorQuantizer, VectorQuantizerEMA

        q = VectorQuantizerEMA(k, D, commitment_cost=0.25, decay=0.99) if impl == "ours-ema" else VectorQuantizer(k, D, commitment_cost=0.25)
        x = torch.randn(BATCH, D, n // BATCH, requires_grad=True)

        def run():
            out = q(x)
            (out.z_q.sum() + out.loss).backward()

    elif impl == "plain":
        import torch.nn.functional as F

        q = torch.nn.Parameter(torch.empty(k, D).uniform_(-1 / k, 1 / k))
        x = torch.randn(n, D, requires_grad=True)

        def run():
            with torch.no_grad():  # the whole (N, K) matrix at once
                d = torch.addmm(q.pow(2).sum(1), x, q.t(), alpha=-2.0).add_(x.pow(2).sum(1, keepdim=True))
                idx = d.argmin(1)
                del d
            e = F.embedding(idx, q)
            loss = F.mse_loss(e, x.detach()) + 0.25 * F.mse_loss(x, e.detach())
            z_q = x + (e - x).detach()
            (z_q.sum() + loss).backward()

    elif impl.startswith("vqp"):
        from vector_quantize_pytorch import VectorQuantize

        kw = {"decay": 0.99, "commitment_weight": 0.25, "rotation_trick": False} if impl == "vqp-fair" else {}
        q = VectorQuantize(dim=D, codebook_size=k, **kw)
        x = torch.randn(1, n, D, requires_grad=True)

        def run():
            quantized, _, loss = q(x)
            (quantized.sum() + loss.sum()).backward()

    else:
        raise ValueError(f"unknown impl {impl!r}; choose from {', '.join(IMPLS)}")
    params = [x, q] if impl == "plain" else [x, *q.train().parameters()]

    def step() -> float:
        for p in params:
            p.grad = None
        t0 = time.perf_counter()
        run()
        return time.perf_counter() - t0

    return step


def child(impl: str, k: int, n: int, threads: int, repeat: int, cap_gb: float) -> dict:
    """Measure one case in this (fresh) process."""
    cap = int(cap_gb * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    res: dict = {"ms": None, "extra_mb": None, "status": "ok", "iters": 0}
    try:
        import torch

        if threads:
            torch.set_num_threads(threads)
        step = build_step(impl, k, n)
        base = rss_kib()
        try:  # reset the peak-RSS mark so import/setup transients do not count
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            pass
        first = step()  # warm-up; a second one unless steps are slow
        slow = first > SLOW_S or step() > SLOW_S
        reps = 1 if slow else max(3, min(repeat, int(20.0 / max(first, 1e-3))))
        times = [step() for _ in range(reps)]
        peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, rss_kib("VmHWM"))
        res.update(ms=1e3 * statistics.median(times), extra_mb=(peak - base) / 1024, iters=reps)
    except Exception as e:  # noqa: BLE001 - report it, do not crash the sweep
        oom = isinstance(e, MemoryError) or any(m in str(e) for m in OOM_MARKS)
        res["status"] = "OOM" if oom else f"error: {type(e).__name__}: {(str(e).splitlines() or [''])[0][:200]}"
    return res


def child_info() -> dict:
    import importlib.metadata as md

    import torch

    try:
        vqp = md.version("vector-quantize-pytorch")
    except md.PackageNotFoundError:
        vqp = None
    return {"torch": torch.__version__, "vqp": vqp, "threads": torch.get_num_threads(), "python": platform.python_version()}


def spawn(args, extra: list[str], timeout: float) -> dict:
    cmd = [args.python, str(Path(__file__).resolve()), *extra, "--threads", str(args.threads)]
    try:
        p = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"ms": None, "extra_mb": None, "status": f"error: timeout after {timeout:g} s"}
    lines = p.stdout.strip().splitlines()
    if p.returncode == 0 and lines:
        return json.loads(lines[-1])
    tail = (p.stderr.strip().splitlines() or ["?"])[-1][:200]
    status = "OOM (killed)" if p.returncode in (-9, 137) else f"error: rc={p.returncode}: {tail}"
    return {"ms": None, "extra_mb": None, "status": status}


def goal_check(results: dict, ratios: dict) -> dict:
    """Speed: vqp-fair / ours-ema at K = 8192; memory: every ours-* run at K = 65536 under 1 GiB."""
    speed = ratios.get("8192")
    mem = {i: r["65536"]["extra_mb"] for i, r in results.items() if i.startswith("ours") and "65536" in r}
    met = speed >= 8 and all(v is not None and v < 1024 for v in mem.values()) if speed and mem else None
    return {"text": GOAL, "speedup_at_8192": speed, "ours_extra_mb_at_65536": mem, "met": met}


def markdown(out: dict, command: str) -> str:
    ks = [str(k) for k in out["ks"]]

    def cell(r):
        return f"{r['ms']:.0f} ms, {r['extra_mb']:.0f} MiB" if r["status"] == "ok" else r["status"]

    g = out["goal"]
    met = {True: "**met**", False: "**not met**", None: "not measured"}[g["met"]]
    detail = f"peer-fair / ours-ema at K = 8192: {g['speedup_at_8192']:.1f}×" if g["speedup_at_8192"] else "K = 8192 not measured"
    for i, v in g["ours_extra_mb_at_65536"].items():
        detail += f"; {i} extra at K = 65536: {v:.0f} MiB" if v is not None else f"; {i} at K = 65536: failed"
    lines = [
        f"`{command}` ({out['date']}, CPU: {out['cpu']}, {out['threads']} threads, torch {out['torch']}, vector-quantize-pytorch {out['vqp']})",
        "",
        f"Forward + backward of one step, N = {out['n']} vectors, D = {D}: median time, extra peak RSS (cap {out['mem_cap_gb']:g} GiB a case).",
        "",
        f"Goal: {GOAL} — {met} ({detail}).",
        "",
        "| impl | " + " | ".join(f"K = {k}" for k in ks) + " |",
        "|---|" + "---|" * len(ks),
    ]
    lines += [f"| {i} | " + " | ".join(cell(out["results"][i][k]) for k in ks) + " |" for i in out["results"]]
    ratio = [f"{out['peer_fair_over_ours_ema'][k]:.1f}×" if out["peer_fair_over_ours_ema"].get(k) else "–" for k in ks]
    lines.append("| vqp-fair / ours-ema | " + " | ".join(ratio) + " |")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ks", default="512,8192,65536", help="comma-separated codebook sizes")
    ap.add_argument("--impls", default=",".join(IMPLS), help="comma-separated subset of " + ",".join(IMPLS))
    ap.add_argument("--n", type=int, default=32768, help=f"vectors per step (multiple of {BATCH})")
    ap.add_argument("--threads", type=int, default=0, help="torch threads in the children (0: torch default)")
    ap.add_argument("--repeat", type=int, default=5, help="timed steps at most (at least 3 unless a step takes > 30 s)")
    ap.add_argument("--mem-cap-gb", type=float, default=16.0, help="address-space cap per child")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per child")
    ap.add_argument("--python", default=sys.executable, help="interpreter for the children")
    ap.add_argument("--update-md", default=None)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child == "info":
        print(json.dumps(child_info()))
        return 0
    if args.child:
        impl, k = args.child.rsplit(":", 1)
        print(json.dumps(child(impl, int(k), args.n, args.threads, args.repeat, args.mem_cap_gb)))
        return 0
    if args.n % BATCH:
        ap.error(f"--n must be a multiple of {BATCH}")
    ks = [int(k) for k in args.ks.split(",")]
    impls = args.impls.split(",")
    if set(impls) - set(IMPLS):
        ap.error(f"unknown impls {sorted(set(impls) - set(IMPLS))}; choose from {', '.join(IMPLS)}")
    t0 = time.time()
    info = spawn(args, ["--child", "info"], 120)
    results: dict = {}
    opts = ["--n", str(args.n), "--repeat", str(args.repeat), "--mem-cap-gb", str(args.mem_cap_gb)]
    for impl in impls:
        for k in ks:
            r = spawn(args, ["--child", f"{impl}:{k}", *opts], args.timeout)
            results.setdefault(impl, {})[str(k)] = r
            print(f"{impl:12s} K={k:<6d} {r['status']:>4s} {r['ms'] or 0:10.1f} ms {r['extra_mb'] or 0:9.1f} MiB", file=sys.stderr)
    ratios = {}
    for k in map(str, ks):
        a, b = results.get("vqp-fair", {}).get(k), results.get("ours-ema", {}).get(k)
        ratios[k] = a["ms"] / b["ms"] if a and b and a["status"] == b["status"] == "ok" else None
    out = {
        "n": args.n, "d": D, "ks": ks, "date": time.strftime("%Y-%m-%d"),
        "cpu": proc_field("/proc/cpuinfo", "model name") or platform.processor(), "cores": os.cpu_count(),
        "threads": info.get("threads"), "torch": info.get("torch"), "vqp": info.get("vqp"), "python": info.get("python"),
        "mem_cap_gb": args.mem_cap_gb, "results": results, "peer_fair_over_ours_ema": ratios,
        "goal": goal_check(results, ratios),
    }
    out["wall_s"] = round(time.time() - t0, 1)
    print(json.dumps(out, indent=2))
    if args.update_md:
        exe = Path(args.python)
        exe_s = os.path.relpath(exe, ROOT) if str(exe.absolute()).startswith(str(ROOT)) else "python"
        command = f"{exe_s} benchmarks/bench_quantizer.py " + shlex.join(sys.argv[1:])
        replace_section(Path(args.update_md), "bench_quantizer", markdown(out, command.strip()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
