"""The learned codec on Kodak against Pillow's JPEG and WebP: bpp, PSNR, MS-SSIM, BD-rate, times, real bits vs NLL.

    python benchmarks/bench_codec.py [--model coco-rvq4 | --model PRIOR_RUN] [--images 24] [--refine N] [--update-md BENCHMARKS.md]

Every figure is measured on the same Kodak images (evaluation only: the codec
never trained on them): the codec writes real ``.vqz`` bytes and reads them
back; JPEG (optimised Huffman tables, 4:2:0) and WebP (method 6) go through
Pillow at a sweep of qualities. bpp = 8 * file bytes / pixels, averaged per
image; PSNR on RGB over all pixels, averaged per image (the convention of the
published Kodak curves). BD-rate: :func:`vqvae.codec.rd.bd_rate` over the PSNR
range both curves cover. ``--refine N``: the codec's codes also go through N
steps of encoder-side rate-distortion optimisation (:mod:`vqvae.codec.refine`),
and both curves (greedy and refined codes) are measured in the same run. Writes ``bench_out/codec/report.json``, the RD plot
``docs/codec/rd.png`` and an example crop ``docs/codec/example.png``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.mdsection import device_label, replace_section  # noqa: E402
from vqvae.codec import DEFAULT_MODEL, load_codec  # noqa: E402
from vqvae.codec.rd import bd_rate, pillow_codec  # noqa: E402
from vqvae.data.roots import data_roots
from vqvae.data.images import read_image  # noqa: E402
from vqvae.image.metrics import ms_ssim_per_image, mse_per_image, psnr_from_mse  # noqa: E402

JPEG_Q = (1, 3, 5, 8, 10, 15, 20, 30, 40, 50, 60, 75, 90)
WEBP_Q = (0, 2, 5, 10, 20, 30, 40, 50, 60, 75, 90)
PUBLISHED_30DB = {"JPEG": 0.61, "WebP": 0.37, "Ballé 2018 hyperprior": 0.25, "VVC intra": 0.17}


def kodak(root: str | None, n: int) -> list[tuple[str, torch.Tensor]]:
    for r in data_roots(root):
        files = sorted((r / "kodak").glob("kodim*.png"))
        if files:
            return [(f.stem, read_image(f, 3)) for f in files[:n]]
    raise SystemExit("Kodak not found: put kodim01..24.png in <data root>/kodak (see ../shared/data/README.md)")


def quality_of(x: torch.Tensor, y: torch.Tensor) -> dict:
    return {"psnr": psnr_from_mse(float(mse_per_image(x[None], y[None])[0])), "ms_ssim": float(ms_ssim_per_image(x[None], y[None])[0])}


def mean_curve(rows: list[dict], key: str) -> list[dict]:
    """Average the per-image rows of each setting ``key``."""
    out = []
    for k in sorted({r[key] for r in rows}):
        sel = [r for r in rows if r[key] == k]
        avg = {f: float(np.mean([r[f] for r in sel])) for f in sel[0] if f not in (key, "image")}
        out.append({key: k, **avg, "images": len(sel)})
    return out


def psnr_at(curve: list[dict], bpp: float) -> float:
    """PSNR of a baseline curve at ``bpp``, interpolated linearly in log-rate (nan outside it)."""
    r = np.log([c["bpp"] for c in curve])
    p = np.array([c["psnr"] for c in curve])
    order = np.argsort(r)
    r, p = r[order], p[order]
    return float(np.interp(math.log(bpp), r, p, left=np.nan, right=np.nan))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=DEFAULT_MODEL, help="a shipped codec model or a prior run directory")
    ap.add_argument("--images", type=int, default=24)
    ap.add_argument("--data-root")
    ap.add_argument("--out", default="bench_out/codec")
    ap.add_argument("--docs", default=str(REPO / "docs" / "codec"))
    ap.add_argument("--refine", type=int, default=0, help="also measure codes refined with this many steps (0: greedy only)")
    ap.add_argument("--update-md", help="write the results into this Markdown file (BENCHMARKS.md)")
    ap.add_argument("--card", help="write the per-image figures of the greedy codes into this model card (the shipped "
                    "model's: CI checks two images against them)")
    ap.add_argument("--baselines-only", action="store_true", help="only compute (and cache) the JPEG and WebP sweeps")
    ap.add_argument("--from-report", action="store_true", help="re-derive the summary, plot and Markdown from the saved report.json")
    args = ap.parse_args()
    if args.from_report:
        saved = json.loads((Path(args.out) / "report.json").read_text())
        report = summarize({k: v for k, v in saved.items() if k not in ("per_image", "per_image_greedy")}, saved["curves"], saved["per_image"])
        args.refine = report.get("refine", 0)
        _plot(saved["curves"], Path(args.docs) / "rd.png", args.refine)
        print(json.dumps(report, indent=2))
        if args.update_md:
            _write_md(args, report, Path(args.update_md))
        if args.card:
            replace_section(Path(args.card), "kodak_per_image", card_table(saved["per_image_greedy"] or saved["per_image"]))
        return 0
    images = kodak(args.data_root, args.images)
    codec = None if args.baselines_only else load_codec(args.model)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cache_path = out / "baselines.json"  # the Pillow sweeps do not depend on the model: computed once
    cache = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
    ours, greedy, jpeg, webp = [], [], [], []
    settings = ((args.refine, ours), (0, greedy)) if args.refine else ((0, ours),)
    for name, x in tqdm(images, desc="kodak"):
        for q in range(1, 0 if codec is None else codec.levels + 1):
            for refine, rows in settings:
                data, st = codec.compress(x, q, refine=refine)
                t0 = time.perf_counter()
                y = codec.decompress(data)
                dec = time.perf_counter() - t0
                rows.append({"image": name, "quality": q, "refine": refine, "bpp": st.bpp, "bytes": st.bytes,
                             "payload_bits": 8 * st.payload_bytes, "nll_bits": st.nll_bits,
                             "real_over_nll": 8 * st.payload_bytes / st.nll_bits, "encode_s": st.encode_s, "decode_s": dec,
                             **quality_of(x, y)})
        for fmt, qs, rows in (("JPEG", JPEG_Q, jpeg), ("WEBP", WEBP_Q, webp)):
            for q in qs:
                key = f"{name}/{fmt}/{q}"
                if key not in cache:
                    n, y = pillow_codec(x, fmt, q)
                    cache[key] = {"image": name, "quality": q, "bpp": 8 * n / (x.shape[1] * x.shape[2]), **quality_of(x, y)}
                rows.append(cache[key])
        cache_path.write_text(json.dumps(cache))
    if codec is None:
        return 0
    curves = {"ours": mean_curve(ours, "quality"), "jpeg": mean_curve(jpeg, "quality"), "webp": mean_curve(webp, "quality")}
    if greedy:
        curves["greedy"] = mean_curve(greedy, "quality")
    report = summarize({"date": time.strftime("%Y-%m-%d"), "device": device_label(), "torch": torch.__version__, "model": codec.name,
                        "images": len(images), "refine": args.refine}, curves, ours)
    (out / "report.json").write_text(json.dumps({**report, "per_image": ours, "per_image_greedy": greedy}, indent=2))
    docs = Path(args.docs)
    docs.mkdir(parents=True, exist_ok=True)
    _plot(curves, docs / "rd.png", args.refine)
    _example(codec, images, args.refine, docs / "example.png")
    print(json.dumps(report, indent=2))
    if args.update_md:
        _write_md(args, report, Path(args.update_md))
    if args.card:
        replace_section(Path(args.card), "kodak_per_image", card_table(greedy or ours))
    return 0


def card_table(rows: list[dict]) -> str:
    """Per Kodak image and quality, the ``.vqz`` file's bytes and the decoded PSNR of the greedy codes
    (``vqvae compress --refine 0``: deterministic, so a reinstalled model must reproduce them exactly)."""
    qs = sorted({r["quality"] for r in rows})
    head = "| image | " + " | ".join(f"q{q} bytes | q{q} PSNR dB" for q in qs) + " |"
    lines = [head, "|---" * (1 + 2 * len(qs)) + "|"]
    for name in sorted({r["image"] for r in rows}):
        by_q = {r["quality"]: r for r in rows if r["image"] == name}
        lines.append(f"| {name} | " + " | ".join(f"{by_q[q]['bytes']} | {by_q[q]['psnr']:.3f}" for q in qs) + " |")
    return "\n".join(lines)


def summarize(meta: dict, curves: dict, ours: list[dict]) -> dict:
    """BD-rates (PSNR, and MS-SSIM in dB: -10 log10(1 - MS-SSIM)) and the baselines at the codec's rates."""
    psnr = lambda c: [p["psnr"] for p in c]  # noqa: E731
    msdb = lambda c: [-10 * math.log10(1 - p["ms_ssim"]) for p in c]  # noqa: E731
    greedy = {"bd_rate_greedy_vs_jpeg_pct": bd_rate(rate(curves["jpeg"]), psnr(curves["jpeg"]), rate(curves["greedy"]), psnr(curves["greedy"])),
              "bd_rate_ours_vs_greedy_pct": bd_rate(rate(curves["greedy"]), psnr(curves["greedy"]), rate(curves["ours"]), psnr(curves["ours"]))
              } if "greedy" in curves else {}
    return {
        **meta, "curves": curves, **greedy,
        "bd_rate_ours_vs_jpeg_pct": bd_rate(rate(curves["jpeg"]), psnr(curves["jpeg"]), rate(curves["ours"]), psnr(curves["ours"])),
        "bd_rate_webp_vs_jpeg_pct": bd_rate(rate(curves["jpeg"]), psnr(curves["jpeg"]), rate(curves["webp"]), psnr(curves["webp"])),
        "bd_rate_ours_vs_webp_pct": bd_rate(rate(curves["webp"]), psnr(curves["webp"]), rate(curves["ours"]), psnr(curves["ours"])),
        "vs_webp_at_our_points": [{"quality": c["quality"], "bpp": c["bpp"], "psnr": c["psnr"], "webp_psnr": psnr_at(curves["webp"], c["bpp"]),
                                   "jpeg_psnr": psnr_at(curves["jpeg"], c["bpp"])} for c in curves["ours"]],
        "real_over_nll_max": max(r["real_over_nll"] for r in ours),
        "bd_rate_msssim_ours_vs_jpeg_pct": bd_rate(rate(curves["jpeg"]), msdb(curves["jpeg"]), rate(curves["ours"]), msdb(curves["ours"])),
        "bd_rate_msssim_ours_vs_webp_pct": bd_rate(rate(curves["webp"]), msdb(curves["webp"]), rate(curves["ours"]), msdb(curves["ours"])),
        "bd_rate_msssim_webp_vs_jpeg_pct": bd_rate(rate(curves["jpeg"]), msdb(curves["jpeg"]), rate(curves["webp"]), msdb(curves["webp"])),
    }


def _plot(curves: dict, path: Path, refine: int = 0) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    lines = (("ours", "vqvae codec (this repo)" + (f", --refine {refine}" if refine else ""), "o-"), ("greedy", "vqvae, greedy codes", "o:"), ("jpeg", "JPEG (Pillow)", "s--"),
             ("webp", "WebP (Pillow)", "^--"))
    for key, label, style in lines:
        if key not in curves:
            continue
        c = curves[key]
        axes[0].plot(rate(c), [p["psnr"] for p in c], style, label=label)
        axes[1].plot(rate(c), [p["ms_ssim"] for p in c], style, label=label)
    for name, bpp in PUBLISHED_30DB.items():
        axes[0].plot([bpp], [30.0], "x", label=f"{name} (published, 30 dB)")
    axes[0].set_ylabel("PSNR (dB)")
    axes[1].set_ylabel("MS-SSIM")
    for a in axes:
        a.set_xlabel("bits per pixel")
        a.set_xlim(0, 1.5)
        a.grid(alpha=0.3)
    axes[0].set_ylim(18, 36)
    axes[0].legend(fontsize=7)
    fig.suptitle("Kodak (24 images): rate-distortion")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def rate(c):
    return [p["bpp"] for p in c]


def _example(codec, images, refine: int, path: Path) -> None:
    """kodim23's centre at the middle quality, next to JPEG and WebP at the nearest bpp above it."""
    from vqvae.data.images import write_image

    name, x = next(((n, im) for n, im in images if n == "kodim23"), images[0])
    q = max(1, (codec.levels + 1) // 2)
    data, st = codec.compress(x, q, refine=refine)
    y = codec.decompress(data)
    crops = [x, y]
    for fmt, qs in (("JPEG", JPEG_Q), ("WEBP", WEBP_Q)):
        best = None
        for jq in qs:
            n, z = pillow_codec(x, fmt, jq)
            if 8 * n / (x.shape[1] * x.shape[2]) >= st.bpp:
                best = z
                break
        crops.append(best if best is not None else z)
    h, w = x.shape[1:]
    t, l_ = h // 2 - 96, w // 2 - 96
    tiles = [c[:, t : t + 192, l_ : l_ + 192] for c in crops]
    write_image(path, torch.cat(tiles, dim=2))


def _write_md(args, report: dict, md: Path) -> None:
    cmd = "python benchmarks/bench_codec.py" + ("" if args.model == DEFAULT_MODEL else f" --model {args.model}") + \
          ("" if args.images == 24 else f" --images {args.images}") + (f" --refine {args.refine}" if args.refine else "")
    c = report["curves"]
    lines = [f"`{cmd}` ({report['date']}, {report['device']}, torch {report['torch']}), model `{report['model']}`, "
             f"{report['images']} Kodak images", "",
             "| codec | setting | bpp | PSNR (dB) | MS-SSIM | encode s/image | decode s/image | real bits / model NLL |",
             "|---|---|---|---|---|---|---|---|"]
    for key, label in (("ours", "vqvae" + (f", refine {report['refine']}" if report.get("refine") else "")), ("greedy", "vqvae, greedy codes")):
        for p in c.get(key, []):
            lines.append(f"| {label} | quality {p['quality']} | **{p['bpp']:.3f}** | **{p['psnr']:.2f}** | {p['ms_ssim']:.4f} | "
                         f"{p['encode_s']:.2f} | {p['decode_s']:.2f} | {p['real_over_nll']:.4f} |")
    for key, label in (("jpeg", "JPEG"), ("webp", "WebP")):
        for p in c[key]:
            lines.append(f"| {label} | q={p['quality']} | {p['bpp']:.3f} | {p['psnr']:.2f} | {p['ms_ssim']:.4f} | | | |")
    if "bd_rate_greedy_vs_jpeg_pct" in report:
        lines += ["", f"Refined codes against greedy codes (same model, same decoder, same file format): BD-rate "
                      f"**{report['bd_rate_ours_vs_greedy_pct']:+.1f} %**; greedy codes against JPEG: {report['bd_rate_greedy_vs_jpeg_pct']:+.1f} %."]
    lines += ["", f"BD-rate against JPEG over the PSNR range both cover: **vqvae {report['bd_rate_ours_vs_jpeg_pct']:+.1f} %**, "
                  f"WebP {report['bd_rate_webp_vs_jpeg_pct']:+.1f} % (the issue quotes -35 % for WebP). vqvae against WebP: "
                  f"{report['bd_rate_ours_vs_webp_pct']:+.1f} %.", "",
              f"The same on MS-SSIM (in dB, −10 log10(1 − MS-SSIM)): vqvae {report['bd_rate_msssim_ours_vs_jpeg_pct']:+.1f} % against JPEG, "
              f"{report['bd_rate_msssim_ours_vs_webp_pct']:+.1f} % against WebP (WebP against JPEG: {report['bd_rate_msssim_webp_vs_jpeg_pct']:+.1f} %).", "",
              "At the codec's own rates, the PSNR of the baselines at the same bpp (log-rate interpolation; – where the baseline cannot go that low):", "",
              "| quality | bpp | vqvae PSNR | WebP PSNR | JPEG PSNR |", "|---|---|---|---|---|"]
    fmt = lambda v: "–" if v != v else f"{v:.2f}"  # noqa: E731
    for p in report["vs_webp_at_our_points"]:
        lines.append(f"| {p['quality']} | {p['bpp']:.3f} | {p['psnr']:.2f} | {fmt(p['webp_psnr'])} | {fmt(p['jpeg_psnr'])} |")
    lines += ["", f"Real payload bits over the prior's NLL of the coded codes: at most {report['real_over_nll_max']:.4f} on any image and quality.",
              "", "![rate-distortion](docs/codec/rd.png)", "",
              "Example (kodim23 centre, 192 x 192): original | vqvae (middle quality) | JPEG | WebP at the nearest bpp at or above vqvae's:", "",
              "![example](docs/codec/example.png)"]
    replace_section(md, "bench_codec", "\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
