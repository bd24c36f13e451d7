"""Handlers of the audio VQ-VAE's commands: ``convert``, and ``reconstruct``/``eval`` on its runs."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from vqvae.audio import conversion


def reconstruct(args: argparse.Namespace) -> list[Path]:
    """Wav files in, reconstructions out (in the voice ``--speaker`` names, else the one an FSDD file name names)."""
    return conversion.convert_files(args.run, args.images, args.out, speaker=args.speaker)


def convert(args: argparse.Namespace) -> list[Path]:
    """Wav files in, the same words in ``--speaker``'s voice out (a spectrogram PNG beside each)."""
    return conversion.convert_files(args.run, args.wavs, args.out, convert_to=args.speaker)


def evaluate(args: argparse.Namespace) -> dict:
    """``vqvae eval AUDIO_RUN``: SNR, log-mel distance, codebook use, the code rate; with the classifiers, conversion."""
    res = conversion.evaluate_run(args.run, args.split, args.data_root, args.data, args.speaker_classifier, args.digit_classifier)
    print(json.dumps(res, indent=2) if args.json else conversion.summary(res))
    return res
