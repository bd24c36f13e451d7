"""The baselines' estimators against exact enumeration: VIMCO's gradient, the importance-weighted bound, the KLs."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from vqvae.baselines.estimators import gaussian_kl, gaussian_log_prob, log_mean_exp, vimco_surrogate



def _toy(seed: int = 0):
    """Two independent 3-way latents under q(h | x) = softmax(theta), and log p(x, h) = phi[h1, h2]: small enough to
    enumerate every draw of k samples."""
    g = torch.Generator().manual_seed(seed)
    theta = torch.randn(2, 3, generator=g, dtype=torch.float64).requires_grad_()
    phi = (torch.randn(3, 3, generator=g, dtype=torch.float64) - 2.0).requires_grad_()
    return theta, phi


def _terms(theta, phi, draws: torch.Tensor):
    """``draws (N, k, 2)`` -> ``log_f, log_q`` of shape ``(N, k)``."""
    logq_table = theta.log_softmax(-1)
    log_q = logq_table[0, draws[..., 0]] + logq_table[1, draws[..., 1]]
    return phi[draws[..., 0], draws[..., 1]] - log_q, log_q


def _all_draws(k: int) -> torch.Tensor:
    states = list(itertools.product(range(3), range(3)))
    return torch.tensor([list(c) for c in itertools.product(states, repeat=k)])  # (9^k, k, 2)


@pytest.mark.parametrize("k", [2, 3])
def test_vimco_gradient_is_unbiased_by_enumeration(k):
    """The mean of the VIMCO estimate over every possible draw of k samples equals the exact gradient of the k-sample
    bound E[log mean_i f(h_i)], for the posterior's and the model's parameters."""
    theta, phi = _toy()
    draws = _all_draws(k)
    log_f, log_q = _terms(theta, phi, draws)
    prob = log_q.sum(1).exp()  # the probability of each draw (samples independent)
    assert float(prob.detach().sum()) == pytest.approx(1.0, abs=1e-12)
    exact = torch.autograd.grad((prob * log_mean_exp(log_f, 1)).sum(), (theta, phi), retain_graph=True)
    surrogate, bound = vimco_surrogate(log_f, log_q)
    estimate = torch.autograd.grad((prob.detach() * surrogate).sum(), (theta, phi))
    for a, b in zip(exact, estimate):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(bound, log_mean_exp(log_f, 1))


def test_vimco_baselines_reduce_the_variance_of_the_plain_score_function():
    """Per draw, the estimate with the leave-one-out baselines varies less than the plain multi-sample
    score-function estimate (learning signal L for every sample), which has the same mean."""
    theta, phi = _toy(1)
    draws = _all_draws(2)
    log_f, log_q = _terms(theta, phi, draws)
    prob = log_q.sum(1).exp().detach()

    def per_draw(surrogates):
        return torch.stack([torch.autograd.grad(s, theta, retain_graph=True)[0].flatten() for s in surrogates])

    vimco = per_draw(vimco_surrogate(log_f, log_q)[0])
    bound = log_mean_exp(log_f, 1)
    plain = per_draw(bound + bound.detach() * log_q.sum(1))
    mean_v, mean_p = (prob[:, None] * vimco).sum(0), (prob[:, None] * plain).sum(0)
    torch.testing.assert_close(mean_v, mean_p, rtol=1e-9, atol=1e-12)
    var_v = (prob[:, None] * (vimco - mean_v).pow(2)).sum()
    var_p = (prob[:, None] * (plain - mean_p).pow(2)).sum()
    assert var_v < 0.5 * var_p, (float(var_v), float(var_p))


def test_vimco_refuses_one_sample():
    with pytest.raises(ValueError, match="k >= 2"):
        vimco_surrogate(torch.zeros(4, 1), torch.zeros(4, 1))


def test_gaussian_kl_matches_monte_carlo_and_the_log_density_matches_torch():
    g = torch.Generator().manual_seed(2)
    mu, logvar = torch.randn(5, generator=g), torch.randn(5, generator=g)
    z = mu + torch.exp(0.5 * logvar) * torch.randn(200_000, 5, generator=g)
    mc = (gaussian_log_prob(z, mu, logvar) - gaussian_log_prob(z)).mean(0)
    torch.testing.assert_close(mc, gaussian_kl(mu, logvar), rtol=0, atol=0.02)
    ref = torch.distributions.Normal(mu, torch.exp(0.5 * logvar)).log_prob(z[:3])
    torch.testing.assert_close(gaussian_log_prob(z[:3], mu, logvar), ref)
    assert float(gaussian_kl(torch.zeros(3), torch.zeros(3)).abs().max()) == 0.0


def test_log_mean_exp_is_stable():
    t = torch.tensor([[1000.0, 1000.0], [-1000.0, -1000.0 + math.log(3)]])
    torch.testing.assert_close(log_mean_exp(t, 1), torch.tensor([1000.0, -1000.0 + math.log(2)]))
