"""``vqvae dalle train`` and ``vqvae clip train``, through the shared run lifecycle (:func:`vqvae.core.runs.train`).

Each run learns its own byte-level BPE on its training captions (saved as
``text.json`` in the run; a DALL-E fine-tune keeps its source's, whose token
ids index its embeddings). Under torchrun rank 0 learns and writes it and every
rank reads it back, so all ranks build the same model.

* DALL-E: a tokenizer's codes of the captioned images (the scenes or COCO-mini)
  with their captions' ids; the config records the tokenizer and its fingerprint.
* CLIP: the captioned images themselves (and with ``data.reconstructions_from``
  a tokenizer's reconstructions of them, so it ranks decoded samples).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch

from vqvae.core import dist
from vqvae.core.config import build, merge, read_yaml
from vqvae.core.errors import VQVAEError
from vqvae.core.runs import Recipe, RunArgs
from vqvae.core.task import with_reconstructions
from vqvae.data.captioned import captioned_split
from vqvae.data.sets import ImageSet
from vqvae.priors import codes
from vqvae.priors.codes import CodeSet
from vqvae.text2image.loading import TEXT_FILE
from vqvae.text2image.text import TextTokenizer


class _TextRecipe(Recipe):
    """A run with its own BPE: rank 0 learns (or copies) it into the run, every rank loads it from there."""

    def _text(self, run_dir: Path, captions: list[str], model: dict, default_len: int, source: str | None = None) -> TextTokenizer:
        if dist.is_main():
            if source:  # fine-tuning keeps the source run's text tokenizer: its embeddings are indexed by those token ids
                text = TextTokenizer.load(Path(source) / TEXT_FILE)
            else:
                text = TextTokenizer.train(captions, vocab_size=int(model.get("bpe_vocab", 1024)), text_len=int(model.get("text_len", default_len)))
            run_dir.mkdir(parents=True, exist_ok=True)
            text.save(run_dir / TEXT_FILE)
        dist.barrier()
        return TextTokenizer.load(run_dir / TEXT_FILE)

    @staticmethod
    def _ids(text: TextTokenizer, captions: list[str]) -> torch.Tensor:
        return torch.stack([text.encode(c, warn=False) for c in captions])


class DalleRecipe(_TextRecipe):
    name = "dalle"

    def __init__(self, args: RunArgs, tokenizer: str, data: str | None = None, config: str | None = None):
        super().__init__(args)
        self.tok_dir = Path(tokenizer).resolve()
        self.tok_cfg, self.tok, self.fp = codes.load_tokenizer(self.tok_dir)
        self.data_name, self.config = data or self.tok_cfg.data.name, config
        self._splits: dict = {}

    def _captioned(self, split: str):
        """A captioned split at the tokenizer's input size (its training crop, else its image size, else 64); loaded once."""
        if split not in self._splits:
            t = self.tok_cfg
            images, captions = captioned_split(self.data_name, split, self.args.data_root, target=t.data.crop or t.data.image_size or 64)
            if images.shape[1] != t.model.in_channels:
                raise VQVAEError(f"{self.data_name} has {images.shape[1]}-channel images but the tokenizer takes {t.model.in_channels} channels")
            self._splits[split] = images, captions
        return self._splits[split]

    def new_config(self, run_dir: Path):
        raw = read_yaml(self.config or "dalle")
        images, captions = self._captioned("train")
        m = {**raw.get("model", {}), **self.over.get("model", {})}
        init = self.over.get("train", {}).get("init_from") or raw.get("train", {}).get("init_from")
        text = self._text(run_dir, captions, m, 32, source=init)
        h, w = self.tok_cfg.model.code_shape(*images.shape[-2:])[-2:]
        fixed = {"arch": "dalle", "data": {**asdict(self.tok_cfg.data), "name": self.data_name, "crop": 0, "hflip": False, "augment": "crop"},
                 "model": {"text_vocab": text.total_size, "image_vocab": self.tok_cfg.model.codebook_size, "height": h, "width": w},
                 "tokenizer": {"path": str(self.tok_dir), "fingerprint": self.fp}}
        return build(merge(merge(raw, self.over), fixed))

    def data(self, cfg, run_dir):
        text = TextTokenizer.load(Path(run_dir) / TEXT_FILE)
        sets = []
        for split in ("train", "test"):
            images, captions = self._captioned(split)
            z = torch.from_numpy(codes.encode_data(self.tok_cfg, self.tok, images))
            sets.append(CodeSet(z, self._ids(text, captions), None, f"{self.data_name} {split}"))
        return sets

    def describe(self, cfg, train_set, test_set) -> str:
        return (f"DALL-E's transformer on {len(train_set)} captioned images of {self.data_name} "
                f"({cfg.model.text_len} text + {cfg.model.height}x{cfg.model.width} image tokens)")

    def report(self, run_dir, cfg, model, test_set, final) -> str:
        return f"step {final['step']}: test image NLL {final['image_loss']:.4f} nats/code, text NLL {final['text_loss']:.4f} nats/token"


class ClipRecipe(_TextRecipe):
    name = "clip"

    def __init__(self, args: RunArgs, data: str | None = None, config: str | None = None):
        super().__init__(args)
        self.data_name, self.config = data, config
        self._splits: dict = {}

    def _split(self, name: str, split: str, size: int):
        if split not in self._splits:
            self._splits[split] = captioned_split(name, split, self.args.data_root, target=size)
        return self._splits[split]

    def new_config(self, run_dir: Path):
        raw = merge(read_yaml(self.config or "clip"), self.over)
        m = raw.get("model", {})
        name = self.data_name or raw.get("data", {}).get("name") or "scenes"
        images, captions = self._split(name, "train", int(m.get("image_size", 64)))
        text = self._text(run_dir, captions, m, 16)
        fixed = {"arch": "clip", "data": {"name": name, "hflip": False, "crop": 0},
                 "model": {"text_vocab": text.total_size, "in_channels": images.shape[1], "image_size": images.shape[-1]}}
        return build(merge(raw, fixed))

    def data(self, cfg, run_dir):
        text = TextTokenizer.load(Path(run_dir) / TEXT_FILE)
        sets = []
        for split in ("train", "test"):
            images, captions = self._split(cfg.data.name, split, cfg.model.image_size)
            ds = ImageSet(images, None, None, f"{cfg.data.name} {split}")
            if split == "train" and cfg.data.reconstructions_from:  # decoded images too, as the reranker will read samples
                ds, captions = with_reconstructions(cfg.data.reconstructions_from, ds, self.args.progress), captions * 2
            sets.append(ImageSet(ds.images, self._ids(text, captions), None, ds.name))
        return sets

    def describe(self, cfg, train_set, test_set) -> str:
        return f"CLIP on {len(train_set)} captioned images of {cfg.data.name}"

    def report(self, run_dir, cfg, model, test_set, final) -> str:
        return (f"step {final['step']}: test InfoNCE {final['loss']:.4f}, image -> caption top-1 {final['accuracy']:.1%} "
                f"among {final['batch']}")
