"""Command line: ``vqvae <command> ...``. Parses and dispatches only.

User errors (:class:`~vqvae.errors.VQVAEError`) print one line and exit 2.
"""

from __future__ import annotations

import argparse
import sys

from vqvae.errors import VQVAEError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vqvae", description="VQ-VAE tokenizers: train, evaluate, reconstruct, encode, decode.")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a tokenizer; extra --section.key=value flags override the config",
                       epilog="Overrides: --train.lr=3e-4 --model.codebook_size=1024 --data.image_size=64 ...")
    t.add_argument("--data", help="dataset name (mnist, fashion-mnist, cifar10), a folder of images, or a .npy file")
    t.add_argument("--data-root", help="folder holding the datasets (default: $VQVAE_DATA, ./data, ../shared/data)")
    t.add_argument("--config", help="YAML config or preset name (default: the dataset's preset)")
    t.add_argument("--out", help="run directory (default: runs/<data>-<time>)")
    g = t.add_mutually_exclusive_group()
    g.add_argument("--steps", type=int, help="training steps")
    g.add_argument("--minutes", type=float, help="wall-clock budget in minutes")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")

    e = sub.add_parser("eval", help="test metrics of a run: PSNR, SSIM, codebook usage, perplexity, bits/dim")
    e.add_argument("run")
    e.add_argument("--data", help="evaluate on another dataset than the run's")
    e.add_argument("--data-root")
    e.add_argument("--split", default="test", choices=["train", "test"])
    e.add_argument("--json", action="store_true", help="print JSON")

    r = sub.add_parser("reconstruct", help="image files in, same-named PNG reconstructions out")
    r.add_argument("run")
    r.add_argument("images", nargs="+")
    r.add_argument("-o", "--out", required=True, help="output folder")

    en = sub.add_parser("encode", help="encode a dataset split to code maps (.npy) plus labels")
    en.add_argument("run")
    en.add_argument("--data")
    en.add_argument("--data-root")
    en.add_argument("--split", default="test", choices=["train", "test"])
    en.add_argument("-o", "--out", required=True, help="codes .npy path")

    d = sub.add_parser("decode", help="decode code maps (.npy) to PNG images")
    d.add_argument("run")
    d.add_argument("codes")
    d.add_argument("-o", "--out", required=True, help="output folder")
    d.add_argument("--grid", help="also write a grid of the first 64 images here")

    m = sub.add_parser("demo", help="train on Fashion-MNIST for a few minutes; write pictures and metrics")
    m.add_argument("--out", default="runs/demo")
    m.add_argument("--minutes", type=float, default=3.0)
    m.add_argument("--data-root")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "train":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    from vqvae import commands

    try:
        if args.command == "train":
            bad = [x for x in extra if not (x.startswith("--") and "." in x.split("=", 1)[0] and "=" in x)]
            if bad:
                parser.error(f"unrecognized argument {bad[0]!r}; config overrides look like --section.key=value")
            commands.train(args.data, args.config, args.out, args.steps, args.minutes, args.resume, args.data_root, extra, not args.no_progress)
        elif args.command == "eval":
            commands.evaluate(args.run, args.data, args.data_root, args.split, args.json)
        elif args.command == "reconstruct":
            commands.reconstruct(args.run, args.images, args.out)
        elif args.command == "encode":
            commands.encode(args.run, args.data, args.data_root, args.split, args.out)
        elif args.command == "decode":
            commands.decode(args.run, args.codes, args.out, args.grid)
        elif args.command == "demo":
            commands.demo(args.out, args.minutes, args.data_root)
    except VQVAEError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


def main_entry() -> None:
    sys.exit(main())
