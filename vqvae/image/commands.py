"""The image tokenizers' subcommands: ``dvae train``; and their part of ``eval``, ``reconstruct``, ``encode``,
``decode``. Parsers only: the handlers (:mod:`vqvae.image.handlers`) are imported when a command runs."""

from __future__ import annotations

from vqvae.core.commands import handler, train_command

ARCHS = ("vqvae", "dvae")
RUNS = "image tokenizer (vqvae, dvae)"
HANDLERS = "vqvae.image.handlers"


def register(sub, shared) -> None:
    dt = train_command(sub, "dvae", "DALL-E's discrete VAE (Gumbel-softmax, logit-Laplace): a tokenizer like the VQ-VAE",
                       "train a dVAE (preset vqvae/configs/dvae.yaml); extra --section.key=value flags override",
                       "Overrides: --model.tau_steps=20000 --model.kl_weight=6.6 --model.codebook_size=8192 ...")
    dt.add_argument("--data", help="dataset name, a folder of images, or a .npy file (default: the preset's)")
    dt.set_defaults(func=handler(HANDLERS, "train_dvae"))

    shared.eval.handle(ARCHS, handler(HANDLERS, "evaluate"), RUNS)
    shared.eval.also(ARCHS, "--data")
    shared.reconstruct.handle(ARCHS, handler(HANDLERS, "reconstruct"), RUNS)
    shared.reconstruct.also(ARCHS, "--max-pixels")
    shared.encode.handle(ARCHS, handler("vqvae.core.handlers", "encode"), RUNS)
    shared.decode.handle(ARCHS, handler(HANDLERS, "decode"), RUNS)
