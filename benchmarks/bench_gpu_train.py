"""Training throughput of the paper's CIFAR-10 VQ-VAE step on a GPU, and whether bf16 matches fp32.

One training step = the Trainer's ``train_step`` (forward, loss, backward, fused
Adam, EMA codebook update) on a batch gathered from data already on the device.
Variants, each timed after warm-up (CUDA events, median of ``--reps`` steps):

* ``fp32`` eager; ``bf16`` autocast (the quantizer stays fp32);
* ``bf16+cl``: and channels_last; ``bf16+cl+compile``: and torch.compile of the
  encoder/decoder; ``bf16+cl+graphs``: compile mode ``reduce-overhead`` (CUDA graphs).

Then ``--quality-steps`` steps of fp32 and of the fastest variant from the
same seed, and both models' test loss: the goal is the same final test loss
within noise. Issue 7's goal: 250k steps of batch 128 in <= 5 minutes on one
H100, i.e. <= 1.2 ms a step, everything included.

    python benchmarks/bench_gpu_train.py --update-md BENCHMARKS.md          # on a CUDA machine
    python benchmarks/bench_gpu_train.py --device cpu --tiny                  # smoke test of the script
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.mdsection import device_label, replace_section  # noqa: E402
from vqvae.config import load_config  # noqa: E402
from vqvae.data import ImageSet, load_images  # noqa: E402
from vqvae.train import Trainer  # noqa: E402

VARIANTS = {
    "fp32": {},
    "bf16": {"amp": "bf16"},
    "bf16+cl": {"amp": "bf16", "channels_last": True},
    "bf16+cl+compile": {"amp": "bf16", "channels_last": True, "compile": "default"},
    "bf16+cl+graphs": {"amp": "bf16", "channels_last": True, "compile": "reduce-overhead"},
}


def _trainer(data, device: str, tiny: bool, steps: int, **train) -> Trainer:
    over = {"train": {"device": device, "steps": steps, "eval_every": 0, "log_every": 10**9, "ckpt_every": 10**9,
                      "ckpt_minutes": 10**6, **train}}
    if tiny:
        over["model"] = {"hidden": 16, "res_hidden": 16, "codebook_size": 32, "embedding_dim": 8}
        over["train"]["batch_size"] = 8
    cfg = load_config("cifar10", None, over)
    return Trainer(cfg, Path(tempfile.mkdtemp(prefix="bench_gpu_")), *data, progress=False)


def _time_steps(tr: Trainer, warmup: int, reps: int) -> float:
    """Median milliseconds of one full training step."""
    cuda = tr.device.type == "cuda"
    for _ in range(warmup):
        tr.train_step(*tr.batch(tr.step), detail=False)
    times = []
    for _ in range(reps):
        if cuda:
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            tr.train_step(*tr.batch(tr.step), detail=False)
            b.record()
            torch.cuda.synchronize()
            times.append(a.elapsed_time(b))
        else:
            t = time.perf_counter()
            tr.train_step(*tr.batch(tr.step), detail=False)
            times.append(1e3 * (time.perf_counter() - t))
    return sorted(times)[len(times) // 2]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--reps", type=int, default=100)
    ap.add_argument("--quality-steps", type=int, default=5000)
    ap.add_argument("--tiny", action="store_true", help="a tiny net and few steps (tests the script)")
    ap.add_argument("--update-md")
    args = ap.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device: this benchmark measures GPU throughput (use --device cpu --tiny to test the script)", file=sys.stderr)
        return 2
    if args.tiny:
        args.warmup, args.reps, args.quality_steps = 2, 3, 4
    data = (load_images("cifar10", "train"), load_images("cifar10", "test"))
    if args.tiny:
        data = tuple(ImageSet(d.images[:64], d.labels[:64], d.classes, d.name) for d in data)
    res = {"variants": {}, "device": device_label() if args.device.startswith("cuda") else "cpu", "torch": torch.__version__,
           "date": time.strftime("%Y-%m-%d")}
    for name in args.variants.split(","):
        tr = _trainer(data, args.device, args.tiny, 10**6, **VARIANTS[name])
        ms = _time_steps(tr, args.warmup, args.reps)
        res["variants"][name] = {"ms_per_step": ms, "img_per_s": 1e3 * tr.cfg.train.batch_size / ms,
                                 "minutes_for_250k": ms * 250_000 / 6e4}
        shutil.rmtree(tr.run_dir, ignore_errors=True)
        print(json.dumps({name: res["variants"][name]}), flush=True)
    fastest = min(res["variants"], key=lambda k: res["variants"][k]["ms_per_step"])
    for name in dict.fromkeys(["fp32", fastest]):
        tr = _trainer(data, args.device, args.tiny, args.quality_steps, **VARIANTS[name])
        final = tr.fit()
        res["variants"][name]["test_loss_after"] = {"steps": args.quality_steps, "loss": final["loss"], "psnr": final["psnr"]}
        shutil.rmtree(tr.run_dir, ignore_errors=True)
    res["fastest"] = fastest
    res["goal_met"] = res["variants"][fastest]["ms_per_step"] <= 1.2
    print(json.dumps(res, indent=2))
    if args.update_md:
        rows = "\n".join(f"| {k} | {v['ms_per_step']:.2f} | {v['img_per_s']:.0f} | {v['minutes_for_250k']:.1f} |"
                         + (f" {v['test_loss_after']['loss']:.4f} / {v['test_loss_after']['psnr']:.2f} dB |" if "test_loss_after" in v else " |")
                         for k, v in res["variants"].items())
        body = (f"`python benchmarks/bench_gpu_train.py` ({res['date']}, {res['device']}, torch {res['torch']})\n\n"
                "The paper's CIFAR-10 net, K = 512, batch 128, one full training step (everything included).\n\n"
                f"| variant | ms/step | images/s | minutes for 250k steps | test loss / PSNR after {args.quality_steps} steps |\n"
                f"|---|---|---|---|---|\n{rows}\n\nGoal ≤ 1.2 ms/step: **{'met' if res['goal_met'] else 'not met'}** ({fastest}).\n")
        replace_section(Path(args.update_md), "bench_gpu_train", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
