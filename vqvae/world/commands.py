"""The world family's part of ``eval`` and ``reconstruct`` (the second stage trains with
``vqvae train --tokenizer RUN --config doom-stage2``, the probe with ``vqvae train --config doom-probe``). Parsers only: the handlers (:mod:`vqvae.world.handlers`) are
imported when a command runs."""

from __future__ import annotations

from vqvae.core.commands import add_run_options, handler

ARCHS = ("stage2",)
RUNS = "second-stage (stage2)"
HANDLERS = "vqvae.world.handlers"


def register(sub, shared) -> None:
    w = sub.add_parser("world", help="first-person worlds: action-conditioned video in latent space (doom)")
    ws = w.add_subparsers(dest="world_command", required=True)
    t = ws.add_parser("train", help="train the video model on a doom tokenizer's per-frame codes and the episodes' actions",
                      epilog="Overrides: --model.frames=4 --model.n_layer=4 --train.lr=3e-4 ...")
    t.add_argument("--tokenizer", required=True, help="the per-frame tokenizer's run directory (trained on --data doom:N)")
    add_run_options(t)
    t.set_defaults(func=handler(HANDLERS, "train_video"))
    r = ws.add_parser("rollout", help="generate frames under actions from a real start and show them beside the true ones")
    r.add_argument("run", help="the video model's run directory")
    r.add_argument("--start", required=True, metavar="EPISODE:STEP", help="the real frame to start from: a doom episode "
                   "(of the tokenizer's scenario) and a step in it; the frames before it are the context")
    r.add_argument("--actions", required=True, help="the actions to take from there, e.g. \"F F L L F\" (L, R, F, SL, SR)")
    r.add_argument("-o", "--out", default="rollout.gif", help="an animated GIF of the true and generated frames side by side")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--temperature", type=float, default=1.0)
    r.add_argument("--data-root", help="where the doom episodes are cached")
    r.set_defaults(func=handler(HANDLERS, "rollout"))

    shared.eval.handle(ARCHS, handler(HANDLERS, "evaluate"), RUNS)
    shared.eval.handle(("probe",), handler(HANDLERS, "evaluate_probe"), "doom probe (probe)")
    shared.reconstruct.handle(ARCHS, handler(HANDLERS, "reconstruct"), RUNS)
    shared.reconstruct.also(ARCHS, "--max-pixels")
    shared.reconstruct.option(ARCHS, "--seed", type=int, default=0, help="second-stage runs: the seed of the PixelCNN "
                              "decoder's draws")
