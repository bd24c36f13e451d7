"""The VAE and VIMCO baselines: their bounds against exact log-likelihoods, and the run lifecycle from the CLI."""

from __future__ import annotations

import json
import math

import pytest
import torch

from tests.helpers import write_npy_data
from vqvae.baselines import bounds
from vqvae.baselines.estimators import log_mean_exp
from vqvae.baselines.models import VIMCO, GaussianVAE, GaussianVAEConfig, VIMCOConfig
from vqvae.cli import main
from vqvae.core.errors import ConfigError

NET = dict(in_channels=1, hidden=8, res_hidden=4, num_res_blocks=1, num_downsamples=2)


def _images(n: int, size: int = 4, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, 1, size, size), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


@torch.no_grad()
def test_vimco_bounds_against_the_exact_likelihood_of_a_one_latent_model():
    """4 x 4 images over one latent of K = 4 categories: log p(x) = logsumexp_h log p(x | h) p(h) exactly. The
    ELBO lies below it, the importance-weighted bound closes in on it as k grows, and the closed-form KL is the sum."""
    torch.manual_seed(0)
    model = VIMCO(VIMCOConfig(**NET, codebook_size=4, embedding_dim=3, prior="learned")).eval()
    model.prior_logits.normal_()
    x = _images(3)
    logq = model.log_posterior(x)[:, 0, 0, 0]  # (B, K)
    codes = torch.arange(4).view(4, 1, 1, 1)
    nll = torch.stack([model.nll_bits(x[b : b + 1].expand(4, -1, -1, -1), model.embed(codes)) for b in range(3)]) * math.log(2)
    log_joint = -nll + model.log_prior()[0]  # (B, K): log p(x, h)
    exact = torch.logsumexp(log_joint, 1)
    torch.testing.assert_close(model.kl_per_image(x), (logq.exp() * (logq - model.log_prior()[0])).sum(1))
    elbo = (logq.exp() * (log_joint - logq)).sum(1)
    lw = model.log_weights(x, 4096)
    torch.testing.assert_close(lw.mean(1), elbo, rtol=0, atol=0.5)  # a Monte Carlo mean of the ELBO
    assert (elbo < exact).all()
    torch.testing.assert_close(log_mean_exp(lw, 1), exact, rtol=0, atol=0.05)


def test_gaussian_vae_bounds_are_ordered_and_consistent():
    torch.manual_seed(0)
    model = GaussianVAE(GaussianVAEConfig(**NET, latent_dim=2))
    x = _images(6, 8, seed=1)
    one = bounds.evaluate(model, x, k=1)
    assert one["iw_bits_per_dim"] == pytest.approx(one["elbo_bits_per_dim"], rel=1e-6)  # one sample: the same estimate
    many = bounds.evaluate(model, x, k=64)
    assert many["bits_per_dim"] < many["elbo_bits_per_dim"] and many["bound"] == "importance-weighted, k=64"
    assert many["elbo_bits_per_dim"] == pytest.approx(many["recon_bits_per_dim"] + many["kl_bits_per_dim"], rel=1e-9)
    assert many["kl_nats"] == pytest.approx(many["kl_bits_per_dim"] * math.log(2) * x[0].numel(), rel=1e-9)
    state = torch.random.get_rng_state()
    assert bounds.evaluate(model, x, k=64) == many  # evaluation draws the same samples each time ...
    assert torch.equal(torch.random.get_rng_state(), state)  # ... and leaves the caller's random stream where it was
    out = model(x)  # the training loss is the negative one-sample ELBO per sub-pixel
    assert float(out.loss.detach()) == pytest.approx(float(-out.bound.mean()) / x[0].numel(), rel=1e-6)
    assert model.reconstruct(x).shape == x.shape and model.reconstruct(x).dtype == torch.uint8


def test_vimco_trains_every_parameter_and_its_codes_decode():
    torch.manual_seed(0)
    model = VIMCO(VIMCOConfig(**NET, codebook_size=8, embedding_dim=4, num_codebooks=2, samples=3))
    x = _images(4, 8)
    model(x).loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for n, p in model.named_parameters() if n != "prior_logits")
    assert model.prior_logits.grad is None  # the uniform prior is fixed
    codes = model.encode(x)
    assert codes.shape == (4, 2, 2, 2) and model.decode(codes).shape == x.shape
    with pytest.raises(ConfigError, match="model.samples"):
        VIMCO(VIMCOConfig(**NET, samples=1))
    with pytest.raises(ConfigError, match="a probability for each image"):
        GaussianVAE(GaussianVAEConfig(**{**NET, "likelihood": "mse"}))


@pytest.mark.parametrize("arch", ["vae", "vimco", "vq-pixelcnn"])
def test_baselines_train_evaluate_reconstruct_and_resume_from_the_cli(tmp_path, capsys, arch):
    data = write_npy_data(tmp_path / "data", size=8, channels=1)
    arch, _, decoder = arch.partition("-")
    run = tmp_path / arch
    common = ["--config", arch, "--data", data, "--no-progress", "--model.hidden=8", "--model.res_hidden=4",
              "--model.num_res_blocks=1", "--model.iw_samples=4", "--train.batch_size=8", "--train.eval_images=8",
              "--train.eval_every=3", "--train.ckpt_every=3"]
    small = {"vae": ["--model.latent_dim=4"], "vq": ["--model.codebook_size=8", "--model.embedding_dim=4"],
             "vimco": ["--model.num_codebooks=2", "--model.codebook_size=8", "--model.embedding_dim=4", "--model.samples=2"]}[arch]
    if decoder:
        small += [f"--model.decoder={decoder}", "--model.pixel_channels=4", "--model.pixel_layers=1", "--model.cond_channels=2"]
    assert main(["train", *common, *small, "--out", str(run), "--steps", "3"]) == 0
    assert main(["train", "--out", str(run), "--steps", "5", "--resume", "--no-progress"]) == 0
    assert json.loads((run / "eval.json").read_text())["step"] == 5
    capsys.readouterr()
    assert main(["eval", str(run), "--json", "--iw-samples", "6"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["bound"] == "importance-weighted, k=6" and m["bits_per_dim"] <= m["elbo_bits_per_dim"] and m["images"] == 24
    assert (run / "reconstructions.png").is_file() and (run / "loss_curves.png").is_file()
    png = tmp_path / "in.png"
    from vqvae.data.images import write_image

    write_image(png, _images(1, 10)[0])  # not a multiple of the downsampling: padded, then cropped back
    assert main(["reconstruct", str(run), str(png), "-o", str(tmp_path / "rec")]) == 0
    assert (tmp_path / "rec" / "in.png").is_file()
    assert main(["eval", str(run), "--iw-samples", "0"]) == 2
    assert "--iw-samples must be >= 1" in capsys.readouterr().err
