"""The paper's baselines with the VQ-VAE's encoder and decoder (:mod:`vqvae.nets.image`): a Gaussian VAE and VIMCO.

Both take uint8 images ``(B, C, H, W)``; the latent grid is ``(h, w) = (H, W) / 2^n`` as the VQ-VAE's, and the
decoder reads ``latent_dim`` (VAE) or ``num_codebooks * embedding_dim`` (VIMCO) channels there, so with
``latent_dim = G * D`` the three models' decoders are the same net. The likelihood is the paper's 256-way softmax per
sub-pixel (or DALL-E's logit-Laplace): both give each image a probability, so every bound is in bits/dim of the
discrete data. Training minimises ``loss``: the negative bound in nats per sub-pixel (the ELBO for the VAE, the
k-sample bound's VIMCO surrogate for VIMCO).
"""

from __future__ import annotations

from dataclasses import dataclass

import math

import torch
from torch import nn

from vqvae.baselines.estimators import gaussian_kl, gaussian_log_prob, vimco_surrogate
from vqvae.baselines.pixel_decoder import PixelDecoder
from vqvae.core.errors import ConfigError, require
from vqvae.image import likelihoods
from vqvae.nets.image import ImageDecoder, ImageEncoder
from vqvae.quantize.factory import make_quantizer


@dataclass
class LatentNetConfig:
    """The paper's CIFAR-10 encoder and decoder (the VQ-VAE's: :class:`vqvae.image.vqvae.VQVAEConfig`)."""

    in_channels: int = 0  # 0: taken from the data
    hidden: int = 256
    res_hidden: int = 256
    num_res_blocks: int = 2
    num_downsamples: int = 2
    likelihood: str = "categorical"  # "categorical" (the paper's) or "logit-laplace"
    decoder: str = "conv"  # "conv": the paper's decoder; "pixelcnn": a gated PixelCNN over the pixels given the latents
    cond_channels: int = 32  # decoder=pixelcnn: features of the latents (the conv decoder's output) that condition it
    pixel_channels: int = 32  # decoder=pixelcnn: its channels
    pixel_layers: int = 6  # decoder=pixelcnn: its gated layers
    iw_samples: int = 64  # k of the importance-weighted bound vqvae eval reports (--iw-samples overrides; training's
    # evaluations use at most baselines.tasks.TRAINING_IW_SAMPLES)

    def validate(self) -> None:
        checks = [
            (1 <= self.iw_samples <= 100_000, "model.iw_samples must be in 1..100000"),
            (self.decoder in ("conv", "pixelcnn"), f"model.decoder must be 'conv' or 'pixelcnn', got {self.decoder!r}"),
            (self.decoder == "conv" or (self.likelihood == "categorical" and self.in_channels in (0, 1)),
             "model.decoder=pixelcnn models grey images (one channel) with the categorical likelihood"),
            (min(self.cond_channels, self.pixel_channels, self.pixel_layers) >= 1,
             "model.cond_channels, model.pixel_channels and model.pixel_layers must be >= 1"),
            (self.in_channels in (0, 1, 3), "model.in_channels must be 0 (from data), 1 or 3"),
            (self.hidden >= 1 and self.res_hidden >= 1, "model.hidden and model.res_hidden must be >= 1"),
            (self.num_res_blocks >= 0, "model.num_res_blocks must be >= 0"),
            (1 <= self.num_downsamples <= 6, "model.num_downsamples must be in 1..6"),
            (self.likelihood in likelihoods.NLL_BITS, f"model.likelihood must be one of {sorted(likelihoods.NLL_BITS)} "
                                                      "(a probability for each image: the bounds are in bits/dim)"),
        ]
        require(checks)

    @property
    def downsampling(self) -> int:
        return 2**self.num_downsamples


@dataclass
class GaussianVAEConfig(LatentNetConfig):
    latent_dim: int = 64  # Gaussian latents per position (the VQ-VAE's z_e width G * D: the same decoder)

    def validate(self) -> None:
        if self.latent_dim < 1:
            raise ConfigError("model.latent_dim must be >= 1")
        super().validate()


@dataclass
class VIMCOConfig(LatentNetConfig):
    codebook_size: int = 512  # K categories per latent
    embedding_dim: int = 64  # D: each category's vector, the decoder's input
    num_codebooks: int = 1  # G categorical latents per position (8 x 8 x 10 on CIFAR-10: 10)
    samples: int = 5  # k: samples per image of the multi-sample objective (VIMCO needs k >= 2)
    prior: str = "uniform"  # "uniform" or "learned" (independent categorical logits per codebook, shared by positions)

    def validate(self) -> None:
        checks = [
            (2 <= self.codebook_size <= 2**16, "model.codebook_size must be in 2..65536"),
            (self.embedding_dim >= 1, "model.embedding_dim must be >= 1"),
            (1 <= self.num_codebooks <= 64, "model.num_codebooks must be in 1..64"),
            (2 <= self.samples <= 1024, "model.samples must be in 2..1024 (VIMCO's baselines need two samples)"),
            (self.prior in ("uniform", "learned"), f"model.prior must be 'uniform' or 'learned', got {self.prior!r}"),
        ]
        require(checks)
        super().validate()

    def code_shape(self, height: int, width: int) -> tuple[int, ...]:
        h, w = -(-height // self.downsampling), -(-width // self.downsampling)
        return (h, w) if self.num_codebooks == 1 else (self.num_codebooks, h, w)


@dataclass
class VQConfig(LatentNetConfig):
    """The VQ-VAE's bottleneck on this scaffold, so that it takes the PixelCNN decoder too (with the paper's conv
    decoder, the image family's ``vqvae`` is the same model)."""

    codebook_size: int = 512
    embedding_dim: int = 64
    num_codebooks: int = 1  # G codebooks per position, each over a D-slice of z_e
    commitment_cost: float = 0.25
    quantizer: str = "ema"  # "vq" (gradient codebook) or "ema"
    kmeans_init: bool = True

    def validate(self) -> None:
        checks = [
            (2 <= self.codebook_size <= 2**16, "model.codebook_size must be in 2..65536"),
            (self.embedding_dim >= 1 and 1 <= self.num_codebooks <= 64, "model.embedding_dim >= 1, model.num_codebooks in 1..64"),
            (self.commitment_cost >= 0, "model.commitment_cost must be >= 0"),
            (self.quantizer in ("vq", "ema"), f"model.quantizer must be 'vq' or 'ema', got {self.quantizer!r}"),
        ]
        require(checks)
        super().validate()


@dataclass
class LatentOutput:
    """Named outputs of a baseline's ``forward``.

    out: the decoder's output for the first sample (logits ``(B, C, 256, H, W)``).
    loss: what training minimises, nats per sub-pixel (the negative ELBO, or VIMCO's negative surrogate).
    recon_loss: ``-log p(x | z)`` of the first sample, nats per sub-pixel (batch mean).
    kl: ``KL(q(z | x) || p(z))`` in nats per image (batch mean), in closed form.
    bound: the bound the step estimates, nats per image ``(B,)`` (the ELBO, or the k-sample bound), detached.
    """

    out: torch.Tensor
    loss: torch.Tensor
    recon_loss: torch.Tensor
    kl: torch.Tensor
    bound: torch.Tensor


class _LatentModel(nn.Module):
    """What the baselines share: the encoder, the decoder (conv, or conv features + PixelCNN), input checks, the
    likelihood, the bounds' log-weights and rendering to images."""

    config_cls = LatentNetConfig

    def __init__(self, config, enc_out: int, dec_in: int):
        super().__init__()
        config.validate()
        if config.in_channels == 0:
            raise ConfigError("model.in_channels is 0: set it to 1 or 3 (training fills it in from the data)")
        self.config = c = config
        self.encoder = ImageEncoder(c.in_channels, c.hidden, c.res_hidden, c.num_res_blocks, c.num_downsamples, enc_out)
        net = (c.hidden, c.res_hidden, c.num_res_blocks, c.num_downsamples, dec_in)
        if c.decoder == "conv":
            self.decoder, self.pixelcnn = ImageDecoder(c.in_channels, *net, likelihoods.OUT_BINS[c.likelihood]), None
        else:  # the conv decoder makes the features that condition the PixelCNN
            self.decoder, self.pixelcnn = ImageDecoder(c.cond_channels, *net, 1), PixelDecoder(c.cond_channels, c.pixel_channels, c.pixel_layers)

    def _logits(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The decoder's output for decoder inputs ``z`` scoring images ``x`` (the PixelCNN reads ``x``: teacher forcing)."""
        h = self.decoder(z)
        return h if self.pixelcnn is None else self.pixelcnn.logits(x, h)

    @torch.no_grad()
    def render(self, z: torch.Tensor) -> torch.Tensor:
        """uint8 images from decoder inputs: the conv decoder's mean, or pixels drawn by the PixelCNN."""
        h = self.decoder(z)
        return likelihoods.reconstruct(self.config.likelihood, h) if self.pixelcnn is None else self.pixelcnn.sample_pixels(h)

    def nll_bits(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``-log2 p(x | z)`` per image, ``(B,)``, for decoder inputs ``z`` (:meth:`decoder_input` of any images)."""
        return self._nll(self._logits(z, x), x) / math.log(2)

    def _check_images(self, x: torch.Tensor) -> None:
        f = self.config.downsampling
        if x.ndim != 4 or x.shape[1] != self.config.in_channels or x.shape[-1] % f or x.shape[-2] % f:
            raise ValueError(f"expected uint8 images (B, {self.config.in_channels}, H, W) with H, W divisible by {f}, got {tuple(x.shape)}")

    def _nll(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return likelihoods.nll_nats_per_image(self.config.likelihood, out, x)

    def log_weights(self, x: torch.Tensor, k: int, chunk: int = 8) -> torch.Tensor:
        """``log p(x, z_i) - log q(z_i | x)`` for ``k`` posterior samples per image, ``(B, k)`` nats (no gradients):
        their mean estimates the ELBO, their log-mean-exp is the k-sample importance-weighted bound."""
        self._check_images(x)
        with torch.no_grad():
            return torch.cat([self._log_weights(x, min(chunk, k - s)) for s in range(0, k, chunk)], 1)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 images -> uint8 reconstructions from the posterior's mode (mean, or most likely codes)."""
        return self.render(self.decoder_input(x))


class GaussianVAE(_LatentModel):
    """A VAE with a diagonal Gaussian posterior per latent position, the N(0, I) prior and the reparameterisation
    trick (Kingma & Welling 2014): loss = ``-log p(x | z) + KL`` per image, one sample, divided by the sub-pixels."""

    config_cls = GaussianVAEConfig

    def __init__(self, config: GaussianVAEConfig):
        super().__init__(config, 2 * config.latent_dim, config.latent_dim)

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, logvar)`` of q(z | x), each ``(B, latent_dim, h, w)`` (log-variance clamped to [-16, 8])."""
        mu, logvar = self.encoder(likelihoods.to_input(x)).chunk(2, dim=1)
        return mu, logvar.clamp(-16.0, 8.0)

    def forward(self, x: torch.Tensor) -> LatentOutput:
        self._check_images(x)
        mu, logvar = self.posterior(x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        out = self._logits(z, x)
        nll, kl = self._nll(out, x), gaussian_kl(mu, logvar).flatten(1).sum(1)  # kl_per_image, without a second pass
        dims = x[0].numel()
        return LatentOutput(out=out, loss=(nll + kl).mean() / dims, recon_loss=nll.mean() / dims, kl=kl.mean(),
                            bound=-(nll + kl).detach())

    def _log_weights(self, x: torch.Tensor, k: int) -> torch.Tensor:
        mu, logvar = self.posterior(x)
        z = mu.unsqueeze(1) + torch.exp(0.5 * logvar).unsqueeze(1) * torch.randn(mu.shape[0], k, *mu.shape[1:], device=mu.device)
        zf = z.flatten(0, 1)
        xk = x.repeat_interleave(k, 0)
        nll = self._nll(self._logits(zf, xk), xk).view(-1, k)
        log_pz = gaussian_log_prob(z).flatten(2).sum(2)
        log_qz = gaussian_log_prob(z, mu.unsqueeze(1), logvar.unsqueeze(1)).flatten(2).sum(2)
        return -nll + log_pz - log_qz

    def kl_per_image(self, x: torch.Tensor) -> torch.Tensor:
        """KL(q(z | x) || N(0, I)) per image, nats, in closed form, ``(B,)``."""
        mu, logvar = self.posterior(x)
        return gaussian_kl(mu, logvar).flatten(1).sum(1)

    def decoder_input(self, x: torch.Tensor) -> torch.Tensor:
        """The posterior means ``(B, latent_dim, h, w)``."""
        self._check_images(x)
        return self.posterior(x)[0]


class VIMCO(_LatentModel):
    """Categorical latents (G per position, K categories each, embedded in D dims for the decoder) with an independent
    uniform or learned prior, trained on the k-sample bound with the VIMCO estimator (:func:`vimco_surrogate`)."""

    config_cls = VIMCOConfig

    def __init__(self, config: VIMCOConfig):
        g, k, d = config.num_codebooks, config.codebook_size, config.embedding_dim
        super().__init__(config, g * k, g * d)
        self.embedding = nn.Parameter(torch.randn(g, k, d))
        self.prior_logits = nn.Parameter(torch.zeros(g, k), requires_grad=config.prior == "learned")

    def log_posterior(self, x: torch.Tensor) -> torch.Tensor:
        """``log q(h | x)``: log-probabilities ``(B, G, h, w, K)``."""
        c = self.config
        logits = self.encoder(likelihoods.to_input(x))
        b, _, h, w = logits.shape
        return logits.view(b, c.num_codebooks, c.codebook_size, h, w).permute(0, 1, 3, 4, 2).log_softmax(-1)

    def log_prior(self) -> torch.Tensor:
        return self.prior_logits.log_softmax(-1)  # (G, K)

    def embed(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``(N, G, h, w)`` -> the decoder's input ``(N, G * D, h, w)``."""
        g = torch.arange(self.config.num_codebooks, device=codes.device).view(1, -1, 1, 1)
        return self.embedding[g, codes].permute(0, 1, 4, 2, 3).flatten(1, 2)

    def _sample_terms(self, x: torch.Tensor, logq: torch.Tensor, k: int):
        """``k`` samples per image: ``(log p(x | h), log p(h), log q(h | x))``, each ``(B, k)``, and the first decoding."""
        b = x.shape[0]
        codes = torch.distributions.Categorical(logits=logq.detach()).sample((k,)).transpose(0, 1)  # (B, k, G, h, w)
        lq = logq.unsqueeze(1).expand(-1, k, -1, -1, -1, -1).gather(-1, codes.unsqueeze(-1)).squeeze(-1).flatten(2).sum(2)
        g = torch.arange(self.config.num_codebooks, device=x.device).view(1, 1, -1, 1, 1)
        lp = self.log_prior()[g, codes].flatten(2).sum(2)
        xk = x.repeat_interleave(k, 0)
        out = self._logits(self.embed(codes.flatten(0, 1)), xk)
        nll = self._nll(out, xk).view(b, k)
        return -nll, lp, lq, out.view(b, k, *out.shape[1:])[:, 0]

    def kl(self, logq: torch.Tensor) -> torch.Tensor:
        """KL(q(h | x) || p(h)) per image, nats, in closed form: the sum over latents of the categorical KLs."""
        lp = self.log_prior().view(1, self.config.num_codebooks, 1, 1, -1)
        return (logq.exp() * (logq - lp)).sum(-1).flatten(1).sum(1)

    def kl_per_image(self, x: torch.Tensor) -> torch.Tensor:
        return self.kl(self.log_posterior(x))

    def forward(self, x: torch.Tensor) -> LatentOutput:
        self._check_images(x)
        logq = self.log_posterior(x)
        lpx, lp, lq, out = self._sample_terms(x, logq, self.config.samples)
        surrogate, bound = vimco_surrogate(lpx + lp - lq, lq)
        dims = x[0].numel()
        return LatentOutput(out=out, loss=-surrogate.mean() / dims, recon_loss=-lpx[:, 0].mean() / dims,
                            kl=self.kl(logq).mean().detach(), bound=bound.detach())

    def _log_weights(self, x: torch.Tensor, k: int) -> torch.Tensor:
        lpx, lp, lq, _ = self._sample_terms(x, self.log_posterior(x), k)
        return lpx + lp - lq

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The posterior's most likely codes: ``(B, h, w)``, or ``(B, G, h, w)`` with G codebooks (int64)."""
        self._check_images(x)
        codes = self.log_posterior(x).argmax(-1)
        return codes[:, 0] if self.config.num_codebooks == 1 else codes

    def decoder_input(self, x: torch.Tensor) -> torch.Tensor:
        """The embedding of the most likely codes, ``(B, G * D, h, w)``."""
        codes = self.encode(x)
        return self.embed(codes.unsqueeze(1) if codes.ndim == 3 else codes)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``(B, h, w)`` or ``(B, G, h, w)`` -> uint8 images."""
        return self.render(self.embed(codes.unsqueeze(1) if codes.ndim == 3 else codes))


class VQ(_LatentModel):
    """Nearest-neighbour codes with the straight-through gradient and ``beta ||z_e - sg[e]||^2`` (paper, eq. 3); the
    posterior is deterministic (one-hot), so under the uniform prior the KL is ``log K`` per latent and every
    importance-weighted bound equals the ELBO (paper, section 3.2)."""

    config_cls = VQConfig

    def __init__(self, config: VQConfig):
        g, d = config.num_codebooks, config.embedding_dim
        super().__init__(config, g * d, g * d)
        kw = dict(commitment_cost=config.commitment_cost, kmeans_init=config.kmeans_init)
        self.quantizer = make_quantizer(config.quantizer, config.codebook_size, d, g, **kw)

    def _kl(self, x: torch.Tensor) -> float:
        c = self.config
        h, w = x.shape[-2] // c.downsampling, x.shape[-1] // c.downsampling
        return h * w * c.num_codebooks * math.log(c.codebook_size)

    def kl_per_image(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full((x.shape[0],), self._kl(x), device=x.device)

    def forward(self, x: torch.Tensor) -> LatentOutput:
        self._check_images(x)
        vq = self.quantizer(self.encoder(likelihoods.to_input(x)))
        out = self._logits(vq.z_q, x)
        nll, dims = self._nll(out, x), x[0].numel()
        return LatentOutput(out=out, loss=nll.mean() / dims + vq.loss, recon_loss=nll.mean() / dims,
                            kl=torch.tensor(self._kl(x)), bound=-(nll.detach() + self._kl(x)))

    def log_weights(self, x: torch.Tensor, k: int, chunk: int = 8) -> torch.Tensor:
        """The one-hot posterior has one sample: ``log p(x | z_q) - N log K``, the same for all ``k``."""
        self._check_images(x)
        with torch.no_grad():
            return (-self._nll(self._logits(self.decoder_input(x), x), x) - self._kl(x)).unsqueeze(1).expand(-1, k)

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        self._check_images(x)
        return self.quantizer.quantize(self.encoder(likelihoods.to_input(x)))

    def decoder_input(self, x: torch.Tensor) -> torch.Tensor:
        return self.quantizer.lookup(self.encode(x))

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return self.render(self.quantizer.lookup(codes))
