"""DALL-E's dVAE: Gumbel-softmax bottleneck, schedules, logit-Laplace likelihood, and the tokenizer contract."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from tests.helpers import write_npy_data
from vqvae.image import likelihoods as losses
from vqvae.cli import main
from vqvae.core.errors import ConfigError
from vqvae.quantize.gumbel import cosine, GumbelQuantizer
from vqvae.image.dvae import DVAE, DVAEConfig


def test_cosine_schedules():
    assert cosine(0, 100, 1.0, 1 / 16) == pytest.approx(1.0)
    assert cosine(50, 100, 1.0, 1 / 16) == pytest.approx((1 + 1 / 16) / 2)
    assert cosine(100, 100, 1.0, 1 / 16) == cosine(10**6, 100, 1.0, 1 / 16) == pytest.approx(1 / 16)
    vals = [cosine(s, 100, 0.0, 6.6) for s in range(0, 101, 10)]
    assert vals == sorted(vals) and vals[0] == 0.0 and vals[-1] == pytest.approx(6.6)
    assert cosine(0, 0, 1.0, 0.5) == 0.5


def test_gumbel_quantizer_kl_schedules_and_modes():
    torch.manual_seed(0)
    q = GumbelQuantizer(8, 3, tau_steps=10, kl_weight=2.0, kl_steps=4, kl_scale=0.5)
    logits = torch.randn(2, 8, 3, 3)
    lq = logits.log_softmax(1)
    kl_oracle = float((lq.exp() * (lq + math.log(8))).sum(1).mean())
    q.eval()
    out = q(logits)
    assert torch.equal(out.indices, logits.argmax(1))
    torch.testing.assert_close(out.z_q, q.embedding[logits.argmax(1)].permute(0, 3, 1, 2))
    assert float(out.codebook_loss) == pytest.approx(kl_oracle, rel=1e-5) and float(out.loss) == 0.0  # beta starts at 0
    assert int(q.step) == 0  # evaluation does not advance the schedules
    q.train()
    taus = []
    for _ in range(12):
        taus.append(q.tau)
        out = q(logits)
    assert int(q.step) == 12 and taus[0] == 1.0 and q.tau == pytest.approx(1 / 16) and taus == sorted(taus, reverse=True)
    assert float(out.loss) == pytest.approx(2.0 * 0.5 * kl_oracle, rel=1e-5)
    # a relaxed sample mixes codebook rows with weights summing to one: with e = identity rows, z sums to 1
    q2 = GumbelQuantizer(4, 4)
    with torch.no_grad():
        q2.embedding.copy_(torch.eye(4))
    z = q2.train()(torch.randn(5, 4, 2, 2)).z_q
    torch.testing.assert_close(z.sum(1), torch.ones(5, 2, 2))
    assert "step" in q.state_dict()  # the schedules resume with the checkpoint


def test_logit_laplace_is_a_density_and_maps_pixels():
    x01 = torch.linspace(0, 1, 11)
    torch.testing.assert_close(losses.unmap_pixels(losses.map_pixels(x01)), x01)
    assert float(losses.map_pixels(torch.tensor(0.0))) == pytest.approx(0.1)
    # integrate p(y) over (0, 1) on a fine grid (pixel values as a float "image")
    for mu, log_b in ((0.0, 0.0), (1.5, -1.0), (-2.0, 0.5)):
        y = torch.linspace(1e-6, 1 - 1e-6, 200_001, dtype=torch.float64)
        logit = torch.log(y) - torch.log1p(-y)
        b = math.exp(log_b)
        p = torch.exp(-(logit - mu).abs() / b) / (2 * b * y * (1 - y))
        assert float(torch.trapezoid(p, y)) == pytest.approx(1.0, abs=2e-3)
    # the loss is that density's NLL at the mapped pixel
    x = torch.tensor([[[[0, 128], [200, 255]]]], dtype=torch.uint8)
    out = torch.stack([torch.full((1, 1, 2, 2), 0.3), torch.full((1, 1, 2, 2), -0.5)], 2)
    yv = losses.map_pixels(x.double() / 255)
    lg = torch.log(yv) - torch.log1p(-yv)
    b = math.exp(-0.5)
    want = (lg - 0.3).abs() / b + math.log(2 * b) + torch.log(yv * (1 - yv))
    torch.testing.assert_close(losses.logit_laplace_nll(out, x).double(), want, atol=1e-5, rtol=1e-5)
    rec = losses.reconstruct("logit-laplace", out)
    assert rec.dtype == torch.uint8 and int(rec.flatten()[0]) == round(255 * float(losses.unmap_pixels(torch.sigmoid(torch.tensor(0.3)))))


def test_dvae_model_contract():
    torch.manual_seed(0)
    m = DVAE(DVAEConfig(in_channels=3, hidden=8, res_hidden=4, num_res_blocks=1, codebook_size=16, embedding_dim=4,
                        tau_steps=10, kl_steps=5))
    assert m.encoder.net[-1].out_channels == 16 and m.decoder.out_bins == 2
    x = torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8)
    out = m.train()(x)
    out.loss.backward()
    assert m.encoder.net[0].weight.grad.abs().sum() > 0  # the relaxation passes gradients to the encoder
    codes = m.encode(x)
    assert codes.shape == (2, 4, 4) and codes.dtype == torch.int64
    assert m.decode(codes).shape == x.shape
    for bad in (dict(quantizer="ema"), dict(num_codebooks=2), dict(tau_end=2.0), dict(kl_weight=-1.0)):
        with pytest.raises(ConfigError):
            DVAEConfig(in_channels=3, **bad).validate()


def test_dvae_trains_evaluates_and_feeds_a_prior(tmp_path, capsys):
    data = write_npy_data(tmp_path / "data")
    run = tmp_path / "dvae"
    assert main(["dvae", "train", "--data", data, "--out", str(run), "--steps", "6", "--no-progress",
                 "--train.eval_images=8", "--train.batch_size=8", "--train.log_every=2", "--model.hidden=8", "--model.res_hidden=4",
                 "--model.codebook_size=16", "--model.tau_steps=6", "--model.kl_steps=3"]) == 0
    logs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    taus = [r["tau"] for r in logs if r["kind"] == "train" and "tau" in r]
    assert taus and taus[0] > taus[-1]
    capsys.readouterr()
    assert main(["eval", str(run), "--json"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert 0 < m["recon_bits_per_dim"] < 16 and m["bits_per_dim"] == pytest.approx(m["recon_bits_per_dim"] + 16 * 4 / 256, rel=1e-6)
    prior = tmp_path / "prior"
    assert main(["prior", "train", "--tokenizer", str(run), "--arch", "transformer", "--out", str(prior), "--steps", "2",
                 "--model.n_layer=1", "--model.n_embd=16", "--model.n_head=2", "--no-progress", "--train.batch_size=8",
                 "--train.eval_images=8"]) == 0
    assert (prior / "samples.png").is_file()
    assert np.isfinite(m["psnr"])
