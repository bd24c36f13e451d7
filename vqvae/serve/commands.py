"""``vqvae serve``'s parser (the handler, :mod:`vqvae.serve.handlers`, is imported when it runs)."""

from __future__ import annotations

from vqvae.core.commands import handler


def register(sub, shared=None) -> None:
    s = sub.add_parser("serve", help="a local demo page: compress a photo, draw Fashion-MNIST, change a voice, text to image")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this computer only)")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--codec", help="codec model name or prior run (default: the shipped default model)")
    s.add_argument("--prior", help="class-conditional prior run (default: zoo:fashion-mnist)")
    s.add_argument("--voice", help="speech VQ-VAE run (default: zoo:fsdd)")
    s.add_argument("--scenes", help="DALL-E run (default: zoo:scenes)")
    s.add_argument("--clip", help="CLIP run that reranks the scenes (default: the scenes model's own, if it has one)")
    s.add_argument("--examples", help="a folder of example wavs for the voice tab (default: the voice model's examples/)")
    s.set_defaults(func=handler("vqvae.serve.handlers", "serve"))
