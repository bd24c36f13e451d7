"""The baselines' part of ``eval`` and ``reconstruct`` (they train with ``vqvae train --config vae|vimco``).
Parsers only: the handlers (:mod:`vqvae.baselines.handlers`) are imported when a command runs."""

from __future__ import annotations

from vqvae.core.commands import handler

ARCHS = ("vae", "vimco", "vq")
RUNS = "baseline (vae, vimco, vq)"
HANDLERS = "vqvae.baselines.handlers"


def register(sub, shared) -> None:
    shared.eval.handle(ARCHS, handler(HANDLERS, "evaluate"), RUNS)
    shared.eval.also(ARCHS, "--data")
    shared.eval.option(ARCHS, "--iw-samples", type=int, help="baseline runs: k of the importance-weighted bound "
                       "(default: the run's model.iw_samples)")
    shared.reconstruct.handle(ARCHS, handler(HANDLERS, "reconstruct"), RUNS)
    shared.reconstruct.also(ARCHS, "--max-pixels")
