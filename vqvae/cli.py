"""Command line: ``vqvae <command> ...``. Builds the parser from the families and dispatches; nothing else.

Each family's ``commands.register`` adds its subcommands (and its part of the
commands on a run directory, :class:`vqvae.core.commands.RunCommand`); every
subcommand's handler is ``args.func``. A command that one family owns is parsed
with that family's parser alone (:data:`COMMANDS`), so ``vqvae compress``
imports nothing of the other families; ``--help`` and the commands on a run
directory build them all. User errors (:class:`~vqvae.core.errors.VQVAEError`)
print one line and exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from vqvae.core import zoo
from vqvae.core.commands import RunCommand
from vqvae.core.errors import VQVAEError
from vqvae.data.roots import ROOTS_HELP

# Where each part of the command line is registered, in the order of the help.
REGISTRARS = {"core": "vqvae.core.commands", "image": "vqvae.image.commands", "scoring": "vqvae.scoring.commands",
              "priors": "vqvae.priors.commands", "text2image": "vqvae.text2image.commands", "audio": "vqvae.audio.commands",
              "codec": "vqvae.codec.commands", "serve": "vqvae.serve.commands",
              "baselines": "vqvae.baselines.commands", "world": "vqvae.world.commands"}
# The top-level commands that one of them owns (tests/test_architecture.py checks this against what each registers);
# eval, reconstruct, encode and decode are served by several.
COMMANDS = {"train": "core", "dvae": "image", "classifier": "scoring", "prior": "priors", "sample": "priors", "demo": "priors",
            "dalle": "text2image", "clip": "text2image", "generate": "text2image", "convert": "audio", "compress": "codec",
            "decompress": "codec", "codec-export": "codec", "zoo": "core", "serve": "serve", "world": "world"}


class RunCommands:
    """The commands on a run directory that several families serve."""

    def __init__(self, sub):
        self.eval = RunCommand(sub, "eval", "test metrics of a run: a tokenizer (PSNR, SSIM, usage, bits/dim), a prior (bits/dim "
                               "under it, sample scores), a classifier (accuracy), DALL-E (prompt faithfulness)")
        self.eval.common("--data-root", help=ROOTS_HELP)
        self.eval.common("--split", default="test", choices=["train", "test", "heldout"], help="heldout: the scenes' unseen colour-class pairs")
        self.eval.common("--json", action="store_true", help="print JSON")
        # options several families read (each claims them for its runs with RunCommand.also)
        self.eval.option((), "--data", help="tokenizer runs: evaluate on another dataset than the run's")
        self.eval.option((), "--classifier", help="prior runs: a classifier run to score samples with (accuracy, classifier Fréchet "
                         "distance); DALL-E runs: a scene reader run (prompt faithfulness)")
        self.eval.option((), "-n", "--samples", type=int, default=1000, help="prior and DALL-E runs: samples to draw and score (default 1000)")
        self.eval.option((), "--seed", type=int, default=0, help="prior and DALL-E runs: the sampling seed")
        self.eval.option((), "--temperature", type=float, default=1.0, help="prior and DALL-E runs: sampling temperature of the scored samples")
        self.eval.option((), "--top-k", type=int, default=0, help="prior and DALL-E runs: sample among the k most likely codes (0: all)")
        self.eval.option((), "--top-p", type=float, default=1.0, help="prior and DALL-E runs: nucleus sampling mass (1: off)")
        self.eval.option((), "--guidance", type=float, default=1.0, help="prior and DALL-E runs: classifier-free guidance scale of the "
                         "scored samples (1: none; priors trained with model.label_dropout)")
        self.reconstruct = RunCommand(sub, "reconstruct", "image files in, same-named PNG reconstructions out (wav in, wav out for "
                                      "audio runs)")
        self.reconstruct.common("images", nargs="+", help="image or wav files")
        self.reconstruct.common("-o", "--out", required=True, help="output folder (or one .wav file for one audio input)")
        self.reconstruct.option((), "--max-pixels", type=int, help="image runs: the largest image read, in pixels "
                                "(default 120 000 000; larger files are refused from their header)")
        self.encode = RunCommand(sub, "encode", "encode a dataset split to code maps (.npy) plus labels")
        self.encode.common("--data", help="another dataset than the run's")
        self.encode.common("--data-root", help=ROOTS_HELP)
        self.encode.common("--split", default="test", choices=["train", "test"])
        self.encode.common("-o", "--out", required=True, help="codes .npy path")
        self.decode = RunCommand(sub, "decode", "decode code maps (.npy) to PNG images")
        self.decode.common("codes")
        self.decode.common("-o", "--out", required=True, help="output folder")
        self.decode.common("--grid", help="also write a grid of the first 64 images here")


class _Parser(argparse.ArgumentParser):
    """argparse, whose usage errors are one line like every other refusal (exit 2), naming where the usage is."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (usage: {self.prog} --help)\n")


def parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or of ``command`` alone when one family owns it."""
    p = _Parser(prog="vqvae", description="Neural discrete representation learning: VQ-VAE tokenizers, priors, "
                                "DALL-E, speech and a learned image codec.")
    sub = p.add_subparsers(dest="command", required=True)
    shared = RunCommands(sub)
    parts = [COMMANDS[command]] if command in COMMANDS else list(REGISTRARS)
    for part in parts:
        importlib.import_module(REGISTRARS[part]).register(sub, shared)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = parser(argv[0] if argv and not argv[0].startswith("-") else None)
    args, extra = p.parse_known_args(argv)
    if extra and not getattr(args, "takes_overrides", False):
        p.error(f"unrecognized arguments: {' '.join(extra)}")
    bad = [x for x in extra if not (x.startswith("--") and "." in x.split("=", 1)[0] and "=" in x)]
    if bad:
        p.error(f"unrecognized argument {bad[0]!r}; config overrides look like --section.key=value")
    args.overrides = extra
    try:
        _resolve_zoo(args)
        args.func(args)
    except VQVAEError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


RUN_ARGS = ("run", "prior", "tokenizer", "classifier", "clip", "speaker_classifier", "digit_classifier")  # arguments naming a run


def _resolve_zoo(args: argparse.Namespace) -> None:
    """``zoo:NAME[/PART]`` in any argument that names a run directory -> the shipped run, checked (:mod:`vqvae.core.zoo`)."""
    for dest in RUN_ARGS:
        value = getattr(args, dest, None)
        if zoo.is_zoo(value):
            setattr(args, dest, str(zoo.resolve(value)))


def main_entry() -> None:
    sys.exit(main())
