"""Command line: ``vqvae <command> ...``. Builds the parser from the families and dispatches; nothing else.

Each family's ``commands.register`` adds its subcommands (and its part of the
commands on a run directory, :class:`vqvae.core.commands.RunCommand`); every
subcommand's handler is ``args.func``. User errors
(:class:`~vqvae.core.errors.VQVAEError`) print one line and exit 2.
"""

from __future__ import annotations

import argparse
import sys

from vqvae.audio import commands as audio_commands
from vqvae.codec import commands as codec_commands
from vqvae.core import commands as core_commands
from vqvae.core.commands import RunCommand
from vqvae.core.errors import VQVAEError
from vqvae.image import commands as image_commands
from vqvae.priors import commands as prior_commands
from vqvae.scoring import commands as scoring_commands
from vqvae.text2image import commands as text2image_commands

FAMILIES = (image_commands, scoring_commands, prior_commands, text2image_commands, audio_commands, codec_commands)


class RunCommands:
    """The commands on a run directory that several families serve."""

    def __init__(self, sub):
        self.eval = RunCommand(sub, "eval", "test metrics of a run: a tokenizer (PSNR, SSIM, usage, bits/dim), a prior (bits/dim "
                               "under it, sample scores), a classifier (accuracy), DALL-E (prompt faithfulness)")
        self.eval.common("--data-root")
        self.eval.common("--split", default="test", choices=["train", "test", "heldout"], help="heldout: the scenes' unseen colour-class pairs")
        self.eval.common("--json", action="store_true", help="print JSON")
        self.reconstruct = RunCommand(sub, "reconstruct", "image files in, same-named PNG reconstructions out (wav in, wav out for "
                                      "audio runs)")
        self.reconstruct.common("images", nargs="+", help="image or wav files")
        self.reconstruct.common("-o", "--out", required=True, help="output folder (or one .wav file for one audio input)")
        self.encode = RunCommand(sub, "encode", "encode a dataset split to code maps (.npy) plus labels")
        self.encode.common("--data", help="another dataset than the run's")
        self.encode.common("--data-root")
        self.encode.common("--split", default="test", choices=["train", "test"])
        self.encode.common("-o", "--out", required=True, help="codes .npy path")
        self.decode = RunCommand(sub, "decode", "decode code maps (.npy) to PNG images")
        self.decode.common("codes")
        self.decode.common("-o", "--out", required=True, help="output folder")
        self.decode.common("--grid", help="also write a grid of the first 64 images here")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vqvae", description="Neural discrete representation learning: VQ-VAE tokenizers, priors, "
                                "DALL-E, speech and a learned image codec.")
    sub = p.add_subparsers(dest="command", required=True)
    core_commands.register(sub)
    shared = RunCommands(sub)
    for family in FAMILIES:
        family.register(sub, shared)
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args, extra = p.parse_known_args(argv)
    if extra and not getattr(args, "takes_overrides", False):
        p.error(f"unrecognized arguments: {' '.join(extra)}")
    bad = [x for x in extra if not (x.startswith("--") and "." in x.split("=", 1)[0] and "=" in x)]
    if bad:
        p.error(f"unrecognized argument {bad[0]!r}; config overrides look like --section.key=value")
    args.overrides = extra
    try:
        args.func(args)
    except VQVAEError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


def main_entry() -> None:
    sys.exit(main())
