"""The world models' recipes, through the shared run lifecycle (:func:`vqvae.core.runs.train`) and the priors' binding
to a tokenizer (path and fingerprint, :class:`vqvae.priors.recipe.CodeRecipe`): ``vqvae train --tokenizer RUN
--config doom-stage2`` (the second stage on a tokenizer's code maps) and ``vqvae world train --tokenizer RUN`` (the
video model on windows of per-frame codes and the episodes' actions)."""

from __future__ import annotations

from pathlib import Path

import torch

from vqvae.core.config import build, merge, read_yaml
from vqvae.core.errors import VQVAEError
from vqvae.core.runs import RunArgs
from vqvae.data import doom
from vqvae.data.sets import TensorSet
from vqvae.priors.recipe import CodeRecipe
from vqvae.world import inference


def map_config(recipe: CodeRecipe, arch: str, preset: str, model: dict):
    """The config of a model over one code map (h, w) per frame: the preset, the overrides, and what the tokenizer
    fixes (K, h, w, its data and fingerprint) with ``model``'s further fixed values."""
    shape = tuple(recipe.code_set("train").images.shape[1:])
    if len(shape) != 2:
        raise VQVAEError(f"a {arch} model reads one code map (h, w) per frame; {recipe.tok_dir} gives code maps {shape}")
    fixed_model = {"codebook_size": recipe.tok_cfg.model.codebook_size, "height": shape[0], "width": shape[1], **model}
    recipe.check_overrides(recipe.over, fixed_model, "")
    raw = read_yaml(preset)
    if raw.get("arch") != arch:
        raise VQVAEError(f"{preset} is not a {arch} model's config (arch {raw.get('arch')!r})")
    return build(merge(merge(raw, recipe.over), {"arch": arch, **recipe.tokenizer_fields(), "model": fixed_model}))


class Stage2Recipe(CodeRecipe):
    def __init__(self, args: RunArgs, tokenizer: str, config: str):
        super().__init__(args, tokenizer)
        self.config = config

    def default_name(self) -> str:
        return f"{self.tok_dir.name}-stage2"

    def new_config(self, run_dir: Path):
        return map_config(self, "stage2", self.config, {})

    def describe(self, cfg, train_set, test_set) -> str:
        return f"a second stage ({cfg.model.latents} latents) on {len(train_set)} code maps {tuple(train_set.images.shape[1:])} of {self.tok_dir}"

    def report(self, run_dir, cfg, model, test_set, final) -> str:
        frames = inference.test_frames(self.tok_cfg, self.args.data_root)
        pick = inference.spread(len(test_set), 6)
        inference.stage2_figure(model, self.tok_cfg, self.tok.to(next(model.parameters()).device), frames[pick],
                                test_set.images[pick], Path(run_dir) / "reconstructions.png", torch.Generator().manual_seed(0))
        return super().report(run_dir, cfg, model, test_set, final) + f"; pictures -> {Path(run_dir) / 'reconstructions.png'}"


def episode_windows(codes: torch.Tensor, actions: torch.Tensor, frames: int, stride: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Episodes' code maps ``(E, S, h, w)`` and actions ``(E, S)`` -> every window of ``frames`` consecutive frames
    starting at a multiple of ``stride``: ``(N, frames, h, w)`` and ``(N, frames)``."""
    e, s = actions.shape
    if s < frames:
        raise VQVAEError(f"episodes of {s} frames are shorter than the model's {frames}-frame windows")
    starts = torch.arange(0, s - frames + 1, stride)
    idx = starts[:, None] + torch.arange(frames)[None]  # (n, frames)
    return codes[:, idx].reshape(-1, frames, *codes.shape[2:]), actions[:, idx].reshape(-1, frames)


class VideoRecipe(CodeRecipe):
    """``vqvae world train --tokenizer RUN``: the video model on windows of a doom tokenizer's per-frame codes and the
    episodes' actions (every window in training, every ``T``-th in the test split)."""

    def __init__(self, args: RunArgs, tokenizer: str, config: str | None = None):
        super().__init__(args, tokenizer)
        self.config = config or "doom-video"
        self.episodes = doom.parse_name(self.tok_cfg.data.name)
        if self.episodes is None:
            raise VQVAEError(f"the video model needs the actions of the doom episodes; {self.tok_dir} was trained on "
                             f"{self.tok_cfg.data.name!r} (train the tokenizer on --data doom:N)")

    def default_name(self) -> str:
        return f"{self.tok_dir.name}-video"

    def new_config(self, run_dir: Path):
        return map_config(self, "video", self.config, {"actions": len(doom.ACTIONS)})

    def split(self, split: str, frames: int, stride: int) -> TensorSet:
        eps = doom.episodes(self.episodes, split, self.tok_cfg.data.scenario, self.args.data_root or self.tok_cfg.data.root,
                            progress=self.args.progress)
        codes = self.code_set(split).images
        e, s = eps.actions.shape
        if codes.shape[0] != e * s:
            raise VQVAEError(f"{self.tok_dir} holds {codes.shape[0]} {split} code maps, the episodes {e} x {s} frames")
        x, a = episode_windows(codes.view(e, s, *codes.shape[1:]), torch.from_numpy(eps.actions), frames, stride)
        return TensorSet(x, a, None, f"{self.tok_cfg.data.name} windows of {frames} frames")

    def data(self, cfg, run_dir):
        t = cfg.model.frames
        return self.split("train", t, 1), self.split("test", t, t)

    def describe(self, cfg, train_set, test_set) -> str:
        return f"a video model on {len(train_set)} windows of {cfg.model.frames} frames' codes {tuple(train_set.images.shape[2:])} of {self.tok_dir}"
