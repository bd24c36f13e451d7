"""Scoring generated images with a classifier trained by the project.

* :func:`frechet_distance`: ``||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^{1/2})``,
  the FID formula (Heusel et al. 2017). ``tr((S1 S2)^{1/2})`` is computed as
  the sum of square roots of the eigenvalues of the symmetric PSD matrix
  ``S1^{1/2} S2 S1^{1/2}`` (same spectrum as ``S1 S2``), in float64, which
  avoids the complex round-off of a general matrix square root.
* :func:`classifier_features` / :func:`feature_stats`: penultimate features of
  :class:`vqvae.scoring.classifier.Classifier` and their mean and covariance.
  On these features the number is a *classifier Fréchet distance*, comparable
  only between runs scored by the same classifier, not with published FIDs.
* :func:`label_accuracy`: the fraction of images the classifier assigns to
  the intended labels (class-conditional samples).
* :func:`inception_features`: the standard FID features, when the user has the
  TorchScript Inception-v3 of StyleGAN2-ADA / clean-fid
  (``inception-2015-12-05.pt``, 2048 pool features) locally; it cannot be
  downloaded here. Then :func:`frechet_distance` on them is the usual FID
  (on this dataset's test split, not comparable with FIDs computed on other
  reference sets or image sizes).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from vqvae.core import checkpoint
from vqvae.core.errors import VQVAEError


def _sqrt_psd(a: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray) -> float:
    """Fréchet distance between Gaussians ``N(mu1, s1)`` and ``N(mu2, s2)``."""
    mu1, mu2, s1, s2 = (np.asarray(a, dtype=np.float64) for a in (mu1, mu2, s1, s2))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError(f"mismatched statistics: {mu1.shape}, {s1.shape} vs {mu2.shape}, {s2.shape}")
    r1 = _sqrt_psd(s1)
    cross = np.linalg.eigvalsh(r1 @ s2 @ r1)
    tr_sqrt = np.sqrt(np.clip(cross, 0, None)).sum()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt)


@torch.no_grad()
def classifier_features(classifier, images: torch.Tensor, batch_size: int = 500) -> np.ndarray:
    """Penultimate features ``(N, F)`` float64 of uint8 ``images``."""
    classifier.eval()
    dev = next(classifier.parameters()).device
    out = [classifier.features(images[s : s + batch_size].to(dev)).double().cpu() for s in range(0, images.shape[0], batch_size)]
    return torch.cat(out).numpy()


def feature_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(F,)`` and covariance ``(F, F)`` of ``features (N, F)``."""
    if features.shape[0] < 2:
        raise ValueError("need at least 2 images for a covariance")
    return features.mean(0), np.cov(features, rowvar=False)


def fd_between(classifier, a: torch.Tensor, b: torch.Tensor) -> float:
    """Classifier Fréchet distance between two sets of uint8 images."""
    return frechet_distance(*feature_stats(classifier_features(classifier, a)), *feature_stats(classifier_features(classifier, b)))


@torch.no_grad()
def label_accuracy(classifier, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 500) -> float:
    """Fraction of ``images`` classified as ``labels``."""
    classifier.eval()
    dev = next(classifier.parameters()).device
    correct = 0
    for s in range(0, images.shape[0], batch_size):
        pred = classifier(images[s : s + batch_size].to(dev)).argmax(1).cpu()
        correct += int((pred == labels[s : s + batch_size].cpu()).sum())
    return correct / images.shape[0]


def load_inception(path: str):
    """The TorchScript Inception-v3 FID network at ``path`` (a clear error if it is not one)."""
    if not Path(path).is_file():
        raise VQVAEError(f"Inception weights {path} not found: expected the TorchScript file inception-2015-12-05.pt "
                         "(StyleGAN2-ADA / clean-fid), which must be fetched where there is internet")
    try:
        with warnings.catch_warnings():  # the canonical file is TorchScript, deprecated but still the format it ships in
            warnings.simplefilter("ignore", DeprecationWarning)
            return torch.jit.load(str(path), map_location="cpu").eval()
    except (RuntimeError, ValueError) as e:
        raise VQVAEError(f"{path} is not a TorchScript Inception network ({str(e).splitlines()[0]})") from None


@torch.no_grad()
def inception_features(net, images: torch.Tensor, batch_size: int = 100) -> np.ndarray:
    """2048-d pool features ``(N, 2048)`` of uint8 images: grey repeated to RGB, values in [0, 255];
    the network resizes to 299 x 299 itself, called as ``net(x, return_features=True)``."""
    out = []
    for s in range(0, images.shape[0], batch_size):
        x = images[s : s + batch_size].float()
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        out.append(net(x, return_features=True).double().cpu())
    return torch.cat(out).numpy()


def inception_fd(net, a: torch.Tensor, b: torch.Tensor) -> float:
    """FID between two sets of uint8 images with the Inception network ``net``."""
    return frechet_distance(*feature_stats(inception_features(net, a)), *feature_stats(inception_features(net, b)))


def load_classifier(run: str, channels: int, device="cpu"):
    """The image classifier in ``run``, checked to read ``channels``-channel images (a one-line error otherwise)."""
    cfg, clf = checkpoint.load_run(run, device=device)
    if cfg.arch != "classifier":
        raise VQVAEError(f"{run} is a {cfg.arch} run, not a classifier (train one with: vqvae classifier train --data ...)")
    if cfg.model.in_channels != channels:
        raise VQVAEError(f"classifier {run} expects {cfg.model.in_channels} channels, the data has {channels}")
    return clf
