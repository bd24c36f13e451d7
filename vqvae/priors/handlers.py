"""Handlers of the priors' commands: ``prior train``, ``sample``, ``demo``, and ``eval`` on a prior run."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from vqvae.core import checkpoint
from vqvae.core.errors import VQVAEError
from vqvae.core.handlers import run_args
from vqvae.core.runs import DatasetRecipe, RunArgs, train as train_run
from vqvae.priors.evaluation import evaluate_prior, summary
from vqvae.priors.recipe import PriorRecipe
from vqvae.priors.sampling import check_sampling, sample_run


def train(args: argparse.Namespace) -> dict:
    return train_run(PriorRecipe(run_args(args), args.tokenizer, args.arch, args.conditional, args.config, args.tile))


def sample(args: argparse.Namespace) -> Path:
    sample_run(args.prior, args.n, args.out, label=args.label, speaker=args.speaker, seed=args.seed, device=args.device,
               save_codes=args.save_codes, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p)
    print(f"{args.n} samples -> {args.out}" + (f", codes -> {args.save_codes}" if args.save_codes else ""))
    return Path(args.out)


def evaluate(args: argparse.Namespace) -> dict:
    """``vqvae eval PRIOR_RUN``: bits/dim under the learned and the uniform prior; with ``--classifier``/``--inception``
    the scores of ``-n`` samples."""
    check_sampling(args.samples, args.temperature, args.top_k, args.top_p, least=2, flag="-n/--samples")
    sampling = args.given & {"samples", "seed", "temperature", "top_k", "top_p"}
    if sampling and not (args.classifier or args.inception):
        raise VQVAEError(f"--{sorted(sampling)[0].replace('_', '-')} is for scoring samples: pass --classifier RUN (or --inception FILE) with it")
    res = evaluate_prior(args.run, args.split, args.data_root, args.classifier, args.samples, args.seed, args.inception,
                         temperature=args.temperature, top_k=args.top_k, top_p=args.top_p)
    print(json.dumps(res, indent=2) if args.json else summary(res))
    return res


def demo(args: argparse.Namespace) -> dict:
    """Train the Fashion-MNIST preset for a few minutes and write its pictures and metrics; then a
    class-conditional transformer prior on its codes for ``--prior-minutes`` and a grid of samples.

    The cosine schedules are sized to end in about the given minutes on a 2-core CPU
    (~15 tokenizer steps/s at batch 64, ~3 prior steps/s); the minutes also cap the runs.
    Re-running replaces an earlier demo run.
    """
    out, minutes, prior_minutes = args.out, args.minutes, args.prior_minutes
    run_dir = Path(out)
    if (run_dir / checkpoint.STATE).exists():
        checkpoint.load_config(run_dir)  # only ever delete a directory that is a vqvae run
        shutil.rmtree(run_dir)
        print(f"replacing the earlier demo run in {run_dir}")
    tok_args = RunArgs(out=out, steps=max(100, int(minutes * 60 * 15)), data_root=args.data_root, overrides=[f"--train.minutes={minutes}"])
    final = train_run(DatasetRecipe(tok_args, "fashion-mnist", None))
    pics = f"{out}/reconstructions.png, {out}/codebook_usage.png, {out}/loss_curves.png, {out}/eval.json"
    if prior_minutes > 0:
        prior = run_dir / "prior"
        p_args = RunArgs(out=str(prior), steps=max(50, int(prior_minutes * 60 * 3)), data_root=args.data_root,
                         overrides=[f"--train.minutes={prior_minutes}"])
        p = train_run(PriorRecipe(p_args, out, "transformer", conditional=True))
        final = {**final, "prior_bits_per_code": p["bits_per_code"]}
        pics += f", and samples from the prior in {prior}/samples.png (one row per class)"
    print(f"demo done: see {pics}")
    return final
