"""The codec's subcommands: ``compress``, ``decompress``, ``codec-export``. Parsers only: the handlers
(:mod:`vqvae.codec.handlers`) are imported when a command runs; the defaults come from :mod:`vqvae.codec.defaults`."""

from __future__ import annotations

from vqvae.codec.defaults import DEFAULT_MODEL, DEFAULT_REFINE
from vqvae.core.commands import handler

HANDLERS = "vqvae.codec.handlers"


def register(sub, shared) -> None:
    co = sub.add_parser("compress", help="learned image compression: images -> .vqz files (codes range-coded under the prior)")
    co.add_argument("images", nargs="+", help="PNG or JPEG files")
    co.add_argument("-o", "--out", required=True, help="output .vqz (one input) or folder")
    co.add_argument("--quality", type=int, help="quality level 1..N of the model (more stages: more bits, less distortion; "
                    "default: the model's)")
    co.add_argument("--model", help=f"a shipped codec model's name (default: {DEFAULT_MODEL}) or a prior run trained with --tile")
    co.add_argument("--refine", type=int, metavar="STEPS", default=DEFAULT_REFINE,
                    help="encoder-side rate-distortion optimisation of the codes: STEPS gradient steps per image "
                         f"(default {DEFAULT_REFINE}, vqvae.codec.DEFAULT_REFINE; 20 saves a little more; 0: the encoder's greedy codes, "
                         "fastest; ordinary files, same decoder)")
    co.add_argument("--no-progress", action="store_true", help="no progress bar while refining")
    co.add_argument("--max-pixels", type=int, help="the largest image read, in pixels (default 120 000 000; larger files are "
                    "refused from their header)")
    co.set_defaults(func=handler(HANDLERS, "compress"))

    dc = sub.add_parser("decompress", help=".vqz files -> PNG images (the file names the model it needs)")
    dc.add_argument("files", nargs="+")
    dc.add_argument("-o", "--out", required=True, help="output .png (one input) or folder")
    dc.add_argument("--model", help="the codec model, if it is not a shipped one (a prior run directory)")
    dc.set_defaults(func=handler(HANDLERS, "decompress"))

    cx = sub.add_parser("codec-export", help="(maintainers) make a zoo model of a codec prior run and its tokenizer (as shipped)")
    cx.add_argument("prior", help="the prior run (trained with --tile)")
    cx.add_argument("--name", required=True, help="the model's name, written into every file it compresses")
    cx.add_argument("--root", help="the zoo folder to write NAME/ into (default: the package's vqvae/zoo)")
    cx.add_argument("--summary", default="learned image codec: residual VQ-VAE codes range-coded under a transformer prior",
                    help="what it is, in a line (vqvae zoo shows it)")
    cx.add_argument("--data", default="", help="what it was trained on")
    cx.add_argument("--headline", default="{}", help="its headline figures, as a JSON object")
    cx.add_argument("--default-quality", type=int, help="the quality compress uses unless told (default: the middle level)")
    cx.add_argument("--card", required=True, help="its MODEL_CARD.md (data, exact commands, training time, figures)")
    cx.add_argument("--tokenizer", help="a tokenizer run with the prior's codes to use instead of the prior's own "
                    "(its decoder fine-tuned with --train.freeze=encoder,quantizer)")
    cx.set_defaults(func=handler(HANDLERS, "export"))
