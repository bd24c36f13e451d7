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
    _budget_args(t)

    e = sub.add_parser("eval", help="test metrics of a run: a tokenizer (PSNR, SSIM, usage, bits/dim), a prior (bits/dim under it, "
                       "sample scores) or a classifier (accuracy)")
    e.add_argument("run")
    e.add_argument("--data", help="evaluate a tokenizer on another dataset than the run's")
    e.add_argument("--data-root")
    e.add_argument("--split", default="test", choices=["train", "test", "heldout"], help="heldout: the scenes' unseen colour-class pairs")
    e.add_argument("--json", action="store_true", help="print JSON")
    e.add_argument("--classifier", help="prior runs: a classifier run to score samples with (accuracy, classifier Fréchet distance); "
                   "DALL-E runs: a scene reader run (prompt faithfulness)")
    e.add_argument("--guidance", type=float, default=1.0, help="DALL-E runs: classifier-free guidance scale of the scored samples")
    e.add_argument("--candidates", type=int, default=1, help="DALL-E runs: score the best of this many draws per sample (reranking)")
    e.add_argument("--clip", help="DALL-E runs: the CLIP run that reranks (default: the transformer's likelihood of the codes under the caption)")
    e.add_argument("--inception", help="prior runs: the TorchScript Inception-v3 (inception-2015-12-05.pt) for standard FID, if you have it")
    e.add_argument("-n", "--samples", type=int, default=1000, help="prior and DALL-E runs with --classifier: samples to draw (default 1000)")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--temperature", type=float, default=1.0, help="prior runs: sampling temperature of the scored samples")
    e.add_argument("--top-k", type=int, default=0)
    e.add_argument("--top-p", type=float, default=1.0)
    e.add_argument("--speaker-classifier", help="audio runs: a speaker classifier run, to score speaker conversion")
    e.add_argument("--digit-classifier", help="audio runs: a digit classifier run (--data.label=digit), to score conversion")

    pt = _train_command(sub, "prior", "priors over a tokenizer's codes",
                        "train a PixelCNN or transformer prior on a tokenizer's codes; extra --section.key=value flags override",
                        "Overrides: --model.layers=15 --model.n_layer=8 --train.lr=3e-4 ...")
    pt.add_argument("--tokenizer", required=True, help="the tokenizer's run directory")
    pt.add_argument("--arch", required=True, choices=["pixelcnn", "transformer"])
    pt.add_argument("--conditional", action="store_true", help="condition on the dataset's class labels")
    pt.add_argument("--tile", type=int, help="model T x T windows of the code maps (the codec's prior codes any image size by tiles)")
    _budget_args(pt)

    dt = _train_command(sub, "dvae", "DALL-E's discrete VAE (Gumbel-softmax, logit-Laplace): a tokenizer like the VQ-VAE",
                        "train a dVAE (preset vqvae/configs/dvae.yaml); extra --section.key=value flags override",
                        "Overrides: --model.tau_steps=20000 --model.kl_weight=6.6 --model.codebook_size=8192 ...")
    dt.add_argument("--data", help="dataset name, a folder of images, or a .npy file (default: the preset's)")
    _budget_args(dt)

    dat = _train_command(sub, "dalle", "DALL-E's text+image transformer over a tokenizer's codes",
                         "train the transformer on captioned images (preset vqvae/configs/dalle.yaml)",
                         "Overrides: --model.n_layer=8 --model.caption_dropout=0.2 --train.lr=3e-4 ...")
    dat.add_argument("--tokenizer", required=True, help="the image tokenizer's run directory (a VQ-VAE or a dVAE)")
    dat.add_argument("--data", help="captioned data: scenes or scenes:N (default: the tokenizer's dataset)")
    _budget_args(dat)
    ct = _train_command(sub, "clip", "a small CLIP (contrastive image-text model) that reranks DALL-E's samples",
                        "train CLIP on a captioned dataset's train split (preset vqvae/configs/clip.yaml)",
                        "Overrides: --data.reconstructions_from=runs/scenes-tok --model.width=32 --train.steps=4000 ...")
    ct.add_argument("--data", help="captioned data: scenes, scenes:N or coco (default: the preset's)")
    _budget_args(ct)
    ge = sub.add_parser("generate", help="draw images for a caption with a DALL-E run")
    ge.add_argument("run")
    ge.add_argument("prompt")
    ge.add_argument("-n", type=int, default=16)
    ge.add_argument("--guidance", type=float, default=1.0, help="classifier-free guidance scale (1: none)")
    ge.add_argument("--temperature", type=float, default=1.0)
    ge.add_argument("--top-k", type=int, default=0)
    ge.add_argument("--top-p", type=float, default=1.0)
    ge.add_argument("--seed", type=int, default=0)
    ge.add_argument("--candidates", type=int, default=1,
                    help="draw this many images per output and keep the best (DALL-E's reranking): by --clip, else the transformer's likelihood")
    ge.add_argument("--clip", help="a CLIP run (vqvae clip train) that ranks the candidates")
    ge.add_argument("-o", "--out", required=True, help="PNG grid")
    ge.add_argument("--device", default="auto")

    sa = sub.add_parser("sample", help="sample codes from a prior, decode them with its tokenizer, write a PNG grid")
    sa.add_argument("prior", help="the prior's run directory")
    sa.add_argument("-n", type=int, default=64, help="number of samples (default 64)")
    sa.add_argument("--label", type=int, help="class of every sample (conditional priors; default: a grid of all classes)")
    sa.add_argument("--temperature", type=float, default=1.0)
    sa.add_argument("--top-k", type=int, default=0, help="sample among the k most likely codes (0: all)")
    sa.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass (1: off)")
    sa.add_argument("--seed", type=int, default=0)
    sa.add_argument("-o", "--out", required=True, help="PNG grid path (audio: a .wav for -n 1, else a folder of wavs)")
    sa.add_argument("--save-codes", help="also save the sampled code maps (.npy)")
    sa.add_argument("--device", default="auto")
    sa.add_argument("--speaker", help="priors over audio codes: the voice (and the class of a speaker-conditional prior)")

    ct = _train_command(sub, "classifier", "the classifier used to score samples", "train a classifier on a labelled dataset")
    ct.add_argument("--data", required=True)
    _budget_args(ct)

    r = sub.add_parser("reconstruct", help="image files in, same-named PNG reconstructions out (wav in, wav out for audio runs)")
    r.add_argument("run")
    r.add_argument("images", nargs="+", help="image or wav files")
    r.add_argument("-o", "--out", required=True, help="output folder (or one .wav file for one audio input)")
    r.add_argument("--speaker", help="audio: the voice to decode with (default: the speaker named in an FSDD file name)")

    cv = sub.add_parser("convert", help="audio: say the same thing in another speaker's voice")
    cv.add_argument("run")
    cv.add_argument("wavs", nargs="+")
    cv.add_argument("--speaker", required=True, help="target speaker (a name the model knows)")
    cv.add_argument("-o", "--out", required=True, help="output .wav (one input) or folder")

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

    co = sub.add_parser("compress", help="learned image compression: images -> .vqz files (codes range-coded under the prior)")
    co.add_argument("images", nargs="+", help="PNG or JPEG files")
    co.add_argument("-o", "--out", required=True, help="output .vqz (one input) or folder")
    co.add_argument("--quality", type=int, help="quality level 1..N of the model (more stages: more bits, less distortion)")
    co.add_argument("--model", help="a shipped codec model's name (default: coco-rvq4) or a prior run trained with --tile")
    co.add_argument("--refine", type=int, metavar="STEPS",
                    help="encoder-side rate-distortion optimisation of the codes: STEPS gradient steps per image "
                         "(default 5, vqvae.codec.DEFAULT_REFINE; 20 saves a little more; 0: the encoder's greedy codes, "
                         "fastest; ordinary files, same decoder)")
    co.add_argument("--no-progress", action="store_true", help="no progress bar while refining")
    dc = sub.add_parser("decompress", help=".vqz files -> PNG images (the file names the model it needs)")
    dc.add_argument("files", nargs="+")
    dc.add_argument("-o", "--out", required=True, help="output .png (one input) or folder")
    dc.add_argument("--model", help="the codec model, if it is not a shipped one (a prior run directory)")

    cx = sub.add_parser("codec-export", help="package a codec prior run and its tokenizer as a model directory (as shipped)")
    cx.add_argument("prior", help="the prior run (trained with --tile)")
    cx.add_argument("--name", required=True, help="the model's name, written into every file it compresses")
    cx.add_argument("-o", "--out", help="output folder (default: the package's vqvae/codec/models/NAME)")
    cx.add_argument("--default-quality", type=int)
    cx.add_argument("--card", help="a MODEL_CARD.md to include")
    cx.add_argument("--tokenizer", help="a tokenizer run with the prior's codes to use instead of the prior's own "
                    "(its decoder fine-tuned with --train.freeze=encoder,quantizer)")

    m = sub.add_parser("demo", help="train a tokenizer and a prior on Fashion-MNIST for a few minutes; write pictures and metrics")
    m.add_argument("--out", default="runs/demo")
    m.add_argument("--minutes", type=float, default=3.0, help="tokenizer training time (default 3)")
    m.add_argument("--prior-minutes", type=float, default=2.0, help="then a class-conditional prior over its codes (0: skip; default 2)")
    m.add_argument("--data-root")
    return p


def _train_command(sub, name: str, help_: str, train_help: str, epilog: str | None = None) -> argparse.ArgumentParser:
    """``vqvae NAME train``: the command, its one subcommand, and that subcommand's parser."""
    cmd = sub.add_parser(name, help=help_).add_subparsers(dest=f"{name}_command", required=True)
    return cmd.add_parser("train", help=train_help, epilog=epilog)


def _budget_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-root", help="folder holding the datasets (default: $VQVAE_DATA, ./data, ../shared/data)")
    p.add_argument("--config", help="YAML config or preset name (default: the dataset's or the model's preset)")
    p.add_argument("--out", help="run directory (default: runs/<name>-<time>)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--steps", type=int, help="training steps")
    g.add_argument("--minutes", type=float, help="wall-clock budget in minutes")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


TAKES_OVERRIDES = ("train", "prior", "classifier", "dvae", "dalle", "clip")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args, extra = parser.parse_known_args(argv)
    if extra and args.command not in TAKES_OVERRIDES:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    bad = [x for x in extra if not (x.startswith("--") and "." in x.split("=", 1)[0] and "=" in x)]
    if bad:
        parser.error(f"unrecognized argument {bad[0]!r}; config overrides look like --section.key=value")
    from vqvae import commands, commands_prior

    try:
        if args.command == "train":
            commands.train(args.data, args.config, args.out, args.steps, args.minutes, args.resume, args.data_root, extra, not args.no_progress)
        elif args.command == "prior":
            commands_prior.train_prior(args.tokenizer, args.arch, args.conditional, args.config, args.out, args.steps, args.minutes,
                                       args.resume, args.data_root, extra, not args.no_progress, args.tile)
        elif args.command in ("dalle", "generate", "clip"):
            from vqvae import commands_dalle

            if args.command == "clip":
                commands_dalle.train_clip(args.data, args.config, args.out, args.steps, args.minutes, args.resume, args.data_root, extra,
                                          not args.no_progress)
            elif args.command == "dalle":
                commands_dalle.train_dalle(args.tokenizer, args.data, args.config, args.out, args.steps, args.minutes, args.resume,
                                           args.data_root, extra, not args.no_progress)
            else:
                commands_dalle.generate(args.run, args.prompt, args.n, args.guidance, args.temperature, args.top_k, args.top_p,
                                        args.seed, args.out, args.device, args.candidates, args.clip)
        elif args.command == "dvae":
            commands.train(args.data, args.config or "dvae", args.out, args.steps, args.minutes, args.resume, args.data_root, extra,
                           not args.no_progress)
        elif args.command == "classifier":
            commands.train(args.data, args.config or commands.classifier_preset(args.data), args.out, args.steps, args.minutes, args.resume, args.data_root, extra,
                           not args.no_progress)
        elif args.command == "sample":
            commands_prior.sample(args.prior, args.n, args.label, args.temperature, args.top_k, args.top_p, args.seed, args.out,
                                  args.save_codes, args.device, args.speaker)
        elif args.command == "eval":
            commands.evaluate_any(args)
        elif args.command == "reconstruct":
            commands.reconstruct(args.run, args.images, args.out, args.speaker)
        elif args.command == "convert":
            from vqvae import commands_audio

            commands_audio.reconstruct(args.run, args.wavs, args.out, convert_to=args.speaker)
        elif args.command == "encode":
            commands.encode(args.run, args.data, args.data_root, args.split, args.out)
        elif args.command == "decode":
            commands.decode(args.run, args.codes, args.out, args.grid)
        elif args.command in ("compress", "decompress", "codec-export"):
            from vqvae import commands_codec

            if args.command == "codec-export":
                commands_codec.export(args.prior, args.name, args.out, args.default_quality, args.card, args.tokenizer)
            elif args.command == "compress":
                commands_codec.compress(args.images, args.out, args.quality, args.model, args.refine, not args.no_progress)
            else:
                commands_codec.decompress(args.files, args.out, args.model)
        elif args.command == "demo":
            commands.demo(args.out, args.minutes, args.data_root, args.prior_minutes)
    except VQVAEError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


def main_entry() -> None:
    sys.exit(main())
