"""Using a trained tokenizer: evaluation, reconstruction, encoding, decoding.

All functions take uint8 images ``(N, C, H, W)`` and run in eval mode without
gradients, in batches. Images whose sides are not divisible by the model's
downsampling are padded (edge replication) before encoding and cropped back
after decoding.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from vqvae.core.progress import batches as _batches
from vqvae.core.windows import WINDOW, margin_for, windowed
from vqvae.image import likelihoods, metrics


def _device(model) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def evaluate(model, images: torch.Tensor, batch_size: int = 256, desc: str | None = None) -> dict:
    """Test metrics of an image tokenizer on uint8 ``images``.

    Returns mse (in [0, 1] scale), psnr (dB, from the mean MSE over the set),
    ssim, loss, usage_pct (% of the K codes used at least once), dead_codes,
    perplexity (of the code distribution over the whole set), and the
    uniform-prior bound ``bits_per_dim`` with its reconstruction part
    ``recon_bits_per_dim`` (see :mod:`vqvae.image.likelihoods`).
    """
    was_training = model.training
    model.eval()
    cfg = model.config
    dev = _device(model)
    k, g = cfg.codebook_size, cfg.num_codebooks
    counts = torch.zeros(g * k, dtype=torch.float64, device=dev)
    sq_err = ssim = loss = recon_bits = 0.0
    n = images.shape[0]
    for s in _batches(n, batch_size, desc):
        x = images[s : s + batch_size].to(dev)
        out = model(x)
        y = likelihoods.reconstruct(cfg.likelihood, out.out)
        sq_err += metrics.mse_per_image(y, x).sum().item()
        ssim += metrics.ssim_per_image(y, x).sum().item()
        loss += out.loss.item() * x.shape[0]
        counts += torch.bincount(flat_code_ids(out.vq.indices, k, g), minlength=g * k).double()
        if cfg.likelihood == "categorical":
            recon_bits += likelihoods.categorical_nll_bits(out.out, x).sum().item()
        elif cfg.likelihood == "logit-laplace":
            recon_bits += likelihoods.logit_laplace_nll_bits(out.out, x).sum().item()
    model.train(was_training)
    c, h, w = images.shape[1:]
    subpixels = c * h * w
    mse = sq_err / n
    if cfg.likelihood in ("categorical", "logit-laplace"):
        recon_bpd = recon_bits / (n * subpixels)
    else:
        recon_bpd = likelihoods.gaussian_bits_per_subpixel(mse)
    n_latents = (h // cfg.downsampling) * (w // cfg.downsampling) * g
    used = int((counts > 0).sum())
    ppl = 0.0
    for slot in counts.view(g, k):  # the mean of the slots' perplexities with G codebooks
        p = slot[slot > 0] / slot.sum()
        ppl += math.exp(-(p * p.log()).sum().item()) / g
    return {
        "mse": mse,
        "psnr": metrics.psnr_from_mse(mse),
        "ssim": ssim / n,
        "loss": loss / n,
        "usage_pct": 100.0 * used / (g * k),
        "dead_codes": g * k - used,
        "perplexity": ppl,
        "recon_bits_per_dim": recon_bpd,
        "bits_per_dim": likelihoods.bits_per_dim(recon_bpd, n_latents, k, subpixels),
        "images": n,
    }


def flat_code_ids(indices: torch.Tensor, k: int, g: int) -> torch.Tensor:
    """Indices ``(B, h, w)`` or ``(B, G, h, w)`` -> flat ids in ``[0, G*K)`` (slot g's codes at g*K..)."""
    if g == 1:
        return indices.flatten()
    offsets = (torch.arange(g, device=indices.device) * k).view(1, g, *([1] * (indices.ndim - 2)))
    return (indices + offsets).flatten()


@torch.no_grad()
def code_counts(model, images: torch.Tensor, batch_size: int = 256) -> np.ndarray:
    """How often each code is used on ``images``, ``(G*K,)`` int64."""
    k, g = model.config.codebook_size, model.config.num_codebooks
    codes = torch.from_numpy(encode(model, images, batch_size))
    return np.bincount(flat_code_ids(codes, k, g).numpy(), minlength=g * k)


def pad_to_multiple(x: torch.Tensor, f: int) -> torch.Tensor:
    """Edge-pad ``(N, C, H, W)`` on the bottom/right so H and W divide by ``f`` (in the input's dtype: a large uint8
    image is not copied to float)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % f, (-w) % f
    if ph:
        x = torch.cat([x, x[..., -1:, :].expand(*x.shape[:-2], ph, w)], -2)
    if pw:
        x = torch.cat([x, x[..., :, -1:].expand(*x.shape[:-1], pw)], -1)
    return x


def context_cells(cfg) -> int:
    """Latent cells of context each window needs so that windowed inference equals one pass: the paper's nets
    (:func:`vqvae.core.windows.margin_for`), or DALL-E's (``net=dalle``: three 3 x 3 convolutions per block, each group's
    blocks at twice the resolution of the next: under ``6 n_blk`` cells, plus the 7 x 7 stem and one to spare)."""
    if getattr(cfg, "net", "vqvae") == "dalle":
        return 6 * cfg.n_blk_per_group + 3
    return margin_for(cfg.num_res_blocks)


def _large(cells: tuple[int, int]) -> bool:
    """Maps larger than one window go through :func:`vqvae.core.windows.windowed` (bounded memory)."""
    return max(cells) > WINDOW


@torch.no_grad()
def encode(model, images: torch.Tensor, batch_size: int = 256, desc: str | None = None) -> np.ndarray:
    """uint8 images -> code maps ``(N, h, w)`` (``(N, G, h, w)`` with G codebooks) as int64 numpy (padded to the
    downsampling). Images of more than :data:`~vqvae.core.windows.WINDOW` latent cells a side are encoded one at a
    time in overlapping windows: the same codes as one pass, with memory bounded by the window."""
    model.eval()
    dev = _device(model)
    f = model.config.downsampling
    h, w = images.shape[-2:]
    cells = (-(-h // f), -(-w // f))
    if _large(cells):
        m = context_cells(model.config)
        fn = lambda t: model.encode(t.to(dev)).cpu()  # noqa: E731 (each window to the device and back)
        out = [windowed(fn, pad_to_multiple(images[i : i + 1], f), cells, f, 1, WINDOW, m) for i in _batches(images.shape[0], 1, desc)]
    else:
        out = [model.encode(pad_to_multiple(images[s : s + batch_size].to(dev), f)).cpu() for s in _batches(images.shape[0], batch_size, desc)]
    return torch.cat(out).numpy()


@torch.no_grad()
def decode(model, codes: np.ndarray | torch.Tensor, batch_size: int = 256, desc: str | None = None) -> torch.Tensor:
    """Code maps ``(N, h, w)`` (or ``(N, G, h, w)``) -> uint8 images ``(N, C, h*f, w*f)`` on the CPU (large maps in
    overlapping windows, as :func:`encode`)."""
    model.eval()
    dev = _device(model)
    codes = torch.as_tensor(np.asarray(codes)).long()
    g = model.config.num_codebooks
    if codes.ndim != (3 if g == 1 else 4) or (g > 1 and codes.shape[1] != g):
        want = "(N, h, w)" if g == 1 else f"(N, {g}, h, w)"
        raise ValueError(f"expected code maps {want}, got shape {tuple(codes.shape)}")
    cells = tuple(codes.shape[-2:])
    if _large(cells):
        m, f = context_cells(model.config), model.config.downsampling
        fn = lambda t: model.decode(t.to(dev)).cpu()  # noqa: E731
        return torch.cat([windowed(fn, codes[i : i + 1], cells, 1, f, WINDOW, m) for i in _batches(codes.shape[0], 1, desc)])
    return torch.cat([model.decode(codes[s : s + batch_size].to(dev)).cpu() for s in _batches(codes.shape[0], batch_size, desc)])


@torch.no_grad()
def reconstruct(model, images: torch.Tensor, batch_size: int = 64, desc: str | None = None) -> torch.Tensor:
    """uint8 images of any size -> same-size uint8 reconstructions (pad, code, decode, crop); ``desc``: progress bars."""
    h, w = images.shape[-2:]
    return decode(model, encode(model, images, batch_size, desc and f"{desc}: encoding"), batch_size, desc and f"{desc}: decoding")[..., :h, :w]
