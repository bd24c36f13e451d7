"""The priors' subcommands: ``prior train``, ``sample``, ``demo``; and ``eval`` on prior runs. Parsers only: the
handlers (:mod:`vqvae.priors.handlers`) are imported when a command runs."""

from __future__ import annotations

from vqvae.core.commands import handler, train_command
from vqvae.data.roots import ROOTS_HELP

ARCHS = ("pixelcnn", "transformer")
HANDLERS = "vqvae.priors.handlers"


def register(sub, shared) -> None:
    pt = train_command(sub, "prior", "priors over a tokenizer's codes",
                       "train a PixelCNN or transformer prior on a tokenizer's codes; extra --section.key=value flags override",
                       "Overrides: --model.layers=15 --model.n_layer=8 --train.lr=3e-4 ...")
    pt.add_argument("--tokenizer", required=True, help="the tokenizer's run directory")
    pt.add_argument("--arch", required=True, choices=list(ARCHS))
    pt.add_argument("--conditional", action="store_true", help="condition on the dataset's class labels")
    pt.add_argument("--tile", type=int, help="model T x T windows of the code maps (the codec's prior codes any image size by tiles)")
    pt.set_defaults(func=handler(HANDLERS, "train"))

    sa = sub.add_parser("sample", help="sample codes from a prior, decode them with its tokenizer, write a PNG grid (or wavs)")
    sa.add_argument("prior", help="the prior's run directory")
    sa.add_argument("-n", type=int, default=64, help="number of samples (default 64)")
    sa.add_argument("--label", type=int, help="class of every sample (conditional priors; default: a grid of all classes)")
    sa.add_argument("--temperature", type=float, default=1.0)
    sa.add_argument("--top-k", type=int, default=0, help="sample among the k most likely codes (0: all)")
    sa.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass (1: off)")
    sa.add_argument("--seed", type=int, default=0)
    sa.add_argument("-o", "--out", help="PNG grid path (audio: a .wav for -n 1, else a folder of wavs); default samples.png "
                    "(audio: samples/)")
    sa.add_argument("--save-codes", help="also save the sampled code maps (.npy)")
    sa.add_argument("--guidance", type=float, default=1.0, help="classifier-free guidance scale (1: none; transformer priors "
                    "trained with model.label_dropout)")
    sa.add_argument("--device", default="auto")
    sa.add_argument("--speaker", help="priors over audio codes: the voice (and the class of a speaker-conditional prior)")
    sa.set_defaults(func=handler(HANDLERS, "sample"))

    m = sub.add_parser("demo", help="train a tokenizer and a prior on Fashion-MNIST for a few minutes; write pictures and metrics")
    m.add_argument("--out", default="runs/demo")
    m.add_argument("--minutes", type=float, default=2.0, help="minutes for the tokenizer, its evaluation and pictures included (default 2)")
    m.add_argument("--prior-minutes", type=float, default=3.0, help="then minutes for a class-conditional prior over its codes, its evaluation and samples included (0: skip; default 3)")
    m.add_argument("--data-root", help=ROOTS_HELP)
    m.add_argument("--data.download", dest="download", choices=("true", "false"), default="false",
                   help="fetch Fashion-MNIST from its official site if no data root has it (needs the internet)")
    m.set_defaults(func=handler(HANDLERS, "demo"))

    e = shared.eval
    e.handle(ARCHS, handler(HANDLERS, "evaluate"), "prior (pixelcnn, transformer)")
    for flags in (("--classifier",), ("-n", "--samples"), ("--seed",), ("--temperature",), ("--top-k",), ("--top-p",), ("--guidance",)):
        e.also(ARCHS, *flags)
    e.option(ARCHS, "--inception", help="prior runs: the TorchScript Inception-v3 (inception-2015-12-05.pt) for standard FID, if you have it")
