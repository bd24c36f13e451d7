"""The text-to-image subcommands: ``dalle train``, ``clip train``, ``generate``; and ``eval`` on DALL-E and scene-reader runs.
Parsers only: the handlers (:mod:`vqvae.text2image.handlers`) are imported when a command runs."""

from __future__ import annotations

from vqvae.core.commands import handler, train_command

HANDLERS = "vqvae.text2image.handlers"
DALLE = ("dalle",)


def register(sub, shared) -> None:
    dat = train_command(sub, "dalle", "DALL-E's text+image transformer over a tokenizer's codes",
                        "train the transformer on captioned images (preset vqvae/configs/dalle.yaml)",
                        "Overrides: --model.n_layer=8 --model.caption_dropout=0.2 --train.lr=3e-4 ...")
    dat.add_argument("--tokenizer", required=True, help="the image tokenizer's run directory (a VQ-VAE or a dVAE)")
    dat.add_argument("--data", help="captioned data: scenes, scenes:N or coco (default: the tokenizer's dataset)")
    dat.set_defaults(func=handler(HANDLERS, "train_dalle"))
    ct = train_command(sub, "clip", "a small CLIP (contrastive image-text model) that reranks DALL-E's samples",
                       "train CLIP on a captioned dataset's train split (preset vqvae/configs/clip.yaml)",
                       "Overrides: --data.reconstructions_from=runs/scenes-tok --model.width=32 --train.steps=4000 ...")
    ct.add_argument("--data", help="captioned data: scenes, scenes:N or coco (default: the preset's)")
    ct.set_defaults(func=handler(HANDLERS, "train_clip"))

    ge = sub.add_parser("generate", help="draw images for a caption with a DALL-E run")
    ge.add_argument("run")
    ge.add_argument("prompt")
    ge.add_argument("-n", type=int, default=16)
    ge.add_argument("--guidance", type=float, help="classifier-free guidance scale (1: none; default: the zoo model's "
                    "measured setting, else 1)")
    ge.add_argument("--temperature", type=float, help="default: the zoo model's measured setting, else 1")
    ge.add_argument("--top-k", type=int, default=0)
    ge.add_argument("--top-p", type=float, default=1.0)
    ge.add_argument("--seed", type=int, default=0)
    ge.add_argument("--candidates", type=int,
                    help="draw this many images per output and keep the best (DALL-E's reranking): by --clip, else the "
                    "transformer's likelihood (default: the zoo model's measured setting, else 1)")
    ge.add_argument("--clip", help="a CLIP run (vqvae clip train) that ranks the candidates (default: a zoo model's own)")
    ge.add_argument("-o", "--out", required=True, help="PNG grid")
    ge.add_argument("--device", default="auto")
    ge.set_defaults(func=handler(HANDLERS, "generate"))

    e = shared.eval
    e.handle(DALLE, handler(HANDLERS, "evaluate"), "DALL-E (dalle)")
    e.handle(("scene-reader",), handler("vqvae.scoring.handlers", "evaluate"), "scene reader")
    for flags in (("--classifier",), ("-n", "--samples"), ("--seed",), ("--temperature",), ("--top-k",), ("--top-p",), ("--guidance",)):
        e.also(DALLE, *flags)
    e.option(DALLE, "--candidates", type=int, default=1, help="DALL-E runs: score the best of this many draws per sample (reranking)")
    e.option(DALLE, "--clip", help="DALL-E runs: the CLIP run that reranks (default: the transformer's likelihood of the codes under the caption)")
