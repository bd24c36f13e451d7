"""Train a dataset's preset for a wall-clock budget and report its test metrics.

Runs exactly what ``vqvae train --data NAME --minutes M --out DIR`` runs (the
preset, on this machine's CPU or GPU), then prints one JSON object with the
final test metrics (PSNR, SSIM, codebook usage, perplexity, uniform-prior
bits/dim), the steps done and steps/s. ``--update-md BENCHMARKS.md`` writes
them into a section of that file, with the command and the date.

    python benchmarks/bench_train.py --data fashion-mnist --minutes 10 --update-md BENCHMARKS.md
    python benchmarks/bench_train.py --data cifar10 --minutes 10 --update-md BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.mdsection import device_label, replace_section  # noqa: E402
from vqvae.core.runs import DatasetRecipe, RunArgs, train  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="fashion-mnist")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--out", default=None, help="run directory (default bench_out/<data>)")
    ap.add_argument("--update-md", default=None)
    ap.add_argument("overrides", nargs="*", help="--section.key=value overrides")
    args, extra = ap.parse_known_args()
    out = Path(args.out or f"bench_out/{args.data}")
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.time()
    final = train(DatasetRecipe(RunArgs(out=str(out), minutes=args.minutes, overrides=args.overrides + extra, progress=False), args.data, None))
    cfg = json.loads((out / "config.json").read_text())
    device = device_label()
    result = {
        "data": args.data,
        "minutes": args.minutes,
        "steps": final["step"],
        "steps_per_s": final["step"] / final["train_seconds"],
        **{k: final[k] for k in ("psnr", "ssim", "usage_pct", "dead_codes", "perplexity", "bits_per_dim", "recon_bits_per_dim")},
        "model": {k: cfg["model"][k] for k in ("hidden", "codebook_size", "embedding_dim", "quantizer", "likelihood")},
        "batch_size": cfg["train"]["batch_size"],
        "device": device,
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d"),
        "wall_s": time.time() - t0,
    }
    print(json.dumps(result, indent=2))
    if args.update_md:
        cmd = f"python benchmarks/bench_train.py --data {args.data} --minutes {args.minutes:g}" + "".join(" " + o for o in args.overrides + extra)
        m = result["model"]
        body = (
            f"`{cmd}` ({result['date']}, {device}, torch {result['torch']})\n\n"
            f"| data | preset | steps | steps/s | test PSNR | SSIM | codebook used | perplexity | bits/dim (uniform prior) |\n"
            f"|---|---|---|---|---|---|---|---|---|\n"
            f"| {args.data} | {m['hidden']} ch, K={m['codebook_size']}, D={m['embedding_dim']}, {m['quantizer']}, {m['likelihood']}, batch {result['batch_size']} "
            f"| {result['steps']} | {result['steps_per_s']:.2f} | {result['psnr']:.2f} dB | {result['ssim']:.3f} | {result['usage_pct']:.1f}% | {result['perplexity']:.1f} "
            f"| {result['bits_per_dim']:.3f} |\n"
        )
        replace_section(Path(args.update_md), f"bench_train:{args.data}", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
