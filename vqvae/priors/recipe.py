"""``vqvae prior train``: a prior over a tokenizer's codes, through the shared run lifecycle (:func:`vqvae.core.runs.train`).

The tokenizer's dataset is encoded once and cached in the tokenizer's run
(:func:`vqvae.priors.codes.dataset_codes`); the prior's config records the
tokenizer's path and fingerprint, so ``sample`` and ``eval`` refuse a
tokenizer that has changed. With ``tile`` the prior models ``tile x tile``
windows of the code maps (random crops in training, whole tiles in
evaluation): the codec's prior, which codes any image size tile by tile.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path

import torch

from vqvae import registry
from vqvae.core import dist
from vqvae.core.config import build, merge, read_yaml
from vqvae.core.errors import VQVAEError
from vqvae.core.runs import Recipe, RunArgs
from vqvae.priors import codes
from vqvae.priors.sampling import draw

ARCHS = ("pixelcnn", "transformer")
PREVIEW_GUIDANCE = 2.0  # the samples.png of a prior trained for classifier-free guidance (model.label_dropout) use this scale


class CodeRecipe(Recipe):
    """A run trained on a tokenizer's code maps (priors, the world family's second stage): the tokenizer loaded
    and fingerprinted, its dataset encoded once (cached in the tokenizer's run), and a resumed run refused if the
    tokenizer has changed. :meth:`tokenizer_fields` are the config entries the tokenizer fixes."""

    def __init__(self, args: RunArgs, tokenizer: str):
        super().__init__(args)
        self.tok_dir = Path(tokenizer).resolve()
        self.tok_cfg, self.tok, self.fp = codes.load_tokenizer(self.tok_dir)
        self._sets: dict = {}

    def code_set(self, split: str) -> codes.CodeSet:
        """The tokenizer's codes of a split of its data (encoded once, then cached in the tokenizer's run)."""
        if split not in self._sets:
            self._sets[split] = codes.dataset_codes(self.tok_dir, self.tok_cfg, self.tok, self.fp, split, data_root=self.args.data_root,
                                                    write=dist.is_main())
        return self._sets[split]

    def resume_config(self, base):
        if base.tokenizer.fingerprint != self.fp:
            raise VQVAEError(f"{self.args.out} was trained on another tokenizer (fingerprint {base.tokenizer.fingerprint}, "
                             f"{self.tok_dir} has {self.fp})")
        return super().resume_config(base)

    def tokenizer_fields(self) -> dict:
        """``tokenizer`` (path and fingerprint) and ``data`` (the tokenizer's) config sections."""
        return {"data": asdict(self.tok_cfg.data), "tokenizer": {"path": str(self.tok_dir), "fingerprint": self.fp}}

    def data(self, cfg, run_dir):
        return self.code_set("train"), self.code_set("test")

    @staticmethod
    def check_overrides(over: dict, fixed_model: dict, what: str) -> None:
        """Only ``model.*`` sizes the tokenizer does not fix, and ``train.*``, may be overridden."""
        bad = set(over.get("model", {})) & set(fixed_model)
        if bad or set(over) - {"train", "model"}:
            raise VQVAEError(f"{sorted(bad)[0] if bad else 'that section'} is set by the tokenizer{what}; "
                             "only model.* sizes and train.* can change")


class PriorRecipe(CodeRecipe):
    def __init__(self, args: RunArgs, tokenizer: str, arch: str, conditional: bool = False, config: str | None = None,
                 tile: int | None = None, preview: dict | None = None):
        """``preview``: how the finished run draws its samples picture (``sample`` keywords: temperature, guidance, ...;
        default: plain ancestral sampling, with guidance :data:`PREVIEW_GUIDANCE` for a prior trained for it)."""
        if arch not in ARCHS:
            raise VQVAEError(f"--arch must be one of {', '.join(ARCHS)}, got {arch!r}")
        super().__init__(args, tokenizer)
        self.preview = preview
        self.arch, self.conditional, self.config, self.tile = arch, conditional, config, tile

    def default_name(self) -> str:
        return f"{self.tok_dir.name}-{self.arch}"

    def new_config(self, run_dir: Path):
        train_set, over = self.code_set("train"), self.over
        code_shape = tuple(train_set.images.shape[1:])
        g, h, w = (1, *code_shape) if len(code_shape) == 2 else code_shape
        if self.tile is not None:
            if not 1 <= self.tile <= min(h, w):
                raise VQVAEError(f"--tile must be in 1..{min(h, w)} (the {h}x{w} code maps), got {self.tile}")
            h = w = self.tile
        n_classes = 0
        if self.conditional:
            if train_set.labels is None:
                raise VQVAEError(f"--conditional needs labels, and {self.tok_cfg.data.name} has none")
            n_classes = len(train_set.classes) if train_set.classes else int(train_set.labels.max()) + 1
        fields = self.tokenizer_fields()
        fixed = {"arch": self.arch, "data": {**fields["data"], "crop": self.tile or 0},
                 "model": {"codebook_size": self.tok_cfg.model.codebook_size, "num_codebooks": g, "height": h, "width": w,
                           "num_classes": n_classes},
                 "tokenizer": fields["tokenizer"]}
        self.check_overrides(over, fixed["model"], " (and --conditional)")
        return build(merge(merge(read_yaml(self.config or f"prior-{self.arch}"), over), fixed))

    def describe(self, cfg, train_set, test_set) -> str:
        return f"a {cfg.arch} prior on {len(train_set)} code maps {tuple(train_set.images.shape[1:])} of {self.tok_dir}"

    def report(self, run_dir, cfg, model, test_set, final) -> str:
        name, n = registry.task_for(self.tok_cfg.arch).preview
        if c := cfg.model.num_classes:
            n = c * -(-n // c)  # one full row per class
        samples = Path(run_dir) / name
        dev = next(model.parameters()).device
        how = self.preview if self.preview is not None else (
            {"guidance": PREVIEW_GUIDANCE} if getattr(cfg.model, "label_dropout", 0.0) else {})
        draw(model, self.tok_cfg.arch, self.tok.to(dev), n, None, samples, torch.Generator().manual_seed(0), **how)
        said = ", ".join(f"{k} {v:g}" for k, v in how.items())
        return (f"step {final['step']}: test NLL {final['bits_per_code']:.4f} bits/code "
                f"(uniform prior: {math.log2(cfg.model.codebook_size):.4f}); samples -> {samples}" + (f" ({said})" if said else ""))
