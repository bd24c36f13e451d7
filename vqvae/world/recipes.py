"""``vqvae train --tokenizer RUN --config doom-stage2``: the second stage on a tokenizer's code maps, through the shared
run lifecycle (:func:`vqvae.core.runs.train`) and the priors' binding to a tokenizer (path and fingerprint,
:class:`vqvae.priors.recipe.CodeRecipe`)."""

from __future__ import annotations

from pathlib import Path

import torch

from vqvae.core.config import build, merge, read_yaml
from vqvae.core.errors import VQVAEError
from vqvae.core.runs import RunArgs
from vqvae.priors.recipe import CodeRecipe
from vqvae.world import inference


class Stage2Recipe(CodeRecipe):
    def __init__(self, args: RunArgs, tokenizer: str, config: str):
        super().__init__(args, tokenizer)
        self.config = config

    def default_name(self) -> str:
        return f"{self.tok_dir.name}-stage2"

    def new_config(self, run_dir: Path):
        shape = tuple(self.code_set("train").images.shape[1:])
        if len(shape) != 2:
            raise VQVAEError(f"the second stage models one code map (h, w) per image; {self.tok_dir} gives code maps {shape}")
        fields = self.tokenizer_fields()
        fixed = {"arch": "stage2", **fields,
                 "model": {"codebook_size": self.tok_cfg.model.codebook_size, "height": shape[0], "width": shape[1]}}
        self.check_overrides(self.over, fixed["model"], "")
        return build(merge(merge(read_yaml(self.config), self.over), fixed))

    def describe(self, cfg, train_set, test_set) -> str:
        return f"a second stage ({cfg.model.latents} latents) on {len(train_set)} code maps {tuple(train_set.images.shape[1:])} of {self.tok_dir}"

    def report(self, run_dir, cfg, model, test_set, final) -> str:
        frames = inference.test_frames(self.tok_cfg, self.args.data_root)
        pick = inference.spread(len(test_set), 6)
        inference.stage2_figure(model, self.tok_cfg, self.tok.to(next(model.parameters()).device), frames[pick],
                                test_set.images[pick], Path(run_dir) / "reconstructions.png", torch.Generator().manual_seed(0))
        return super().report(run_dir, cfg, model, test_set, final) + f"; pictures -> {Path(run_dir) / 'reconstructions.png'}"
