"""CLI commands of DALL-E's stage 2: ``dalle train`` and ``generate`` (``vqvae.cli`` only parses).

``dalle train --tokenizer RUN [--data scenes|scenes:N|coco]`` trains a byte-level
BPE on the training captions (saved as ``text.json`` in the run), encodes the
images with the tokenizer (a VQ-VAE or a dVAE), and trains the text+image
transformer with the project's Trainer (progress, metrics, checkpoints,
``--resume``). ``generate RUN "prompt" -n 16 [--guidance G] [--candidates C] -o grid.png``
draws images for a caption (with ``C > 1``, the best 16 of ``16 C`` by CLIP or by the transformer's likelihood).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import torch

from vqvae import checkpoint, codes, dalle_eval, plots
from vqvae.config import build, merge, parse_overrides, read_yaml
from vqvae.errors import VQVAEError
from vqvae.text import TextTokenizer
from vqvae.train import pick_device

TEXT_FILE = "text.json"


def _captioned(name: str, split: str, root: str | None, tok_cfg):
    """A captioned split at the tokenizer's input size (its training crop, else its image size, else 64)."""
    from vqvae.captioned import captioned_split

    images, captions = captioned_split(name, split, root, target=tok_cfg.data.crop or tok_cfg.data.image_size or 64)
    if images.shape[1] != tok_cfg.model.in_channels:
        raise VQVAEError(f"{name} has {images.shape[1]}-channel images but the tokenizer takes {tok_cfg.model.in_channels} channels")
    return images, captions


def _open_run(prefix: str, out: str | None, resume: bool, overrides: list[str], steps: int | None, minutes: float | None):
    """``(overrides, run_dir, cfg, text tokenizer)`` of a run with its own BPE: a resumed run's config and tokenizer, or
    ``None, None`` for a new one (checked not to overwrite a run)."""
    over = merge(parse_overrides(overrides), {"train": {k: v for k, v in (("steps", steps), ("minutes", minutes)) if v is not None}})
    run_dir = Path(out or f"runs/{prefix}-{time.strftime('%Y%m%d-%H%M%S')}")
    if resume:
        return over, run_dir, build(merge(checkpoint.load_config(run_dir).to_dict(), over)), TextTokenizer.load(run_dir / TEXT_FILE)
    if (run_dir / checkpoint.STATE).exists():
        raise VQVAEError(f"{run_dir} already holds a run: pass --resume to continue it or choose another --out")
    return over, run_dir, None, None


def train_dalle(tokenizer: str, data: str | None, config: str | None, out: str | None, steps: int | None, minutes: float | None,
                resume: bool, data_root: str | None, overrides: list[str], progress: bool = True) -> dict:
    from vqvae.codes import CodeSet
    from vqvae.train import Trainer

    tok_dir = Path(tokenizer).resolve()
    tok_cfg, tok, fp = codes.load_tokenizer(tok_dir)
    name = data or tok_cfg.data.name
    over, run_dir, cfg, text = _open_run("dalle", out, resume, overrides, steps, minutes)
    if cfg is None:
        raw = read_yaml(config or "dalle")
        images, captions = _captioned(name, "train", data_root, tok_cfg)
        m = {**raw.get("model", {}), **over.get("model", {})}
        init = over.get("train", {}).get("init_from") or raw.get("train", {}).get("init_from")
        if init:  # fine-tuning keeps the source run's text tokenizer: its embeddings are indexed by those token ids
            text = TextTokenizer.load(Path(init) / TEXT_FILE)
        else:
            text = TextTokenizer.train(captions, vocab_size=int(m.get("bpe_vocab", 1024)), text_len=int(m.get("text_len", 32)))
        h, w = tok_cfg.model.code_shape(*images.shape[-2:])[-2:]
        fixed = {"arch": "dalle", "data": {**asdict(tok_cfg.data), "name": name, "crop": 0, "hflip": False, "augment": "crop"},
                 "model": {"text_vocab": text.total_size, "image_vocab": tok_cfg.model.codebook_size, "height": h, "width": w},
                 "tokenizer": {"path": str(tok_dir), "fingerprint": fp}}
        cfg = build(merge(merge(raw, over), fixed))
        run_dir.mkdir(parents=True, exist_ok=True)
        text.save(run_dir / TEXT_FILE)
    sets = []
    for split in ("train", "test"):
        images, captions = _captioned(name, split, data_root, tok_cfg)
        z = torch.from_numpy(codes.encode_data(tok_cfg, tok, images))
        ids = torch.stack([text.encode(c, warn=False) for c in captions])
        sets.append(CodeSet(z, ids, None, f"{name} {split}"))
    trainer = Trainer(cfg, run_dir, sets[0], sets[1], resume=resume, progress=progress)
    n_par = sum(p.numel() for p in trainer.model.parameters())
    print(f"training DALL-E's transformer ({n_par / 1e6:.2f}M parameters) on {len(sets[0])} captioned images of {name} "
          f"({cfg.model.text_len} text + {cfg.model.height}x{cfg.model.width} image tokens) on {trainer.device} -> {run_dir}")
    final = trainer.fit()
    checkpoint.atomic_write(run_dir / "eval.json", json.dumps(final, indent=2).encode())
    print(f"step {final['step']}: test image NLL {final['image_loss']:.4f} nats/code, text NLL {final['text_loss']:.4f} nats/token")
    return final


def train_clip(data: str | None, config: str | None, out: str | None, steps: int | None, minutes: float | None, resume: bool,
               data_root: str | None, overrides: list[str], progress: bool = True) -> dict:
    """``vqvae clip train``: CLIP (:mod:`vqvae.models.clip`) on a captioned dataset's train split, with its own BPE."""
    from vqvae.captioned import captioned_split
    from vqvae.data import ImageSet
    from vqvae.splits import reconstructed
    from vqvae.train import Trainer

    over, run_dir, cfg, text = _open_run("clip", out, resume, overrides, steps, minutes)
    raw = None if cfg is not None else merge(read_yaml(config or "clip"), over)
    m = {} if raw is None else raw.get("model", {})
    name = cfg.data.name if cfg is not None else data or raw.get("data", {}).get("name") or "scenes"
    size = cfg.model.image_size if cfg is not None else int(m.get("image_size", 64))
    splits = {split: captioned_split(name, split, data_root, target=size) for split in ("train", "test")}
    if cfg is None:
        images, captions = splits["train"]
        text = TextTokenizer.train(captions, vocab_size=int(m.get("bpe_vocab", 1024)), text_len=int(m.get("text_len", 16)))
        fixed = {"arch": "clip", "data": {"name": name, "hflip": False, "crop": 0},
                 "model": {"text_vocab": text.total_size, "in_channels": images.shape[1], "image_size": images.shape[-1]}}
        cfg = build(merge(raw, fixed))
        run_dir.mkdir(parents=True, exist_ok=True)
        text.save(run_dir / TEXT_FILE)
    sets = []
    for split, (images, captions) in splits.items():
        if split == "train" and cfg.data.reconstructions_from:  # decoded images too, as the reranker will read samples
            images, captions = torch.cat([images, reconstructed(cfg.data.reconstructions_from, images, progress)]), captions * 2
        ids = torch.stack([text.encode(c, warn=False) for c in captions])
        sets.append(ImageSet(images, ids, None, f"{cfg.data.name} {split}"))
    trainer = Trainer(cfg, run_dir, sets[0], sets[1], resume=resume, progress=progress)
    n_par = sum(p.numel() for p in trainer.model.parameters())
    print(f"training CLIP ({n_par / 1e6:.2f}M parameters) on {len(sets[0])} captioned images of {cfg.data.name} on {trainer.device} -> {run_dir}")
    final = trainer.fit()
    checkpoint.atomic_write(run_dir / "eval.json", json.dumps(final, indent=2).encode())
    print(f"step {final['step']}: test InfoNCE {final['loss']:.4f}, image -> caption top-1 {final['accuracy']:.1%} "
          f"among {final['batch']}")
    return final


def load_dalle(run: str | Path, device="cpu"):
    """``(cfg, transformer, text tokenizer, tokenizer)`` of a DALL-E run, the tokenizer checked by fingerprint."""
    cfg, model, tok_cfg, tok = codes.load_prior(run, device=device)
    if cfg.arch != "dalle":
        raise VQVAEError(f"{run} is a {cfg.arch} run, not a DALL-E transformer (train one with: vqvae dalle train --tokenizer RUN)")
    text = TextTokenizer.load(Path(run) / TEXT_FILE)
    if text.total_size != cfg.model.text_vocab or text.text_len != cfg.model.text_len:
        raise VQVAEError(f"{run}/{TEXT_FILE} does not match the transformer (vocabulary {text.total_size} vs {cfg.model.text_vocab}, "
                         f"length {text.text_len} vs {cfg.model.text_len}): the run was edited")
    return cfg, model, text, tok


def generate(run: str, prompt: str, n: int, guidance: float, temperature: float, top_k: int, top_p: float, seed: int, out: str,
             device: str = "auto", candidates: int = 1, clip_run: str | None = None) -> Path:
    if temperature <= 0 or top_k < 0 or not 0 < top_p <= 1 or guidance < 0:
        raise VQVAEError("need --temperature > 0, --top-k >= 0, --top-p in (0, 1] and --guidance >= 0")
    dev = pick_device(device)
    cfg, model, text, tok = load_dalle(run, dev)
    clip = dalle_eval.load_clip(clip_run, dev) if clip_run else None
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        text.encode(prompt)
    for w in caught:
        print(f"warning: {w.message}")
    images = dalle_eval.draw(model.eval(), text, tok, [prompt], n, guidance=guidance, temperature=temperature, top_k=top_k, top_p=top_p,
                             seed=seed, candidates=candidates, progress=n * candidates > 256, clip=clip).images
    plots.save_grid(images, out, nrow=min(n, 8), scale=max(1, 64 // images.shape[-1]))
    best = f", the best {n} of {n * candidates} by {'CLIP' if clip else 'likelihood'}" if candidates > 1 else ""
    print(f"{n} images for {prompt!r} (guidance {guidance:g}{best}) -> {out}")
    return Path(out)


def evaluate_dalle(run: str, reader_run: str, split: str, n: int, guidance: float, seed: int, as_json: bool, data_root: str | None = None,
                   per_prompt: int = 4, candidates: int = 1, clip_run: str | None = None, **sampling) -> dict:
    """``vqvae eval DALLE_RUN --classifier READER``: prompt faithfulness of ``n`` samples (``per_prompt`` per caption of ``split``)."""
    from vqvae import dalle_eval, scenes

    if n < per_prompt:
        raise VQVAEError(f"-n/--samples must be >= {per_prompt} (samples per prompt), got {n}")
    cfg, model, text, tok = load_dalle(run)
    reader = dalle_eval.load_reader(reader_run)
    clip = dalle_eval.load_clip(clip_run) if clip_run else None
    n_train = scenes.parse_name(cfg.data.name)
    if n_train is None:
        raise VQVAEError(f"prompt faithfulness is read from the captioned scenes; {run} was trained on {cfg.data.name}")
    captions, attrs = dalle_eval.prompts(n_train, split, n // per_prompt, data_root or cfg.data.root)
    acc, _ = dalle_eval.faithfulness(model, text, tok, reader, captions, attrs, per_prompt, guidance=guidance, seed=seed,
                                     candidates=candidates, clip=clip, **sampling)
    m = {"run": str(run), "reader": str(reader_run), "split": split, "guidance": guidance, "candidates": candidates,
         "reranker": (str(clip_run) if clip else "likelihood") if candidates > 1 else None, **acc}
    ranked = f", the best {per_prompt} of {per_prompt * candidates} per caption by {'CLIP' if clip else 'likelihood'}" if candidates > 1 else ""
    print(json.dumps(m, indent=2) if as_json else
          f"{split}: {acc['all']:.1%} of {acc['samples']} samples faithful to their caption (position {acc['position']:.1%}, class {acc['class']:.1%}, "
          f"colour {acc['colour']:.1%}, size {acc['size']:.1%}; guidance {guidance:g}{ranked})")
    return m
