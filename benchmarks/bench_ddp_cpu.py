"""What DDP costs: one process against ``torchrun`` with 2 gloo processes, on the same CPU cores.

Issue 7 asks for multi-GPU figures; without a GPU this measures the same code
path on the CPU. Each way trains the Fashion-MNIST preset for ``--steps`` steps
of the same global batch, with the machine's cores shared out the same way
(one process with N threads, or N processes with one thread each), so the
ratio of step rates is DDP's own cost: the gradient all-reduce, the EMA
codebook statistics all-reduced every step, the broadcasts of restarts and
k-means, and a process per rank. PowerSGD (``--train.powersgd_rank``) is
timed too. Final test loss and PSNR show the runs learn alike (not bit-equal:
the reductions add in another order).

    python benchmarks/bench_ddp_cpu.py --update-md BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.mdsection import cpu_name, replace_section  # noqa: E402
from vqvae.core.dist import free_port  # noqa: E402


def _run(name: str, procs: int, threads: int, steps: int, data: str, extra: list[str], out: Path) -> dict:
    run = out / name
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(threads)}
    train = ["-m", "vqvae", "train", "--data", data, "--out", str(run), "--steps", str(steps), "--no-progress",
             "--train.minutes=0", "--train.eval_every=0", f"--train.threads={threads}", *extra]
    launch = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={procs}", "--master_port", str(free_port())]
    cmd = (launch if procs > 1 else [sys.executable]) + train
    t = time.perf_counter()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t
    if r.returncode != 0:
        raise SystemExit(f"{name} failed:\n{r.stderr[-3000:]}")
    ev = json.loads((run / "eval.json").read_text())
    if ev["step"] != steps:
        raise SystemExit(f"{name} stopped at step {ev['step']}, not {steps}")
    return {"processes": procs, "threads_each": threads, "train_seconds": ev["train_seconds"], "wall_seconds": wall,
            "steps_per_s": steps / ev["train_seconds"], "test_loss": ev["loss"], "psnr": ev["psnr"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="fashion-mnist")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 2, help="threads of the single process = processes of DDP")
    ap.add_argument("--powersgd-rank", type=int, default=2)
    ap.add_argument("--update-md")
    args = ap.parse_args()
    if args.cores < 2 or args.steps < 1:
        ap.error("need --cores >= 2 and --steps >= 1")
    out = Path(tempfile.mkdtemp(prefix="bench_ddp_"))
    try:
        ways = {
            f"1 process x {args.cores} threads": _run("single", 1, args.cores, args.steps, args.data, [], out),
            f"DDP, {args.cores} processes x 1 thread": _run("ddp", args.cores, 1, args.steps, args.data, [], out),
            f"DDP + PowerSGD rank {args.powersgd_rank}": _run("ddp-powersgd", args.cores, 1, args.steps, args.data,
                                                               [f"--train.powersgd_rank={args.powersgd_rank}"], out),
        }
    finally:
        shutil.rmtree(out, ignore_errors=True)
    base = next(iter(ways.values()))["steps_per_s"]
    for w in ways.values():
        w["speed_vs_single"] = w["steps_per_s"] / base
    res = {"data": args.data, "steps": args.steps, "device": f"CPU: {cpu_name()}", "torch": torch.__version__,
           "date": time.strftime("%Y-%m-%d"), "ways": ways}
    print(json.dumps(res, indent=2))
    if args.update_md:
        cmd = " ".join(["python benchmarks/bench_ddp_cpu.py", *sys.argv[1:]]).replace(f" --update-md {args.update_md}", "")
        rows = "\n".join(f"| {k} | {w['steps_per_s']:.2f} | {w['speed_vs_single']:.2f}× | {w['test_loss']:.4f} | {w['psnr']:.2f} |"
                         for k, w in ways.items())
        body = (f"`{cmd}` ({res['date']}, {res['device']}, {args.cores} cores, torch {res['torch']})\n\n"
                f"The `{args.data}` preset (EMA codebook, k-means init, dead-code restarts), {args.steps} steps of the same global batch.\n\n"
                "| way | steps/s | speed vs one process | test loss | test PSNR (dB) |\n|---|---|---|---|---|\n" + rows + "\n")
        replace_section(Path(args.update_md), "bench_ddp_cpu", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
