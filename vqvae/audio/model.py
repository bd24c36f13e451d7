"""The VQ-VAE for speech (van den Oord et al., 2017, section 4.3).

``x (float, B x 1 x T in [-1, 1]) -> encoder -> z_e (B x D x T/64) ->
quantizer -> z_q -> decoder(z_q, speaker) -> p(mu-law(x) | z_q, speaker)``.

The paper: "The encoder has 6 strided convolutions with stride 2 and
window-size 4"; the decoder is conditioned on the latents and a one-hot
speaker embedding (here ``nn.Embedding``: the one-hot vector times a learned
matrix). Because the decoder is told the speaker, the code need not carry it:
the paper finds the code keeps the content (phonemes), and decoding one
utterance's codes with another speaker id converts the voice
(:meth:`AudioVQVAE.convert`). :meth:`AudioVQVAE.encode` therefore takes no
speaker: the encoder never sees the speaker id.

The likelihood is a 256-way softmax over 8-bit mu-law classes (mu = 255, as in
WaveNet, van den Oord et al. 2016); the loss is its cross-entropy in nats per
sample plus the quantizer's loss (paper, eq. 3; EMA codebook by default,
appendix A.1). ``output="waveform"`` (parallel decoder only) instead emits
samples through a tanh, trained with the multi-resolution STFT loss of
Parallel WaveGAN: from codes at 1/64 of the sample rate a non-autoregressive
decoder cannot know the phase, so its per-sample mu-law distribution is broad
and symmetric, its mean is silence, and it learns to ignore the codes; the
phase-blind spectral loss avoids that. Two decoders (:mod:`vqvae.nets.audio`): ``parallel``, a
transposed-conv mirror of the encoder that predicts every sample at once, and
``wavenet``, the paper's autoregressive WaveNet (teacher-forced in training,
sampled sample by sample with cached queues at decode time).

The encoder sees mu-law companded samples (``encoder_input="mulaw"``) and
its convs start from He init (:func:`vqvae.nets.blocks.kaiming_relu_`):
with raw quiet speech and PyTorch's default init, every position's ``z_e``
came out the same and the codebook collapsed to one code.

At ``sample_rate`` Hz the code costs ``sample_rate / 2^n * log2 K`` bits per
second (:attr:`AudioVQVAEConfig.bits_per_second`; the paper's 16 kHz, 64x,
K = 512 setting gives 2.25 kbit/s).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from vqvae.audio.losses import multi_resolution_stft_loss
from vqvae.core.errors import ConfigError, require
from vqvae.nets.audio import MU_LAW_CLASSES, AudioEncoder, ParallelDecoder, WaveNetDecoder
from vqvae.nets.dsp import mu_law_compress, mu_law_decode, mu_law_encode, mu_law_expand, mu_law_levels
from vqvae.quantize.factory import make_quantizer
from vqvae.quantize.vq import QUANTIZERS, QuantizerOutput

DECODERS = ("parallel", "wavenet")
OUTPUTS = ("mulaw", "waveform")
ENCODER_INPUTS = ("mulaw", "linear")


@dataclass
class AudioVQVAEConfig:
    """Architecture and quantizer of a speech VQ-VAE. Defaults: the paper's 64x encoder, K = 512."""

    num_speakers: int = 0  # 0: filled in from the data by training; must be >= 1 to build the model
    speaker_dim: int = 64
    hidden: int = 128
    res_hidden: int = 64
    num_res_blocks: int = 2
    num_downsamples: int = 6  # the paper: 6 strided convs -> latents at 1/64 of the sample rate
    codebook_size: int = 512
    embedding_dim: int = 64
    commitment_cost: float = 0.25
    quantizer: str = "ema"  # "vq" (paper, gradient codebook) or "ema" (appendix A.1)
    decay: float = 0.99
    kmeans_init: bool = True
    kmeans_batches: int = 1  # batches of encoder outputs gathered for the k-means initialisation
    restart_after: int = 100  # restart codes unused for this many steps; 0 = never
    decoder: str = "parallel"  # "parallel" (one pass) or "wavenet" (the paper's, autoregressive)
    encoder_input: str = "mulaw"  # "mulaw": the encoder sees mu-law companded samples (quiet speech spans [-1, 1]); "linear": raw samples
    output: str = "mulaw"  # "mulaw" (256-way softmax, the paper's) or "waveform" (parallel decoder: tanh samples, multi-resolution STFT loss)
    wavenet_channels: int = 64
    wavenet_layers: int = 10
    wavenet_cycle: int = 10  # dilations 1, 2, ..., 2^(cycle-1), repeated
    sample_rate: int = 8000
    speakers: list[str] = field(default_factory=list)  # names of the speaker ids (filled in from the data)

    def validate(self) -> None:
        checks = [
            (self.num_speakers >= 0, "model.num_speakers must be >= 0 (0: from the data)"),
            (self.speaker_dim >= 1, "model.speaker_dim must be >= 1"),
            (self.hidden >= 1, "model.hidden must be >= 1"),
            (self.res_hidden >= 1, "model.res_hidden must be >= 1"),
            (self.num_res_blocks >= 0, "model.num_res_blocks must be >= 0"),
            (1 <= self.num_downsamples <= 12, "model.num_downsamples must be in 1..12"),
            (2 <= self.codebook_size <= 2**20, "model.codebook_size must be in 2..1048576"),
            (self.embedding_dim >= 1, "model.embedding_dim must be >= 1"),
            (self.commitment_cost >= 0, "model.commitment_cost must be >= 0"),
            (self.quantizer in QUANTIZERS, f"model.quantizer must be one of {sorted(QUANTIZERS)}"),
            (0.0 < self.decay < 1.0, "model.decay must be in (0, 1)"),
            (self.restart_after >= 0, "model.restart_after must be >= 0"),
            (self.kmeans_batches >= 1, "model.kmeans_batches must be >= 1"),
            (self.decoder in DECODERS, f"model.decoder must be one of {list(DECODERS)}"),
            (self.encoder_input in ENCODER_INPUTS, f"model.encoder_input must be one of {list(ENCODER_INPUTS)}"),
            (self.output in OUTPUTS, f"model.output must be one of {list(OUTPUTS)}"),
            (self.output == "mulaw" or self.decoder == "parallel",
             "model.output=waveform needs model.decoder=parallel: the WaveNet samples mu-law, so pass --model.output=mulaw with it"),
            (self.wavenet_channels >= 1, "model.wavenet_channels must be >= 1"),
            (self.wavenet_layers >= 1, "model.wavenet_layers must be >= 1"),
            (1 <= self.wavenet_cycle <= 16, "model.wavenet_cycle must be in 1..16"),
            (self.sample_rate >= 1, "model.sample_rate must be >= 1"),
        ]
        require(checks)

    @property
    def downsampling(self) -> int:
        """Samples per code: ``2^num_downsamples``."""
        return 2**self.num_downsamples

    @property
    def bits_per_second(self) -> float:
        """Bit rate of the code: ``sample_rate / downsampling * log2 K``."""
        return self.sample_rate / self.downsampling * math.log2(self.codebook_size)


@dataclass
class AudioVQVAEOutput:
    """Named outputs of :meth:`AudioVQVAE.forward`.

    logits: ``(B, 256, T)`` mu-law logits (teacher-forced for the WaveNet decoder); with
    ``output="waveform"`` the decoded samples ``(B, 1, T)`` in [-1, 1] instead.
    loss: total loss (reconstruction + quantizer).
    recon_loss: mu-law cross-entropy, nats per sample (mean over batch and time); with
    ``output="waveform"`` the multi-resolution STFT loss (:func:`vqvae.audio.losses.multi_resolution_stft_loss`).
    vq: the quantizer's output (indices ``(B, T/f)``, losses, perplexity, usage).
    """

    logits: torch.Tensor
    loss: torch.Tensor
    recon_loss: torch.Tensor
    vq: QuantizerOutput


class AudioVQVAE(nn.Module):
    """Speech VQ-VAE with a speaker-conditioned decoder; takes its whole :class:`AudioVQVAEConfig`."""

    config_cls = AudioVQVAEConfig

    def __init__(self, config: AudioVQVAEConfig):
        super().__init__()
        config.validate()
        if config.num_speakers < 1:
            raise ConfigError("model.num_speakers is 0: set it to the number of speakers (training fills it in from the data)")
        self.config = c = config
        self.speaker = nn.Embedding(c.num_speakers, c.speaker_dim)
        self.encoder = AudioEncoder(1, c.hidden, c.res_hidden, c.num_res_blocks, c.num_downsamples, c.embedding_dim)
        if c.decoder == "parallel":
            self.decoder = ParallelDecoder(c.embedding_dim, c.hidden, c.res_hidden, c.num_res_blocks, c.num_downsamples, c.speaker_dim,
                                           classes=1 if c.output == "waveform" else MU_LAW_CLASSES)
        else:
            self.decoder = WaveNetDecoder(c.embedding_dim, c.wavenet_channels, c.wavenet_layers, c.wavenet_cycle, c.speaker_dim, c.downsampling)
        kw = dict(commitment_cost=c.commitment_cost, kmeans_init=c.kmeans_init, kmeans_batches=c.kmeans_batches, restart_after=c.restart_after)
        if c.quantizer == "ema":
            kw["decay"] = c.decay
        self.quantizer = make_quantizer(c.quantizer, c.codebook_size, c.embedding_dim, 1, **kw)

    # -- input checks -------------------------------------------------------
    def _check_audio(self, x: torch.Tensor) -> None:
        f = self.config.downsampling
        if not isinstance(x, torch.Tensor) or x.ndim != 3 or x.shape[1] != 1 or not x.is_floating_point():
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"expected float waveforms (B, 1, T) in [-1, 1], got {got}" + (f" {x.dtype}" if isinstance(x, torch.Tensor) else ""))
        if x.shape[2] == 0 or x.shape[2] % f:
            raise ValueError(f"the number of samples T must be a positive multiple of the downsampling {f}, got T={x.shape[2]}")

    def _speaker_vectors(self, speaker: torch.Tensor, batch: int) -> torch.Tensor:
        n = self.config.num_speakers
        if not isinstance(speaker, torch.Tensor) or speaker.shape != (batch,) or speaker.dtype not in (torch.int64, torch.int32):
            got = f"{tuple(speaker.shape)} {speaker.dtype}" if isinstance(speaker, torch.Tensor) else type(speaker).__name__
            raise ValueError(f"expected speaker ids ({batch},) int64, got {got}")
        if batch and (int(speaker.min()) < 0 or int(speaker.max()) >= n):
            raise ValueError(f"speaker ids must lie in [0, {n}), got [{int(speaker.min())}, {int(speaker.max())}]")
        return self.speaker(speaker.long())

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        """``z_e (B, D, T/f)``. Speech is mostly quiet (FSDD: std 0.04), so by default the
        encoder sees mu-law companded samples, which spread every speaker's level over [-1, 1]."""
        return self.encoder(mu_law_compress(x) if self.config.encoder_input == "mulaw" else x)

    # -- training -------------------------------------------------------------
    def forward(self, x: torch.Tensor, speaker: torch.Tensor) -> AudioVQVAEOutput:
        """Training/evaluation pass: waveforms ``(B, 1, T)`` float in [-1, 1], speaker ids ``(B,)`` int64."""
        self._check_audio(x)
        g = self._speaker_vectors(speaker, x.shape[0])
        vq = self.quantizer(self._encode(x))
        if self.config.output == "waveform":
            wave = torch.tanh(self.decoder(vq.z_q, g).float())
            rec = multi_resolution_stft_loss(wave[:, 0], x[:, 0])
            return AudioVQVAEOutput(logits=wave, loss=rec + vq.loss, recon_loss=rec, vq=vq)
        target = mu_law_encode(x[:, 0])  # (B, T)
        if self.config.decoder == "parallel":
            logits = self.decoder(vq.z_q, g)
        else:
            logits = self.decoder(target, vq.z_q, g)  # teacher forcing
        rec = F.cross_entropy(logits.float(), target)
        return AudioVQVAEOutput(logits=logits, loss=rec + vq.loss, recon_loss=rec, vq=vq)

    # -- inference ------------------------------------------------------------
    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Waveforms ``(B, 1, T)`` -> codes ``(B, T/f)`` int64. No speaker: the content code is speaker-independent."""
        self._check_audio(x)
        return self.quantizer.quantize(self._encode(x))

    @torch.no_grad()
    def decode(self, codes: torch.Tensor, speaker: torch.Tensor, temperature: float = 1.0,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Codes ``(B, t)`` + speaker ids ``(B,)`` -> waveforms ``(B, 1, t * f)`` float in [-1, 1].

        ``output="waveform"``: the decoder's samples (one deterministic pass).
        parallel: the expectation of the companded value under
        ``softmax(logits / temperature)``, then mu-law expanded. This is the
        MSE-optimal point estimate in the mu-law domain, smoother than the
        argmax (which snaps to the 256 levels) and deterministic, so
        ``generator`` is unused; ``temperature = 0`` gives the argmax (mode).
        wavenet: ancestral sampling with ``temperature`` and ``generator``
        (:meth:`WaveNetDecoder.generate`).
        """
        if not isinstance(codes, torch.Tensor) or codes.ndim != 2:
            raise ValueError(f"expected codes (B, t), got {tuple(codes.shape) if isinstance(codes, torch.Tensor) else type(codes).__name__}")
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        g = self._speaker_vectors(speaker, codes.shape[0])
        z = self.quantizer.lookup(codes)
        if self.config.decoder == "wavenet":
            return mu_law_decode(self.decoder.generate(z, g, temperature, generator))[:, None]
        logits = self.decoder(z, g).float()
        if self.config.output == "waveform":
            return torch.tanh(logits)
        if temperature == 0:
            return mu_law_decode(logits.argmax(1))[:, None]
        probs = (logits / temperature).softmax(1)
        f = torch.einsum("bkt,k->bt", probs, mu_law_levels().to(probs.device))
        return mu_law_expand(f)[:, None]

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, speaker: torch.Tensor, temperature: float = 1.0,
                    generator: torch.Generator | None = None) -> torch.Tensor:
        """Waveforms -> waveforms through the codes, decoded with the same speaker."""
        return self.decode(self.encode(x), speaker, temperature, generator)

    @torch.no_grad()
    def convert(self, x: torch.Tensor, target_speaker: torch.Tensor, temperature: float = 1.0,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """Voice conversion (paper, section 4.3): the content codes of ``x`` decoded as ``target_speaker``."""
        return self.decode(self.encode(x), target_speaker, temperature, generator)
