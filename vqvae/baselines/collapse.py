"""Posterior collapse, measured: how much a decoder draws from the latents.

With a decoder that can model the images on its own (:mod:`vqvae.baselines.pixel_decoder`), a VAE can drive its KL
to zero and ignore its latents ("posterior collapse"; Bowman et al. 2016). Van den Oord et al. (2017) claim the
VQ-VAE avoids it. Two measures, per model, on the same test images:

* ``kl_nats``: KL(q(z | x) || p(z)) per image in closed form: what the VAE's bound pays for its latents (0 when they
  carry nothing). For VQ it is the constant ``N log K`` whatever the codes carry, so it says nothing there.
* ``information_bits``: ``-log2 p(x | z(x')) + log2 p(x | z(x))``, the drop in the decoder's NLL when it gets the
  image's own latents (the posterior's mode: its mean, or its most likely codes) rather than another test image's
  (the next one in the set). 0 when the decoder ignores the latents; for any model, the same measure.
"""

from __future__ import annotations

import torch

from vqvae.core import plots
from vqvae.core.progress import batches


@torch.no_grad()
def latent_information(model, images: torch.Tensor, batch_size: int = 64, desc: str | None = None) -> dict:
    """``nll_true_bits``, ``nll_swapped_bits``, ``information_bits`` (their difference) and ``kl_nats``, per image."""
    was_training = model.training
    model.eval()
    dev = next(model.parameters()).device
    true = swapped = kl = 0.0
    n = images.shape[0]
    if n < 2:
        raise ValueError("the swap needs at least two images")
    for s in batches(n, batch_size, desc):
        x = images[s : s + batch_size].to(dev)
        other = images[(torch.arange(s, s + x.shape[0]) + 1) % n].to(dev)  # each image's next one (the last: the first)
        true += float(model.nll_bits(x, model.decoder_input(x)).sum())
        swapped += float(model.nll_bits(x, model.decoder_input(other)).sum())
        kl += float(model.kl_per_image(x).sum())
    model.train(was_training)
    return {"nll_true_bits": true / n, "nll_swapped_bits": swapped / n, "information_bits": (swapped - true) / n,
            "kl_nats": kl / n, "images": n}


@torch.no_grad()
def swap_figure(models: dict, images: torch.Tensor, path, seed: int = 0) -> None:
    """Per model, two rows under the originals: images decoded from their own latents, then from the next image's
    (the last takes the first's). A decoder that ignores its latents draws the same kind of images in both rows."""
    rows = [images]
    for model in models.values():
        model.eval()
        dev = next(model.parameters()).device
        z = model.decoder_input(images.to(dev))
        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
            torch.manual_seed(seed)  # the same pixel draws for every model; the caller's RNG untouched
            rows += [model.render(z).cpu(), model.render(z.roll(-1, 0)).cpu()]
    plots.save_grid(torch.cat(rows), path, nrow=images.shape[0], scale=2)
