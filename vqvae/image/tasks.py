"""How image tokenizers train and report: the VQ-VAE (``vqvae``) and DALL-E's dVAE (``dvae``).

uint8 images -> reconstruction + quantizer loss; evaluated with
:func:`vqvae.image.inference.evaluate` (PSNR, SSIM, usage, perplexity, bits/dim);
a finished run draws its reconstructions and its codebook usage.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from vqvae.core import plots
from vqvae.core.errors import DataError, VQVAEError
from vqvae.core.task import TokenizerTask, raw
from vqvae.image import inference, likelihoods
from vqvae.image.dvae import DVAE
from vqvae.image.vqvae import VQVAE
from vqvae.registry import Arch, register


def summary(m: dict) -> str:
    """One line of a tokenizer's test metrics."""
    return (f"step {m.get('step', '?')}: test PSNR {m['psnr']:.2f} dB, SSIM {m['ssim']:.3f}, codebook used {m['usage_pct']:.1f}% "
            f"({m['dead_codes']} dead), perplexity {m['perplexity']:.1f}, {m['bits_per_dim']:.3f} bits/dim (uniform prior)")


def write_report(run_dir: Path, model, test, n: int = 32) -> dict:
    """Reconstruction grid and codebook-usage plot of a tokenizer on its test set."""
    run_dir = Path(run_dir)
    x = test.images[:n]
    plots.save_reconstructions(x, inference.reconstruct(model, x), run_dir / "reconstructions.png")
    counts = inference.code_counts(model, test.images)
    plots.save_codebook_usage(counts, run_dir / "codebook_usage.png", title=f"{test.name} test")
    return {"reconstructions": str(run_dir / "reconstructions.png"), "codebook_usage": str(run_dir / "codebook_usage.png")}


def prepare_image_model(cfg, train_set) -> None:
    """Fill in ``model.in_channels`` from the data and check that the images (and crops) divide by the downsampling:
    every model built on the paper's image nets (tokenizers and the baselines)."""
    if cfg.model.in_channels == 0:
        cfg.model.in_channels = train_set.channels
    if cfg.model.in_channels != train_set.channels:
        raise VQVAEError(f"model.in_channels={cfg.model.in_channels} but {train_set.name} images have {train_set.channels} channels")
    f = cfg.model.downsampling
    h, w = train_set.image_size
    if cfg.data.crop and (cfg.data.crop % f or cfg.data.crop > min(h, w)):
        raise VQVAEError(f"data.crop={cfg.data.crop} must divide by the downsampling {f} and fit the {h}x{w} images")
    if h % f or w % f:
        raise VQVAEError(f"{train_set.name} images are {h}x{w}, not divisible by the downsampling {f}: set data.image_size or model.num_downsamples")


class ImageTokenizerTask(TokenizerTask):
    bar = ("loss", "psnr", "perplexity")
    curves = (("loss", "loss", "loss"), ("psnr", "psnr", "PSNR (dB)"), ("perplexity", "perplexity", "codebook perplexity"))
    images = True

    def prepare(self, cfg, train_set) -> None:
        prepare_image_model(cfg, train_set)

    def step(self, model, x, y, detail):
        out = model(x)
        logs = {"recon_loss": out.recon_loss, "commitment": out.vq.commitment_loss, "perplexity": out.vq.perplexity,
                **self.quantizer_logs(raw(model).quantizer, out)}
        if detail:  # the categorical mean needs a softmax over 256 bins: only on logging steps
            with torch.no_grad():
                rec = likelihoods.reconstruct(raw(model).config.likelihood, out.out.detach())
                mse = (((rec.float() - x.float()) / 255.0) ** 2).mean().item()
            logs["psnr"] = 10 * math.log10(1 / max(mse, 1e-12))
        return out.loss, logs

    def quantizer_logs(self, quantizer, out) -> dict:
        """What the bottleneck adds to the step's logs (nothing for VQ and EMA codebooks)."""
        return {}

    def evaluate(self, model, x, y, batch_size):
        return inference.evaluate(model, x, batch_size, desc="evaluating" if self.show_progress else None)

    def report(self, run_dir, model, test_set, final) -> str:
        write_report(run_dir, model, test_set)
        return summary(final)

    def encode(self, model, x) -> np.ndarray:
        return inference.encode(model, x, desc="encoding")

    def reconstruct_inputs(self, model, ds, progress=True, batch_size=None) -> torch.Tensor:
        x = ds.images
        if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[1] != model.config.in_channels:
            raise DataError(f"data.reconstructions_from is a tokenizer for {model.config.in_channels}-channel uint8 images; "
                            f"{ds.name} holds {x.dtype} {tuple(x.shape[1:])} inputs")
        return inference.reconstruct(model, x, batch_size=batch_size or 256, desc="reconstructing the training images" if progress else None)


    def decode(self, model, codes) -> torch.Tensor:
        return inference.decode(model, codes)

    def render(self, model, codes, out, labels=None, nrow=8, voice=None) -> None:
        """Sampled code maps -> a PNG grid, ``nrow`` images a row (at most 16), small images scaled up."""
        images = inference.decode(model, codes.cpu())
        plots.save_grid(images, out, nrow=min(nrow, 16), scale=max(1, 64 // images.shape[-1]))


class DVAETask(ImageTokenizerTask):
    """The dVAE: logs its Gumbel-softmax schedules (the KL, the temperature and the KL weight) beside the tokenizer's."""

    def quantizer_logs(self, quantizer, out) -> dict:
        return {"kl": out.vq.codebook_loss.detach(), "tau": quantizer.tau, "kl_weight": quantizer.beta}


register(Arch("vqvae", VQVAE, ImageTokenizerTask, "tokenizer"))
register(Arch("dvae", DVAE, DVAETask, "tokenizer"))
