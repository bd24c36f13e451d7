"""Transformer-prior throughput on a GPU: training tokens/s and KV-cached sampling tokens/s.

Training: one optimizer step (forward through ``F.scaled_dot_product_attention``,
which dispatches to flash attention on CUDA in bf16, backward, fused AdamW) on
random code maps, in fp32 and bf16 autocast, eager and ``torch.compile``d.
Sampling: ``sample(use_cache=True)`` of a batch of 32x32 code maps (1024 tokens).

    python benchmarks/bench_gpu_prior.py --update-md BENCHMARKS.md      # on a CUDA machine
    python benchmarks/bench_gpu_prior.py --device cpu --tiny             # smoke test of the script
    python benchmarks/bench_gpu_prior.py --device cpu --small --update-md BENCHMARKS.md

``--small`` (6 layers x 256, 16x16 codes, batch 16) is the size for a CPU run,
whose figures go to their own section (``bench_gpu_prior_cpu``) as ratios.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.mdsection import device_label, replace_section  # noqa: E402
from vqvae.priors.transformer import TransformerConfig, TransformerPrior  # noqa: E402


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def train_tokens_per_s(cfg: TransformerConfig, batch: int, dev: torch.device, amp: bool, compiled: bool, steps: int) -> float:
    torch.manual_seed(0)
    m = TransformerPrior(cfg).to(dev)
    if compiled:
        m.compile()
    opt = torch.optim.AdamW(m.parameters(), lr=3e-4, **({"fused": True} if dev.type == "cuda" else {}))
    codes = torch.randint(0, cfg.codebook_size, (batch, cfg.height, cfg.width), device=dev)
    ctx = torch.autocast(dev.type, dtype=torch.bfloat16) if amp else contextlib.nullcontext()

    def step():
        with ctx:
            loss = m(codes).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(max(3, steps // 5)):
        step()
    _sync(dev)
    t = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(dev)
    return steps * batch * cfg.seq_len / (time.perf_counter() - t)


@torch.no_grad()
def sample_tokens_per_s(cfg: TransformerConfig, batch: int, dev: torch.device, amp: bool) -> float:
    m = TransformerPrior(cfg).to(dev).eval()
    ctx = torch.autocast(dev.type, dtype=torch.bfloat16) if amp else contextlib.nullcontext()
    with ctx:
        m.sample(batch, generator=torch.Generator().manual_seed(0))  # warm-up
        _sync(dev)
        t = time.perf_counter()
        m.sample(batch, generator=torch.Generator().manual_seed(1))
        _sync(dev)
    return batch * cfg.seq_len / (time.perf_counter() - t)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--tiny", action="store_true", help="a tiny model and 2 steps (tests the script)")
    ap.add_argument("--small", action="store_true", help="6 layers x 256 over 16x16 codes, batch 16: the CPU size")
    ap.add_argument("--update-md")
    args = ap.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device: this benchmark measures GPU throughput (use --device cpu --tiny to test the script)", file=sys.stderr)
        return 2
    dev = torch.device(args.device)
    if args.tiny:
        size, hw, batch, steps = dict(n_layer=2, n_head=2, n_embd=32), 8, 4, 2
    elif args.small:
        size, hw, batch, steps = dict(n_layer=6, n_head=8, n_embd=256), 16, 16, 10
    else:
        size, hw, batch, steps = dict(n_layer=12, n_head=12, n_embd=768), 32, args.batch, args.steps
    cfg = TransformerConfig(codebook_size=512, height=hw, width=hw, **size)
    res = {"config": {**size, "codes": f"{hw}x{hw}", "K": 512, "batch": batch}, "train_tokens_per_s": {}, "sample_tokens_per_s": {},
           "device": device_label(args.device), "torch": torch.__version__, "date": time.strftime("%Y-%m-%d")}
    variants = (("fp32", False, False), ("bf16", True, False), ("bf16+compile", True, True))
    if dev.type != "cuda":  # no bf16 units on most CPUs: compile the fp32 model instead
        variants = (("fp32", False, False), ("fp32+compile", False, True), ("bf16", True, False))
    if args.tiny and dev.type != "cuda":  # the smoke test (CI): compiling on the CPU would be most of its time
        variants = (("fp32", False, False), ("bf16", True, False))
    for name, amp, comp in variants:
        res["train_tokens_per_s"][name] = train_tokens_per_s(cfg, batch, dev, amp, comp, steps)
        print(json.dumps({name: res["train_tokens_per_s"][name]}), flush=True)
    for name, amp in (("fp32", False), ("bf16", True)):
        res["sample_tokens_per_s"][name] = sample_tokens_per_s(cfg, batch, dev, amp)
    print(json.dumps(res, indent=2))
    if args.update_md:
        tr = " | ".join(f"{v:,.0f}" for v in res["train_tokens_per_s"].values())
        sa = " | ".join(f"{v:,.0f}" for v in res["sample_tokens_per_s"].values())
        cols = [*(f"training tokens/s: {k}" for k in res["train_tokens_per_s"]),
                *(f"sampling tokens/s (KV cache): {k}" for k in res["sample_tokens_per_s"])]
        cmd = " ".join(["python benchmarks/bench_gpu_prior.py", *sys.argv[1:]]).replace(f" --update-md {args.update_md}", "")
        body = (f"`{cmd}` ({res['date']}, {res['device']}, torch {res['torch']})\n\n"
                f"Transformer prior {size['n_layer']} layers × {size['n_embd']}, {hw}×{hw} codes ({hw * hw} tokens), K = 512, batch {batch}.\n\n"
                f"| {' | '.join(cols)} |\n|{'---|' * len(cols)}\n| {tr} | {sa} |\n")
        replace_section(Path(args.update_md), "bench_gpu_prior" if dev.type == "cuda" else "bench_gpu_prior_cpu", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
