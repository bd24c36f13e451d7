"""How the baselines train and report: ``vae`` (Gaussian latents) and ``vimco`` (categorical latents, VIMCO).

A step minimises the model's ``loss`` (the negative bound in nats per sub-pixel) and logs the KL and the step's bound
in bits/dim; evaluation is :func:`vqvae.baselines.bounds.evaluate` (ELBO and importance-weighted bits/dim, the KL in
nats); a finished run draws its reconstructions.
"""

from __future__ import annotations

import math

import torch

from vqvae.baselines import bounds
from vqvae.baselines.models import VIMCO, VQ, GaussianVAE
from vqvae.core import plots
from vqvae.core.task import Task, raw
from vqvae.image import likelihoods, metrics
from vqvae.image.tasks import prepare_image_model
from vqvae.registry import Arch, register


# k of the importance-weighted bound in training's evaluations (the final one covers the whole test set): at most this
# many samples, named in eval.json's "bound"; vqvae eval RUN reports the run's model.iw_samples (or --iw-samples).
TRAINING_IW_SAMPLES = 8


def summary(m: dict) -> str:
    """One line of a baseline's test metrics."""
    return (f"step {m.get('step', '?')}: test {m['bits_per_dim']:.3f} bits/dim ({m['bound']}; ELBO {m['elbo_bits_per_dim']:.3f}), "
            f"KL {m['kl_nats']:.1f} nats/image" + ("" if m["psnr"] is None else f", PSNR {m['psnr']:.2f} dB"))


class LatentTask(Task):
    bar = ("loss", "kl", "psnr")
    curves = (("loss", "loss", "loss (nats/dim)"), ("bound_bpd", "bits_per_dim", "bits/dim (train: the step's bound; test: IW)"),
              ("kl", "kl_nats", "KL (nats per image)"))
    images = True

    def prepare(self, cfg, train_set) -> None:
        prepare_image_model(cfg, train_set)

    def step(self, model, x, y, detail):
        out = model(x)
        logs = {"recon_loss": out.recon_loss, "kl": out.kl, "bound_bpd": -out.bound.mean() / (x[0].numel() * math.log(2))}
        if detail and raw(model).pixelcnn is None:
            with torch.no_grad():
                rec = likelihoods.reconstruct(raw(model).config.likelihood, out.out.detach())
                logs["psnr"] = metrics.psnr_from_mse(float(metrics.mse_per_image(rec, x).mean()))
        return out.loss, logs

    def evaluate(self, model, x, y, batch_size):
        k = min(raw(model).config.iw_samples, TRAINING_IW_SAMPLES)
        return bounds.evaluate(model, x, k, batch_size=min(batch_size, 64), desc="evaluating" if self.show_progress else None)

    def report(self, run_dir, model, test_set, final) -> str:
        x = test_set.images[: 32 if raw(model).pixelcnn is None else 8]  # a PixelCNN decoder draws them pixel by pixel
        plots.save_reconstructions(x, model.reconstruct(x.to(next(model.parameters()).device)).cpu(), run_dir / "reconstructions.png")
        return summary(final)


register(Arch("vae", GaussianVAE, LatentTask, "baseline"))
register(Arch("vimco", VIMCO, LatentTask, "baseline"))
register(Arch("vq", VQ, LatentTask, "baseline"))
