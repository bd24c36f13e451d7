"""Sampling speed of the priors: the transformer with and without its KV cache, and the PixelCNN.

Randomly initialised models of the sizes a user trains (the transformer's
defaults: 6 layers x 256 wide, 8 heads; K = 512 codes), on this machine's CPU
(or ``--device cuda``). Prints one JSON object; ``--update-md BENCHMARKS.md``
writes the tables into the ``bench_sampling`` section of that file (appended
if the file has none).

Transformer, at 7 x 7 and 32 x 32 codes (L = 49 and 1024), batch 16:
``sample(use_cache=True)`` is always timed in full. ``sample(use_cache=False)``
re-runs the whole prefix at every step, so its cost grows with the position;
the script first times one uncached step (full-prefix forward, head on the last
position, draw) at ``--points`` prefix lengths spread over 0 .. L-1 and sums the
piecewise-linear interpolation of those times over all L steps (the estimate).
If the estimate is under ``--max-uncached-s`` (and not ``--quick``) the uncached
run is then also timed in full and that measured time is reported; otherwise the
estimate is, marked ``"uncached_method": "estimated"``. The 7 x 7 case is
always timed in full, and its estimate/measured ratio is reported as a check of
the estimator. Tokens/s = batch * L / seconds; the speed-up is uncached /
cached time.

PixelCNN (:mod:`vqvae.priors.pixelcnn`, its default widths): samples/s at 7 x 7
and 8 x 8 codes, batch 64. Skipped, with the reason in the JSON, if that module
cannot be imported.

    python benchmarks/bench_sampling.py --update-md BENCHMARKS.md
    python benchmarks/bench_sampling.py --max-uncached-s 1e9 --update-md BENCHMARKS.md  # time uncached L = 1024 in full (tens of minutes on 2 cores)
    python benchmarks/bench_sampling.py --tiny                          # smoke test, seconds
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.mdsection import cpu_name, replace_section  # noqa: E402
from vqvae.priors.sequence import sample_from  # noqa: E402
from vqvae.priors.transformer import TransformerConfig, TransformerPrior  # noqa: E402


def timed(fn, device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


@torch.no_grad()
def estimate_uncached(m: TransformerPrior, batch: int, points: int, device) -> float:
    """Seconds for ``sample(batch, use_cache=False)``: one uncached step (as ``sample`` runs it) timed at
    ``points`` prefix lengths, interpolated linearly over every step 0 .. L-1 and summed."""
    L = m.config.seq_len
    seq = torch.randint(0, m.config.codebook_size, (batch, L), device=device)
    ts = sorted(set(np.linspace(0, L - 1, min(points, L)).round().astype(int).tolist()))
    m.prefix_logits(seq[:, :1])  # warm-up
    costs = []
    for t in ts:
        one = lambda: sample_from(m.prefix_logits(seq[:, :t]))  # noqa: E731
        dt = [timed(one, device)]
        while sum(dt) < 0.05 and len(dt) < 20:  # repeat cheap steps, average
            dt.append(timed(one, device))
        costs.append(sum(dt) / len(dt))
    return float(np.interp(np.arange(L), ts, costs).sum())


def bench_transformer(cfg: TransformerConfig, batch: int, args, device) -> dict:
    torch.manual_seed(0)
    m = TransformerPrior(cfg).to(device).eval()
    L = cfg.seq_len
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    m.sample(batch, generator=gen())  # warm-up (allocator, kernels)
    cached = timed(lambda: m.sample(batch, generator=gen(), use_cache=True), device)
    est = estimate_uncached(m, batch, args.points, device)
    full = not args.quick and est < args.max_uncached_s
    always_full = L <= args.always_full_len
    row = {"codes": f"{cfg.height}x{cfg.width}", "seq_len": L, "batch": batch, "cached_s": cached, "uncached_estimate_s": est}
    if full or always_full:
        unc = timed(lambda: m.sample(batch, generator=gen(), use_cache=False), device)
        row.update(uncached_s=unc, uncached_method="measured", estimate_over_measured=est / unc)
    else:
        row.update(uncached_s=est, uncached_method=f"estimated ({min(args.points, L)} prefix lengths)")
    row.update(
        cached_tokens_per_s=batch * L / cached,
        uncached_tokens_per_s=batch * L / row["uncached_s"],
        cached_samples_per_s=batch / cached,
        speedup=row["uncached_s"] / cached,
    )
    return row


def bench_pixelcnn(sizes, batch: int, tiny: bool, device) -> dict:
    try:
        from vqvae.priors.pixelcnn import PixelCNNConfig, PixelCNNPrior
    except Exception as e:  # written concurrently: the transformer part must still run without it
        return {"skipped": f"cannot import vqvae.priors.pixelcnn: {type(e).__name__}: {e}"}
    out = {"cases": []}
    try:
        for h, w in sizes:
            kw = dict(codebook_size=64 if tiny else 512, num_codebooks=1, height=h, width=w, num_classes=0)
            if tiny:
                kw.update(channels=16, layers=2)
            cfg = PixelCNNConfig(**kw)
            out["config"] = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("height", "width")}
            torch.manual_seed(0)
            m = PixelCNNPrior(cfg).to(device).eval()
            m.sample(2)  # warm-up
            dt = timed(lambda: m.sample(batch), device)
            out["cases"].append({"codes": f"{h}x{w}", "seq_len": h * w, "batch": batch, "s": dt, "samples_per_s": batch / dt})
    except Exception as e:
        out["error"] = f"{type(e).__name__}: {e}"
    return out


def markdown(result: dict, cmd: str) -> str:
    tr = result["transformer"]
    c = tr["config"]
    lines = [
        f"`{cmd}` ({result['date']}, {result['device']}, torch {result['torch']})",
        "",
        f"Transformer prior: {c['n_layer']} layers x {c['n_embd']}, {c['n_head']} heads, K = {c['codebook_size']} "
        f"({tr['params'] / 1e6:.2f} M parameters, random init); `sample()` with and without the KV cache.",
        "",
        "| codes | L | batch | cached tokens/s | uncached tokens/s | speed-up | uncached time |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in tr["cases"]:
        how = "measured" if r["uncached_method"] == "measured" else "**estimated**"
        lines.append(
            f"| {r['codes']} | {r['seq_len']} | {r['batch']} | {r['cached_tokens_per_s']:.0f} | {r['uncached_tokens_per_s']:.0f} "
            f"| **{r['speedup']:.1f}x** | {r['uncached_s']:.1f} s ({how}) |"
        )
    big = max(tr["cases"], key=lambda r: r["seq_len"])
    lines += ["", f"Goal ≥ 10x at L = {big['seq_len']}: **{'met' if big['speedup'] >= 10 else 'not met'}** ({big['speedup']:.1f}x)."]
    chk = [r for r in tr["cases"] if "estimate_over_measured" in r]
    if any(r["uncached_method"] != "measured" for r in tr["cases"]):
        lines.append(
            "Estimated uncached times: one uncached step timed at evenly spaced prefix lengths, interpolated linearly "
            "over all L steps and summed"
            + (f"; at L = {chk[0]['seq_len']} that estimate was {chk[0]['estimate_over_measured']:.2f}x the measured time." if chk else ".")
        )
    pc = result["pixelcnn"]
    lines += [""]
    if "skipped" in pc:
        lines.append(f"PixelCNN: skipped ({pc['skipped']}).")
    else:
        pcc = pc.get("config", {})
        lines += [f"PixelCNN prior ({', '.join(f'{k}={v}' for k, v in pcc.items())}, random init):", ""]
        lines += ["| codes | L | batch | samples/s |", "|---|---|---|---|"]
        lines += [f"| {r['codes']} | {r['seq_len']} | {r['batch']} | {r['samples_per_s']:.1f} |" for r in pc["cases"]]
        if "error" in pc:
            lines.append(f"\nPixelCNN error: {pc['error']}")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=16, help="transformer batch")
    ap.add_argument("--pixelcnn-batch", type=int, default=64)
    ap.add_argument("--quick", action="store_true", help="estimate every uncached run longer than --always-full-len instead of timing it")
    ap.add_argument("--max-uncached-s", type=float, default=120.0, help="time an uncached run in full only if estimated under this")
    ap.add_argument("--always-full-len", type=int, default=64, help="uncached runs up to this many codes are always timed in full")
    ap.add_argument("--points", type=int, default=16, help="prefix lengths timed for the uncached estimate")
    ap.add_argument("--tiny", action="store_true", help="tiny models and sizes (a smoke test, seconds)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--update-md", default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    t0 = time.time()
    if args.tiny:
        model_kw, sizes, pc_sizes = dict(n_layer=2, n_head=2, n_embd=32, codebook_size=64), [(7, 7), (16, 16)], [(7, 7), (8, 8)]
        args.batch, args.pixelcnn_batch = min(args.batch, 4), min(args.pixelcnn_batch, 8)
    else:
        model_kw, sizes, pc_sizes = dict(n_layer=6, n_head=8, n_embd=256, codebook_size=512), [(7, 7), (32, 32)], [(7, 7), (8, 8)]
    cfgs = [TransformerConfig(height=h, width=w, **model_kw) for h, w in sizes]
    params = sum(p.numel() for p in TransformerPrior(cfgs[-1]).parameters())
    cases = [bench_transformer(cfg, args.batch, args, device) for cfg in cfgs]
    if device.type == "cuda":
        dev = "cuda: " + torch.cuda.get_device_name(device)
    else:
        dev = f"CPU: {cpu_name()}, {torch.get_num_threads()} threads"
    result = {
        "transformer": {
            "config": {k: v for k, v in dataclasses.asdict(cfgs[-1]).items() if k not in ("height", "width")},
            "params": params,
            "cases": cases,
        },
        "pixelcnn": bench_pixelcnn(pc_sizes, args.pixelcnn_batch, args.tiny, device),
        "device": dev,
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d"),
        "wall_s": time.time() - t0,
    }
    print(json.dumps(result, indent=2))
    if args.update_md:
        argv, skip = [], False  # the command line, less --update-md and its file
        for a in sys.argv[1:]:
            if skip or a == "--update-md":
                skip = not skip and a == "--update-md"
                continue
            if not a.startswith("--update-md="):
                argv.append(a)
        cmd = " ".join(["python benchmarks/bench_sampling.py", *argv])
        replace_section(Path(args.update_md), "bench_sampling", markdown(result, cmd))
    return 0


if __name__ == "__main__":
    sys.exit(main())
