"""The audio VQ-VAE's subcommands: ``convert``; and its part of ``eval``, ``reconstruct`` and ``encode``. Parsers only:
the handlers (:mod:`vqvae.audio.handlers`) are imported when a command runs."""

from __future__ import annotations

from vqvae.core.commands import handler

ARCHS = ("audio-vqvae",)
RUNS = "audio VQ-VAE (audio-vqvae)"
HANDLERS = "vqvae.audio.handlers"


def register(sub, shared) -> None:
    cv = sub.add_parser("convert", help="audio: say the same thing in another speaker's voice")
    cv.add_argument("run")
    cv.add_argument("wavs", nargs="+")
    cv.add_argument("--speaker", required=True, help="target speaker (a name the model knows)")
    cv.add_argument("-o", "--out", required=True, help="output .wav (one input) or folder")
    cv.set_defaults(func=handler(HANDLERS, "convert"))

    e = shared.eval
    e.handle(ARCHS, handler(HANDLERS, "evaluate"), RUNS)
    e.also(ARCHS, "--data")
    e.option(ARCHS, "--speaker-classifier", help="audio runs: a speaker classifier run, to score speaker conversion")
    e.option(ARCHS, "--digit-classifier", help="audio runs: a digit classifier run (--data.label=digit), to score conversion")
    shared.reconstruct.handle(ARCHS, handler(HANDLERS, "reconstruct"), RUNS)
    shared.reconstruct.option(ARCHS, "--speaker", help="audio: the voice to decode with (default: the speaker named in an FSDD file name)")
    shared.encode.handle(ARCHS, handler("vqvae.core.handlers", "encode"), RUNS)
