"""The estimators of the baselines, written from their papers and tested against exact enumeration.

* :func:`vimco_surrogate`: Mnih & Rezende (2016), "Variational inference for Monte Carlo objectives", eq. (9)-(10).
  With ``k`` samples ``h_1..h_k ~ q(h | x)`` and ``f_i = p(x, h_i) / q(h_i | x)``, the objective is the k-sample
  bound ``L = log (1/k) sum_i f_i`` and its gradient estimate is

      sum_i (L - L_{-i}) grad log q(h_i | x)  +  sum_i w_i grad log f_i,      w_i = f_i / sum_j f_j,

  where the baseline ``L_{-i}`` replaces ``f_i`` in ``L`` by the geometric mean of the others,
  ``exp(mean_{j != i} log f_j)``. The baseline of sample ``i`` does not depend on ``h_i``, so the estimate is
  unbiased; :func:`vimco_surrogate` returns a scalar-per-image whose autograd gradient is exactly this estimate.
* :func:`gaussian_kl`: KL(N(mu, sigma^2) || N(0, 1)) in closed form, per dimension.
* :func:`log_mean_exp`: ``log (1/k) sum exp`` along a dimension, stably: the importance-weighted bound of
  Burda et al. (2016) is ``log_mean_exp`` of the log-weights ``log p(x, z_i) - log q(z_i | x)``.
"""

from __future__ import annotations

import math

import torch

LOG_2PI = math.log(2 * math.pi)


def log_mean_exp(t: torch.Tensor, dim: int = -1) -> torch.Tensor:
    return torch.logsumexp(t, dim) - math.log(t.shape[dim])


def vimco_surrogate(log_f: torch.Tensor, log_q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(surrogate, bound)``, each ``(B,)``, from ``log_f`` and ``log_q`` of shape ``(B, k)``, ``k >= 2``.

    log_f: ``log p(x, h_i) - log q(h_i | x)``, differentiable in the generative model and the posterior.
    log_q: ``log q(h_i | x)`` of the sampled (discrete, non-differentiable) ``h_i``, differentiable in the posterior.
    bound: the k-sample bound ``L`` (nats); maximise ``surrogate`` (its gradient is the VIMCO estimate of ``grad L``).
    """
    if log_f.ndim != 2 or log_f.shape != log_q.shape or log_f.shape[1] < 2:
        raise ValueError(f"expected log_f and log_q of one shape (B, k) with k >= 2, got {tuple(log_f.shape)}, {tuple(log_q.shape)}")
    k = log_f.shape[1]
    bound = log_mean_exp(log_f, 1)
    lf = log_f.detach()
    others = (lf.sum(1, keepdim=True) - lf) / (k - 1)  # mean_{j != i} log f_j: the log of the others' geometric mean
    swapped = lf.unsqueeze(1).repeat(1, k, 1)  # row i: the k log-weights with the i-th replaced by that mean
    swapped.diagonal(dim1=1, dim2=2).copy_(others)
    signal = bound.detach().unsqueeze(1) - log_mean_exp(swapped, 2)  # L - L_{-i}, (B, k)
    return bound + (signal * log_q).sum(1), bound


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, 1)) per element, in nats."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def gaussian_log_prob(z: torch.Tensor, mu: torch.Tensor | None = None, logvar: torch.Tensor | None = None) -> torch.Tensor:
    """log N(z; mu, exp(logvar)) per element (standard normal without ``mu``/``logvar``), in nats."""
    if mu is None:
        return -0.5 * (z.pow(2) + LOG_2PI)
    return -0.5 * ((z - mu).pow(2) * torch.exp(-logvar) + logvar + LOG_2PI)
