"""Test bits/dim of the baselines, with the bound named: the ELBO and the importance-weighted bound.

For each test image, ``k`` posterior samples give log-weights ``log w_i = log p(x, z_i) - log q(z_i | x)``
(:meth:`~vqvae.baselines.models.GaussianVAE.log_weights`). Their mean is an unbiased estimate of the ELBO, and
their log-mean-exp is the k-sample importance-weighted bound of Burda et al. (2016), ``L_k <= log p(x)``, tighter
as ``k`` grows: the VAE's "-log p(x) estimate" is ``-L_k`` with the ``k`` reported. Both are divided by the
image's sub-pixels and converted to bits: bits/dim of the discrete data (the likelihood is the 256-way softmax).
The KL term is in closed form (:func:`~vqvae.baselines.estimators.gaussian_kl`, and the categorical KL).
"""

from __future__ import annotations

import math

import torch

from vqvae.baselines.estimators import log_mean_exp
from vqvae.core.progress import batches
from vqvae.image import metrics


@torch.no_grad()
def evaluate(model, images: torch.Tensor, k: int | None = None, batch_size: int = 64, desc: str | None = None, seed: int = 0) -> dict:
    """Bits/dim (ELBO and k-sample bound), the KL in nats per image, and reconstruction quality on uint8 ``images``.

    Reconstruction quality (``mse``, ``psnr``, ``ssim``) is ``None`` for a PixelCNN decoder (its reconstructions are
    drawn pixel by pixel). ``bits_per_dim`` is the tightest bound measured (the k-sample one, ``k`` = the model's ``iw_samples`` unless
    given), named in ``bound``."""
    k = k or model.config.iw_samples
    was_training = model.training
    model.eval()
    dev = next(model.parameters()).device
    elbo = iw = kl = sq_err = ssim = 0.0
    n = images.shape[0]
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(seed)  # the same samples each evaluation (comparable checkpoints); the caller's RNG untouched
        for s in batches(n, batch_size, desc):
            x = images[s : s + batch_size].to(dev)
            lw = model.log_weights(x, k)
            elbo += lw.mean(1).sum().item()
            iw += log_mean_exp(lw, 1).sum().item()
            kl += model.kl_per_image(x).sum().item()
            if model.pixelcnn is None:  # a PixelCNN decoder's reconstructions are samples, pixel by pixel: not scored
                y = model.reconstruct(x)
                sq_err += metrics.mse_per_image(y, x).sum().item()
                ssim += metrics.ssim_per_image(y, x).sum().item()
    model.train(was_training)
    bits = n * images[0].numel() * math.log(2)  # nats -> bits per sub-pixel, over the set
    mse = sq_err / n if model.pixelcnn is None else None
    return {"bits_per_dim": -iw / bits, "bound": f"importance-weighted, k={k}", "iw_samples": k,
            "iw_bits_per_dim": -iw / bits, "elbo_bits_per_dim": -elbo / bits,
            "recon_bits_per_dim": (-elbo - kl) / bits,  # E_q[-log p(x | z)]: the ELBO without its KL
            "kl_nats": kl / n, "kl_bits_per_dim": kl / bits,
            "mse": mse, "psnr": None if mse is None else metrics.psnr_from_mse(mse), "ssim": None if mse is None else ssim / n,
            "loss": -elbo / (n * images[0].numel()), "images": n}
