"""Handlers of the priors' commands: ``prior train``, ``sample``, ``demo``, and ``eval`` on a prior run."""

from __future__ import annotations

import argparse
import json
import shutil
import time
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
    out = sample_run(args.prior, args.n, args.out, label=args.label, speaker=args.speaker, seed=args.seed, device=args.device,
               save_codes=args.save_codes, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, guidance=args.guidance)
    print(f"{args.n} samples -> {out}" + (f", codes -> {args.save_codes}" if args.save_codes else ""))
    return out


def evaluate(args: argparse.Namespace) -> dict:
    """``vqvae eval PRIOR_RUN``: bits/dim under the learned and the uniform prior; with ``--classifier``/``--inception``
    the scores of ``-n`` samples."""
    check_sampling(args.samples, args.temperature, args.top_k, args.top_p, least=2, flag="-n/--samples")
    sampling = args.given & {"samples", "seed", "temperature", "top_k", "top_p", "guidance"}
    if sampling and not (args.classifier or args.inception):
        raise VQVAEError(f"--{sorted(sampling)[0].replace('_', '-')} is for scoring samples: pass --classifier RUN (or --inception FILE) with it")
    res = evaluate_prior(args.run, args.split, args.data_root, args.classifier, args.samples, args.seed, args.inception,
                         temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, guidance=args.guidance)
    print(json.dumps(res, indent=2) if args.json else summary(res))
    return res


# The demo's plan. Step counts are caps well above an idle 2-core CPU's pace (measured 2026-11-30: the tokenizer
# 22 steps/s at batch 64, the 128-wide prior 4.3), so the clock binds and the schedules (vqvae.core.train.Trainer.planned_step) run in
# fractions of the time; each phase's evaluation and pictures come out of its own minutes.
TOKENIZER_STEPS_PER_S, PRIOR_STEPS_PER_S = 40, 10
# The transformer preset at 128 wide (0.86M parameters: 1.8x the steps of 192 a minute), trained for classifier-free
# guidance (a tenth of the maps without their class), so its samples (drawn with guidance) show their class early on.
DEMO_PRIOR = ("--model.n_embd=128", "--model.label_dropout=0.1")
DEMO_SAMPLING = {"guidance": 3.0, "temperature": 0.8}  # samples.png: 85 % recognised as their class idle, 72 % busy (BENCHMARKS)
TOKENIZER_TRAIN_SHARE = 0.9  # of the tokenizer's minutes; the rest: its final evaluation on 10 000 images and pictures
PRIOR_TRAIN_SHARE = 0.85  # of what is left for the prior once its codes are cached; the rest: evaluation and samples


def demo(args: argparse.Namespace) -> dict:
    """Train the Fashion-MNIST preset for ``--minutes`` and write its pictures and metrics; then a class-conditional
    transformer prior on its codes for ``--prior-minutes`` and a grid of its samples, one row per class.

    The minutes are wall-clock time for everything, evaluation and pictures included: each training run plans its
    warm-up and decay in fractions of its time budget (:meth:`vqvae.core.train.Trainer.planned_step`), and the prior
    gets what the tokenizer left of the total. On a 2-core CPU, idle or beside another job, it ended 2-5 % early
    (BENCHMARKS.md, issue 21); a machine over twice as fast reaches the step caps and ends earlier. Re-running replaces an earlier demo run.
    """
    out, minutes, prior_minutes = args.out, args.minutes, args.prior_minutes
    if minutes <= 0 or prior_minutes < 0:
        raise VQVAEError(f"--minutes must be > 0 and --prior-minutes >= 0, got {minutes:g} and {prior_minutes:g}")
    deadline = time.monotonic() + 60 * (minutes + prior_minutes)
    print(f"vqvae demo: about {minutes + prior_minutes:g} minutes in all ({minutes:g} for a tokenizer"
          + (f", then {prior_minutes:g} for a prior over its codes" if prior_minutes else "") + "), evaluation and pictures included")
    run_dir = Path(out)
    if (run_dir / checkpoint.STATE).exists():
        checkpoint.load_config(run_dir)  # only ever delete a directory that is a vqvae run
        shutil.rmtree(run_dir)
        print(f"replacing the earlier demo run in {run_dir}")
    tok_minutes = minutes * TOKENIZER_TRAIN_SHARE
    tok_args = RunArgs(out=out, steps=max(100, int(tok_minutes * 60 * TOKENIZER_STEPS_PER_S)), data_root=args.data_root,
                       overrides=[f"--train.minutes={tok_minutes:.4f}", f"--data.download={args.download}", "--train.threads=-1"])
    final = train_run(DatasetRecipe(tok_args, "fashion-mnist", None))
    pics = f"{out}/reconstructions.png, {out}/codebook_usage.png, {out}/loss_curves.png, {out}/eval.json"
    if prior_minutes > 0:
        prior = run_dir / "prior"
        cache = PriorRecipe(RunArgs(out=str(prior), data_root=args.data_root), out, "transformer", conditional=True)
        for split in ("train", "test"):  # encode the data once (cached in the tokenizer's run) before the clock starts
            cache.code_set(split)
        left = max(0.1, (deadline - time.monotonic()) / 60 * PRIOR_TRAIN_SHARE)
        p_args = RunArgs(out=str(prior), steps=max(50, int(left * 60 * PRIOR_STEPS_PER_S)), data_root=args.data_root,
                         overrides=[f"--train.minutes={left:.4f}", "--train.threads=-1", *DEMO_PRIOR])
        p = train_run(PriorRecipe(p_args, out, "transformer", conditional=True, preview=DEMO_SAMPLING))
        final = {**final, "prior_bits_per_code": p["bits_per_code"]}
        pics += f", and samples from the prior in {prior}/samples.png (one row per class)"
    late = time.monotonic() - deadline
    print(f"demo done{f' ({late:.0f} s over its time)' if late > 0 else ''}: see {pics}")
    return final
