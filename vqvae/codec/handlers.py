"""Handlers of the codec's commands: ``compress``, ``decompress`` and ``codec-export``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from vqvae.codec.api import CODEC_FILE, load_codec
from vqvae.codec.codec import Codec
from vqvae.codec.container import CodecError, unpack
from vqvae.codec.defaults import DEFAULT_MODEL
from vqvae.core import checkpoint, zoo, zoo_build
from vqvae.core.files import atomic_write
from vqvae.data.images import MAX_PIXELS, read_image, write_image


def _outputs(inputs: list[str], out: str, suffix: str) -> list[Path]:
    """One output per input: ``out`` itself for one input with a file suffix, else ``out/<stem><suffix>``."""
    o = Path(out)
    if len(inputs) == 1 and o.suffix and not o.is_dir():
        return [o]
    stems = [Path(i).stem for i in inputs]
    if len(set(stems)) != len(stems):
        raise CodecError("two inputs share a file name; compress them into separate folders")
    return [o / f"{s}{suffix}" for s in stems]


def compress(args: argparse.Namespace) -> list[dict]:
    """``vqvae compress``: each image to a ``.vqz`` file (quality: the model's default unless given)."""
    codec, refine = load_codec(args.model), args.refine
    quality = codec.check_quality(args.quality)
    rows = []
    for src, dst in zip(args.images, _outputs(args.images, args.out, ".vqz")):
        x = read_image(src, max_pixels=args.max_pixels or MAX_PIXELS)
        data, st = codec.compress(x, quality, refine=refine, progress=not args.no_progress and refine > 0)
        atomic_write(dst, data)
        rows.append({"input": src, "output": str(dst), "bytes": st.bytes, "bpp": st.bpp, "model_nll_bits": st.nll_bits})
        print(f"{src} -> {dst}: {st.bytes} bytes, {st.bpp:.4f} bpp (quality {quality} of {codec.levels}"
              f"{f', codes refined {refine} steps' if refine else ''}, "
              f"model {codec.name}; the prior's NLL of the codes: {st.nll_bits / 8:.0f} bytes), {st.encode_s:.2f} s")
    return rows


def decompress(args: argparse.Namespace) -> None:
    """``vqvae decompress``: each ``.vqz`` file to a PNG, with the model the file names (or ``--model``)."""
    codec, model = None, args.model
    for src, dst in zip(args.files, _outputs(args.files, args.out, ".png")):
        p = Path(src)
        if not p.is_file():
            raise CodecError(f"{p}: no such file")
        data = p.read_bytes()
        header, _ = unpack(data)
        if codec is None or codec.name != header.model:
            codec = load_codec(model if model is not None else header.model)
        write_image(dst, codec.decompress(data))
        print(f"{src} -> {dst}: {header.width}x{header.height}, {'grey' if header.channels == 1 else 'RGB'}, quality {header.quality}")


def export(args: argparse.Namespace) -> Path:
    try:
        headline = json.loads(args.headline)
    except json.JSONDecodeError as e:
        raise CodecError(f"--headline must be a JSON object ({e})") from None
    return export_model(args.prior, args.name, args.default_quality, args.card, args.tokenizer, summary=args.summary,
                        data=args.data, headline=headline, root=Path(args.root) if args.root else zoo.ZOO)


def export_model(prior_run: str, name: str, default_quality: int | None, card: str | None, tokenizer: str | None = None,
                 summary: str = "", data: str = "", headline: dict | None = None, root: Path = zoo.ZOO) -> Path:
    """Package a prior run and its tokenizer as zoo model ``name`` (:func:`vqvae.core.zoo_build.export`): parts
    ``tokenizer`` and ``prior`` (config + weights, fp32: the codes and pixels are the measured ones), ``codec.json``
    and the card. ``tokenizer`` replaces the prior's own tokenizer run by one with the same codes (a fine-tuned
    decoder)."""
    src = Path(prior_run)
    codec = Codec.from_run(src, name, tokenizer)  # validates the pair and computes the fingerprint
    q = default_quality if default_quality is not None else max(1, (codec.levels + 1) // 2)
    codec.check_quality(q)
    tok_src = checkpoint.resolve_tokenizer(src.resolve(), codec.prior_cfg.tokenizer.path, tokenizer)
    info = {"name": name, "levels": codec.levels, "default_quality": q, "fingerprint": codec.fingerprint.hex(),
            "downsampling": codec.f, "tile": codec.tile}
    use = [f"vqvae compress photo.png -o photo.vqz{'' if name == DEFAULT_MODEL else f' --model {name}'}",
           "vqvae decompress photo.vqz -o back.png"]
    folder = zoo_build.export(name, {"tokenizer": tok_src, "prior": src}, "prior", summary, data, headline, use,
                              card=card, root=root, links={"prior": "tokenizer"},
                              extra={CODEC_FILE: (json.dumps(info, indent=2) + "\n").encode()})
    shipped = Codec.from_dirs(folder / "tokenizer", folder / "prior", name, q)
    if shipped.fingerprint != codec.fingerprint:
        raise CodecError(f"the exported model {folder} is not the run's (fingerprint {shipped.fingerprint.hex()} != {codec.fingerprint.hex()})")
    print(f"exported codec model {name} ({codec.levels} quality levels, default {q}) -> {folder} "
          f"({zoo.size_bytes(name, root) / 1e6:.2f} MB)")
    return folder
