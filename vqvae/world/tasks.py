"""How the second stage trains and is evaluated: code maps -> NLL (nats per code) + the quantizer's terms.

Evaluation reports the decoder's NLL of the test code maps given their own latents (bits per code and per map), given
another map's latents (each map takes those of the map :data:`SWAP_OFFSET` later: another episode's frame at the same
step for the doom episodes' 200 frames), their difference (``information_bits``: what the three latents tell the
decoder; 0 under posterior collapse) and the share of each latent's codes in use.
"""

from __future__ import annotations

import math

import torch

from vqvae.core.errors import VQVAEError
from vqvae.core.task import Task, check_ids, raw
from vqvae.data import doom
from vqvae.data.images import resize
from vqvae.data.sets import TensorSet
from vqvae.registry import Arch, register
from vqvae.world.probe import Probe, read_errors, spread
from vqvae.world.recipes import Stage2Recipe
from vqvae.world.stage2 import Stage2
from vqvae.world.video import VideoModel

SWAP_OFFSET = 200  # the other map whose latents a test map gets: this many maps later (wrapping around)


def summary(m: dict) -> str:
    return (f"step {m.get('step', '?')}: test NLL {m['bits_per_code']:.4f} bits/code ({m['bits_per_map']:.1f} bits/map; "
            f"with other maps' latents {m['swapped_bits_per_map']:.1f}: the latents carry {m['information_bits']:.1f} bits/map); "
            f"latent codes in use {m['latent_usage_pct']:.1f} %")


def probe_summary(m: dict) -> str:
    return (f"step {m.get('step', '?')}: test position error {m['position_error']:.1f} map units (median "
            f"{m['position_error_median']:.1f}), heading error {m['heading_error_deg']:.1f} degrees "
            f"({100 * m['heading_within_15']:.1f} % within 15)")


@torch.no_grad()
def evaluate_stage2(model, codes: torch.Tensor, batch_size: int = 64, batches=None) -> dict:
    """The measures of the module docstring over code maps ``(N, h, w)``."""
    m = raw(model)
    was = m.training
    m.eval()
    dev = next(m.parameters()).device
    n, per = codes.shape[0], m.config.height * m.config.width
    if n < 2:
        raise VQVAEError("the second stage's evaluation needs at least two code maps")
    lat = torch.cat([m.encode(codes[s : s + batch_size].to(dev)) for s in range(0, n, batch_size)])
    other = lat.roll(-(SWAP_OFFSET % n if n > SWAP_OFFSET else 1), 0)
    true = swapped = 0.0
    for s in batches(n, batch_size) if batches else range(0, n, batch_size):
        x = codes[s : s + batch_size].to(dev)
        true += float(m.nll_bits(x, lat[s : s + batch_size]).sum())
        swapped += float(m.nll_bits(x, other[s : s + batch_size]).sum())
    used = [len(torch.unique(lat[:, g])) for g in range(lat.shape[1])]
    m.train(was)
    return {"bits_per_code": true / n / per, "bits_per_map": true / n, "swapped_bits_per_map": swapped / n,
            "information_bits": (swapped - true) / n, "latent_usage_pct": 100 * sum(used) / (len(used) * m.config.latent_codebook_size),
            "maps": n}


class Stage2Task(Task):
    bar = ("loss", "bits_per_code")
    curves = (("bits_per_code", "bits_per_code", "NLL (bits per first-stage code)"),)

    def prepare(self, cfg, train_set) -> None:
        m = cfg.model
        if tuple(train_set.images.shape[1:]) != (m.height, m.width):
            raise VQVAEError(f"codes of {train_set.name} have shape {tuple(train_set.images.shape[1:])}, the second stage expects "
                             f"({m.height}, {m.width})")
        check_ids(train_set.images, m.codebook_size, f"codes of {train_set.name}")

    def step(self, model, x, y, detail):
        out = model(x)
        per = x.shape[1] * x.shape[2]
        return out.loss, {"bits_per_code": out.nll_bits.mean() / per, "perplexity": out.perplexity}

    def evaluate(self, model, x, y, batch_size):
        return evaluate_stage2(model, x, min(batch_size, 64), self.batches if self.show_progress else None)

    def report(self, run_dir, model, test_set, final) -> str:
        return summary(final)


class ProbeTask(Task):
    """Doom frames -> the player's position and heading (the game variables the episodes record)."""

    bar = ("loss",)
    images = True

    def load_split(self, cfg, split, root=None, progress=True):
        n = doom.parse_name(cfg.data.name)
        if n is None:
            raise VQVAEError(f"the probe reads doom frames (data.name doom or doom:N), got {cfg.data.name!r}")
        ep = doom.episodes(n, split, cfg.data.scenario, root or cfg.data.root, progress=progress)
        frames = torch.from_numpy(ep.frames.reshape(-1, *ep.frames.shape[2:]))
        if cfg.data.image_size:
            frames = resize(frames, cfg.data.image_size)
        return TensorSet(frames, torch.from_numpy(ep.variables.reshape(-1, 3)), None, cfg.data.name)

    def prepare(self, cfg, train_set) -> None:
        if cfg.data.hflip:
            raise VQVAEError("data.hflip mirrors the frames but not the heading: the probe trains without it")
        m = cfg.model
        m.input_size = m.input_size or train_set.images.shape[-1]
        if (m.x_mean, m.y_mean, m.scale) == (0.0, 0.0, 1.0):  # not set: from the training frames
            for k, v in spread(train_set.labels).items():
                setattr(m, k, v)

    def step(self, model, x, y, detail):
        return raw(model).loss(x, y), {}

    def evaluate(self, model, x, y, batch_size):
        return read_errors(raw(model), x, y, batch_size)

    def report(self, run_dir, model, test_set, final) -> str:
        return probe_summary(final)


class VideoTask(Task):
    """Windows of frames' codes ``(B, T, h, w)`` and their actions ``(B, T)`` -> NLL of every code; evaluated as the
    bits per code of the frames after each window's first (those with context)."""

    bar = ("loss", "bits_per_code")
    curves = (("bits_per_code", "bits_per_code", "NLL of frames with context (bits per code)"),)

    def prepare(self, cfg, train_set) -> None:
        m = cfg.model
        if tuple(train_set.images.shape[1:]) != (m.frames, m.height, m.width):
            raise VQVAEError(f"windows of {train_set.name} have shape {tuple(train_set.images.shape[1:])}, the model expects "
                             f"({m.frames}, {m.height}, {m.width})")
        check_ids(train_set.images, m.codebook_size, f"codes of {train_set.name}")
        check_ids(train_set.labels, m.actions, f"actions of {train_set.name}")

    def step(self, model, x, y, detail):
        out = model(x, y)
        return out.loss, {"bits_per_code": out.bits_per_code}

    @torch.no_grad()
    def evaluate(self, model, x, y, batch_size):
        was = model.training
        model.eval()
        dev = next(model.parameters()).device
        bits = 0.0
        for s in self.batches(x.shape[0], batch_size):
            bits += float(model(x[s : s + batch_size].to(dev), y[s : s + batch_size].to(dev)).nll_bits.sum())
        model.train(was)
        c = raw(model).config
        return {"bits_per_code": bits / (x.shape[0] * (c.frames - 1) * c.height * c.width), "windows": x.shape[0]}

    def report(self, run_dir, model, test_set, final) -> str:
        c = raw(model).config
        return (f"step {final['step']}: test NLL {final['bits_per_code']:.4f} bits/code of frames with context "
                f"(uniform: {math.log2(c.codebook_size):.4f})")


register(Arch("probe", Probe, ProbeTask, "world"))
register(Arch("video", VideoModel, VideoTask, "world", trained_by="vqvae world train --tokenizer RUN"))
register(Arch("stage2", Stage2, Stage2Task, "world", trained_by="vqvae train --tokenizer RUN --config doom-stage2",
              code_recipe=Stage2Recipe))
