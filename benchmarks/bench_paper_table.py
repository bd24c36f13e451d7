"""The paper's section 4.1 on CIFAR-10: VAE, VQ-VAE and VIMCO with the same nets, data, batch and budget; and
posterior collapse under a PixelCNN decoder.

    python benchmarks/bench_paper_table.py --minutes 20 --update-md BENCHMARKS.md            # CPU: narrowed nets
    python benchmarks/bench_paper_table.py --paper --minutes 120 --update-md BENCHMARKS.md   # GPU: the paper's sizes

Part 1 (the table). Three runs on the full CIFAR-10 (``--data cifar10``): ``vae`` (Gaussian latents, preset
``vae.yaml``), the VQ-VAE (``cifar10-8x8x10.yaml``: the paper's 8 x 8 x 10 latents of K = 512) and ``vimco``
(categorical latents on that grid, k samples), each trained for ``--minutes`` with the same batch, learning rate,
schedule and net width, then scored on the same first ``--test-images`` test images: bits/dim as the k-sample
importance-weighted bound (k = ``--iw-samples``) and as the ELBO; for the VQ-VAE the posterior is one-hot, so both
are its uniform-prior bound (the paper's). Beside them the paper's 4.51 / 4.67 / 5.14. One picture: the same test
images and their three reconstructions. Without ``--paper`` the nets are narrowed to ``--width`` channels (the
paper's 256-channel net takes about 2 s a step on 2 CPU cores) and the batch is ``--batch``.

Part 2 (posterior collapse). The same three bottlenecks (``vae``, ``vq``, ``vimco`` archs) with
``--model.decoder=pixelcnn`` (a gated PixelCNN over the pixels conditioned on the latents) on Fashion-MNIST,
``--collapse-minutes`` each: per model the KL in nats per image, the drop in the decoder's NLL when it gets the
image's own latents rather than another image's (bits per image), and bits/dim; a picture of samples with true and
swapped latents (:mod:`vqvae.baselines.collapse`).

Runs are kept under ``--out`` and reused unless ``--fresh``. Prints JSON; ``--update-md`` writes the sections
``paper_table`` and ``posterior_collapse``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.mdsection import device_label, replace_section  # noqa: E402
from vqvae.baselines import bounds  # noqa: E402
from vqvae.baselines.collapse import latent_information, swap_figure  # noqa: E402
from vqvae.core import checkpoint, plots  # noqa: E402
from vqvae.core.runs import DatasetRecipe, RunArgs, train  # noqa: E402
from vqvae.core.task import load_split  # noqa: E402
from vqvae.image import inference  # noqa: E402

PAPER = {"VAE": 4.51, "VQ-VAE": 4.67, "VIMCO": 5.14}
TABLE = (("VAE", "vae"), ("VQ-VAE", "cifar10-8x8x10"), ("VIMCO", "vimco"))
COLLAPSE = (("VAE", "vae"), ("VQ-VAE", "vq"), ("VIMCO", "vimco"))


def _train(run: Path, preset: str, data: str, minutes: float, overrides: list[str], data_root: str | None, fresh: bool):
    if fresh:
        shutil.rmtree(run, ignore_errors=True)
    if not (run / "eval.json").is_file():
        t0 = time.time()
        train(DatasetRecipe(RunArgs(out=str(run), steps=10**7, minutes=minutes, data_root=data_root, overrides=overrides,
                                    progress=False), data, preset))
        (run / "wall_s.txt").write_text(f"{time.time() - t0:.1f}\n")
    return checkpoint.load_run(run)


def _threads(args) -> list[str]:
    return [f"--train.threads={args.threads}"] if args.threads else []


def _steps(run: Path) -> int:
    return int(json.loads((run / "eval.json").read_text())["step"])


def _score(cfg, model, x: torch.Tensor, k: int) -> dict:
    if cfg.arch == "vqvae":  # a one-hot posterior: the uniform-prior bound is the ELBO and every IW bound
        m = inference.evaluate(model, x, batch_size=64)
        return {"bits_per_dim": m["bits_per_dim"], "elbo_bits_per_dim": m["bits_per_dim"], "bound": "ELBO (one-hot q: = IW)",
                "kl_nats": None, "psnr": m["psnr"]}
    m = bounds.evaluate(model, x, k, batch_size=16)
    return {k_: m[k_] for k_ in ("bits_per_dim", "elbo_bits_per_dim", "bound", "kl_nats", "psnr")}


def table(args, out: Path) -> dict:
    width = [] if args.paper else [f"--model.hidden={args.width}", f"--model.res_hidden={args.width}"]
    common = [*width, *_threads(args), f"--train.batch_size={args.batch}", f"--train.lr={args.lr}", "--train.lr_schedule=cosine",
              "--train.warmup_steps=50", f"--train.eval_images={args.test_images}", "--train.eval_every=1000000",
              f"--train.final_eval_images={min(256, args.test_images)}"]  # the run's own (eval.json); the table scores below
    test = None
    rows, recons = {}, []
    for name, preset in TABLE:
        run = out / preset
        extra = [f"--model.iw_samples={args.iw_samples}"] if preset != "cifar10-8x8x10" else []
        cfg, model = _train(run, preset, args.data, args.minutes, common + extra, args.data_root, args.fresh)
        if test is None:
            test = load_split(cfg, "test", args.data_root).images[: args.test_images]
        rows[name] = {**_score(cfg, model, test, args.iw_samples), "steps": _steps(run), "paper": PAPER[name],
                      "params_m": sum(p.numel() for p in model.parameters()) / 1e6}
        recons.append(inference.reconstruct(model, test[:8]) if cfg.arch == "vqvae" else model.reconstruct(test[:8]))
    pic = Path(args.docs) / "reconstructions.png"
    plots.save_grid(torch.cat([test[:8], *recons]), pic, nrow=8, scale=2)
    return {"models": rows, "picture": str(pic), "minutes": args.minutes, "batch": args.batch, "lr": args.lr,
            "width": 256 if args.paper else args.width, "test_images": len(test), "iw_samples": args.iw_samples}


def collapse(args, out: Path) -> dict:
    common = [*_threads(args), f"--model.hidden={args.width}", f"--model.res_hidden={args.width}", "--model.decoder=pixelcnn", f"--train.batch_size={args.batch}",
              f"--train.lr={args.lr}", "--train.lr_schedule=cosine", "--train.warmup_steps=50", "--train.eval_images=256",
              "--train.eval_every=1000000", f"--train.final_eval_images={min(256, args.collapse_images)}", f"--model.iw_samples={args.iw_samples}",
              "--model.pixel_layers=6", "--model.pixel_channels=32"]
    one = ["--model.num_codebooks=1", "--model.embedding_dim=16"]  # one code per position of the 7 x 7 grid
    per_arch = {"vae": ["--model.latent_dim=16"], "vq": one, "vimco": one}
    rows, models, test = {}, {}, None
    for name, arch in COLLAPSE:
        run = out / f"collapse-{arch}"
        cfg, model = _train(run, arch, "fashion-mnist", args.collapse_minutes, common + per_arch[arch], args.data_root, args.fresh)
        if test is None:
            test = load_split(cfg, "test", args.data_root).images[: args.collapse_images]
        m = bounds.evaluate(model, test, args.iw_samples, batch_size=16)
        rows[name] = {**latent_information(model, test, batch_size=32), "bits_per_dim": m["bits_per_dim"],
                      "elbo_bits_per_dim": m["elbo_bits_per_dim"], "bound": m["bound"], "steps": _steps(run)}
        models[name] = model
    pic = Path(args.docs) / "collapse_swaps.png"
    swap_figure(models, test[:8], pic)
    return {"models": rows, "picture": str(pic), "minutes": args.collapse_minutes, "test_images": len(test)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=20.0, help="training budget of each table model")
    ap.add_argument("--collapse-minutes", type=float, default=10.0, help="training budget of each collapse model")
    ap.add_argument("--paper", action="store_true", help="the paper's widths (256 channels) and batch 128 (a GPU)")
    ap.add_argument("--width", type=int, default=64, help="net channels without --paper")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--data", default="cifar10")
    ap.add_argument("--data-root")
    ap.add_argument("--test-images", type=int, default=1000)
    ap.add_argument("--collapse-images", type=int, default=1000)
    ap.add_argument("--iw-samples", type=int, default=64)
    ap.add_argument("--parts", default="table,collapse")
    ap.add_argument("--out", default="bench_out/paper_table")
    ap.add_argument("--docs", default=str(REPO / "docs" / "paper_table"))
    ap.add_argument("--fresh", action="store_true")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads for training and scoring (0: torch's default)")
    ap.add_argument("--update-md")
    args = ap.parse_args()
    if args.paper:
        args.batch = 128
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    report = {"date": time.strftime("%Y-%m-%d"), "device": device_label(), "torch": torch.__version__, "argv": sys.argv[1:],
              "threads": torch.get_num_threads()}
    parts = args.parts.split(",")
    if "table" in parts:
        report["table"] = table(args, out)
    if "collapse" in parts:
        report["collapse"] = collapse(args, out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    if args.update_md:
        write_md(report, Path(args.update_md))
    return 0


def _cmd(report: dict) -> str:
    return "python benchmarks/bench_paper_table.py " + " ".join(report["argv"])


def write_md(report: dict, md: Path) -> None:
    head = (f"`{_cmd(report)}` ({report['date']}, {report['device']}, torch {report['torch']}, "
            f"{report.get('threads', '?')} training thread(s))")
    if "table" in report:
        t = report["table"]
        lines = [head, "", f"Full CIFAR-10, the same first {t['test_images']} test images; nets {t['width']} channels wide, "
                 f"batch {t['batch']}, Adam {t['lr']} (cosine), {t['minutes']} min of training each.", "",
                 "| model | bits/dim (bound) | ELBO bits/dim | KL nats/image | PSNR dB | steps | params (M) | paper |",
                 "|---|---|---|---|---|---|---|---|"]
        for name, r in t["models"].items():
            kl = "–" if r["kl_nats"] is None else f"{r['kl_nats']:.1f}"
            lines.append(f"| {name} | **{r['bits_per_dim']:.3f}** ({r['bound']}) | {r['elbo_bits_per_dim']:.3f} | {kl} | "
                         f"{r['psnr']:.2f} | {r['steps']} | {r['params_m']:.2f} | {r['paper']} |")
        lines += ["", f"![originals, then VAE, VQ-VAE, VIMCO reconstructions](docs/paper_table/{Path(t['picture']).name})"]
        replace_section(md, "paper_table", "\n".join(lines))
    if "collapse" in report:
        c = report["collapse"]
        lines = [head, "", f"Fashion-MNIST, a gated PixelCNN decoder over the pixels conditioned on the latents, "
                 f"{c['minutes']} min each, {c['test_images']} test images.", "",
                 "| bottleneck | KL nats/image | NLL given own latents (bits/image) | given another image's | information (bits/image) | bits/dim (bound) |",
                 "|---|---|---|---|---|---|"]
        for name, r in c["models"].items():
            lines.append(f"| {name} | {r['kl_nats']:.2f} | {r['nll_true_bits']:.1f} | {r['nll_swapped_bits']:.1f} | "
                         f"**{r['information_bits']:.1f}** | {r['bits_per_dim']:.3f} ({r['bound']}) |")
        lines += ["", f"![samples with true and swapped latents](docs/paper_table/{Path(c['picture']).name})"]
        replace_section(md, "posterior_collapse", "\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
