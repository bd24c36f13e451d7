"""Priors over codes, end to end: tokenizer -> classifier -> priors -> bits/dim and sample scores.

Runs the project's own commands with their presets (fixed step counts, so the
figures do not depend on how busy the machine is):

1. ``vqvae train --data D`` (or ``--tokenizer-config``) -> the tokenizer;
2. ``vqvae classifier train --data D`` (labelled sets) -> the scoring classifier;
3. ``vqvae prior train --tokenizer TOK --arch A [--conditional]`` for each arch;
4. ``vqvae eval PRIOR --classifier CLS -n N``: test NLL in bits/code, the bound in
   bits/dim under the learned and the uniform prior, the accuracy of
   class-conditional samples and a classifier Fréchet distance of samples and
   of reconstructions to the test set.

Prints one JSON object; ``--update-md BENCHMARKS.md`` writes the section
``bench_priors:<data>`` and copies the sample grids to ``docs/priors/``.
Existing runs under ``--out`` are reused unless ``--fresh``.

    python benchmarks/bench_priors.py --data fashion-mnist --update-md BENCHMARKS.md
    python benchmarks/bench_priors.py --data cifar10-subset --tokenizer-config cifar10-8x8x10 --archs transformer \\
        --unconditional --prior-overrides=--train.batch_size=16,--train.steps=450 --update-md BENCHMARKS.md
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
from vqvae.core import checkpoint  # noqa: E402
from vqvae.core.runs import DatasetRecipe, RunArgs, train  # noqa: E402
from vqvae.priors.evaluation import evaluate_prior  # noqa: E402
from vqvae.priors.recipe import PriorRecipe  # noqa: E402
from vqvae.priors.sampling import sample_run  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _slug(name: str) -> str:
    return Path(name.replace("{split}", "")).stem.strip("_-") or "data"


def _split(s: str) -> list[str]:
    return [o for o in s.split(",") if o]


def _done(run: Path) -> bool:
    return (run / "eval.json").is_file() and (run / checkpoint.MODEL).is_file()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="fashion-mnist")
    ap.add_argument("--out", help="folder for the runs (default bench_out/priors-<data>)")
    ap.add_argument("--tokenizer-config", help="tokenizer preset or YAML (default: the dataset's preset)")
    ap.add_argument("--archs", default="pixelcnn,transformer")
    ap.add_argument("--unconditional", action="store_true", help="train unconditional priors (default: class-conditional)")
    ap.add_argument("--no-classifier", action="store_true")
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--temperatures", default="1.0,0.8", help="sampling temperatures at which samples are scored")
    ap.add_argument("--prior-overrides", default="", help="comma-separated --section.key=value for the priors")
    ap.add_argument("--tokenizer-overrides", default="", help="comma-separated overrides for the tokenizer")
    ap.add_argument("--classifier-overrides", default="", help="comma-separated overrides for the classifier")
    ap.add_argument("--fresh", action="store_true", help="retrain runs that exist")
    ap.add_argument("--update-md")
    args = ap.parse_args()
    out = Path(args.out or f"bench_out/priors-{args.data}")
    if args.fresh:
        shutil.rmtree(out, ignore_errors=True)
    t0 = time.time()
    timings = {}
    tok, cls = out / "tokenizer", out / "classifier"
    if not _done(tok):
        shutil.rmtree(tok, ignore_errors=True)
        t = time.time()
        train(DatasetRecipe(RunArgs(out=str(tok), overrides=["--train.minutes=0", *_split(args.tokenizer_overrides)], progress=False),
                            args.data, args.tokenizer_config))
        timings["tokenizer_s"] = time.time() - t
    tok_eval = json.loads((tok / "eval.json").read_text())
    use_cls = not args.no_classifier
    if use_cls and not _done(cls):
        shutil.rmtree(cls, ignore_errors=True)
        t = time.time()
        train(DatasetRecipe(RunArgs(out=str(cls), overrides=["--train.minutes=0", *_split(args.classifier_overrides)], progress=False),
                            args.data, "classifier"))
        timings["classifier_s"] = time.time() - t
    overrides = _split(args.prior_overrides)
    results = {}
    for arch in args.archs.split(","):
        run = out / arch
        if not _done(run):
            shutil.rmtree(run, ignore_errors=True)
            t = time.time()
            train(PriorRecipe(RunArgs(out=str(run), overrides=overrides, progress=False), str(tok), arch, not args.unconditional))
            timings[f"{arch}_s"] = time.time() - t
        cfg = checkpoint.load_config(run)
        temps = [float(x) for x in args.temperatures.split(",")]
        ev = evaluate_prior(str(run), "test", classifier=str(cls) if use_cls else None, samples=args.samples, temperature=temps[0])
        ev["by_temperature"] = {temps[0]: {k: ev.get(k) for k in ("sample_accuracy", "fd_samples")}}
        for temp in temps[1:] if use_cls else []:
            e2 = evaluate_prior(str(run), "test", classifier=str(cls), samples=args.samples, temperature=temp)
            ev["by_temperature"][temp] = {k: e2.get(k) for k in ("sample_accuracy", "fd_samples")}
        t = time.time()
        n_grid = 8 * cfg.model.num_classes if cfg.model.num_classes else 64
        sample_run(str(run), n_grid, run / "samples_grid.png", temperature=temps[-1])
        results[arch] = {**ev, "steps": cfg.train.steps, "batch_size": cfg.train.batch_size,
                         "params": sum(int(v.numel()) for v in checkpoint.load_run(run)[1].state_dict().values()),
                         "model": {k: v for k, v in vars(cfg.model).items()}, "sample_grid_s": time.time() - t}
    device = device_label()
    report = {"data": args.data, "tokenizer": {k: tok_eval[k] for k in ("psnr", "usage_pct", "perplexity", "bits_per_dim", "step")},
              "classifier_test_accuracy": next((r.get("classifier_test_accuracy") for r in results.values()), None),
              "priors": results, "timings": timings, "device": device, "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"),
              "wall_s": time.time() - t0}
    print(json.dumps(report, indent=2, default=str))
    if args.update_md:
        _write_md(args, report, out)
    return 0


def _write_md(args, report: dict, out: Path) -> None:
    docs = REPO / "docs" / "priors"
    docs.mkdir(parents=True, exist_ok=True)
    argv, skip = [], False
    for a in sys.argv[1:]:
        if skip or a.startswith("--update-md"):
            skip = a == "--update-md"
            continue
        argv.append(a)
    cmd = "python benchmarks/bench_priors.py " + " ".join(argv)
    tk = report["tokenizer"]
    lines = [f"`{cmd.strip()}` ({report['date']}, {report['device']}, torch {report['torch']})", "",
             f"Tokenizer: {tk['step']} steps, test PSNR {tk['psnr']:.2f} dB, {tk['usage_pct']:.1f} % of codes used, perplexity "
             f"{tk['perplexity']:.1f}, {tk['bits_per_dim']:.3f} bits/dim under the uniform prior.", ""]
    has_cls = any("fd_samples" in r for r in report["priors"].values())
    temps = [float(x) for x in args.temperatures.split(",")]
    head = "| prior | params | steps × batch | test NLL (bits/code) | uniform (bits/code) | bits/dim learned prior | bits/dim uniform prior |"
    sep = "|---|---|---|---|---|---|---|"
    if has_cls:
        ts = " / ".join(f"T={t:g}" for t in temps)
        head += f" sample accuracy ({ts}) | classifier FD samples ({ts}) | FD reconstructions |"
        sep += "---|---|---|"
    lines += [head, sep]
    for arch, r in report["priors"].items():
        row = (f"| {arch}{' (class-conditional)' if r['model']['num_classes'] else ''} | {r['params'] / 1e6:.2f}M | {r['steps']} × {r['batch_size']} "
               f"| **{r['prior_bits_per_code']:.3f}** | {r['uniform_bits_per_code']:.3f} | **{r['bits_per_dim']:.3f}** | {r['bits_per_dim_uniform_prior']:.3f} |")
        if has_cls:
            bt = r["by_temperature"]
            accs = " / ".join("–" if bt[t]["sample_accuracy"] is None else f"{100 * bt[t]['sample_accuracy']:.1f} %" for t in temps)
            fds = " / ".join(f"{bt[t]['fd_samples']:.2f}" for t in temps)
            row += f" **{accs}** | {fds} | {r['fd_reconstructions']:.2f} |"
        lines.append(row)
        grid = docs / f"{_slug(args.data)}-{arch}-samples.png"
        shutil.copyfile(out / arch / "samples_grid.png", grid)
    if has_cls:
        lines += ["", f"Classifier (the project's, `vqvae classifier train --data {args.data}`): test accuracy "
                      f"{100 * report['classifier_test_accuracy']:.1f} %; on the tokenizer's reconstructions "
                      f"{100 * next(iter(report['priors'].values()))['reconstruction_accuracy']:.1f} %. Scores use {args.samples} samples "
                      f"(balanced over classes) at each temperature T; grids below at T={temps[-1]:g}, 8 per class; the Fréchet distance is on this classifier's 128 features, "
                      "comparable only within this table."]
    lines += ["", f"Sample grids (temperature {temps[-1]:g}):", "",
              " ".join(f"![{a}](docs/priors/{_slug(args.data)}-{a}-samples.png)" for a in report["priors"])]
    replace_section(Path(args.update_md), f"bench_priors:{args.data}", "\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
