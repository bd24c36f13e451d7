"""The world family's part of ``eval`` and ``reconstruct`` (the second stage trains with
``vqvae train --tokenizer RUN --config doom-stage2``, the probe with ``vqvae train --config doom-probe``). Parsers only: the handlers (:mod:`vqvae.world.handlers`) are
imported when a command runs."""

from __future__ import annotations

from vqvae.core.commands import handler

ARCHS = ("stage2",)
RUNS = "second-stage (stage2)"
HANDLERS = "vqvae.world.handlers"


def register(sub, shared) -> None:
    shared.eval.handle(ARCHS, handler(HANDLERS, "evaluate"), RUNS)
    shared.eval.handle(("probe",), handler(HANDLERS, "evaluate_probe"), "doom probe (probe)")
    shared.reconstruct.handle(ARCHS, handler(HANDLERS, "reconstruct"), RUNS)
    shared.reconstruct.option(ARCHS, "--seed", type=int, default=0, help="second-stage runs: the seed of the PixelCNN "
                              "decoder's draws")
