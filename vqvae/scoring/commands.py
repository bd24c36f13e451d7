"""``vqvae classifier train`` and ``eval`` on classifier runs. Parsers only: handlers in :mod:`vqvae.scoring.handlers`."""

from __future__ import annotations

from vqvae.core.commands import handler, train_command

HANDLERS = "vqvae.scoring.handlers"


def register(sub, shared) -> None:
    ct = train_command(sub, "classifier", "the classifier used to score samples",
                       "train a classifier on a labelled dataset (preset classifier; classifier-audio for speech; "
                       "scene-reader for the captioned scenes)")
    ct.add_argument("--data", required=True)
    ct.set_defaults(func=handler(HANDLERS, "train"))
    shared.eval.handle(("classifier",), handler(HANDLERS, "evaluate"), "classifier")
