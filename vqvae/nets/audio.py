"""The paper's audio encoder and two decoders (VQ-VAE, section 4.3).

van den Oord, Vinyals, Kavukcuoglu, "Neural Discrete Representation Learning"
(NeurIPS 2017), section 4.3: "The encoder has 6 strided convolutions with
stride 2 and window-size 4", so latents run at 1/64 of the sample rate; the
decoder is conditioned on the latents and on a speaker embedding and is a
WaveNet with a 256-way mu-law softmax.

* :class:`AudioEncoder`: ``(B, 1, T) -> (B, D, T / 2^n)``.
* :class:`ParallelDecoder`: a non-autoregressive mirror of the encoder
  (transposed convolutions), ``(B, D, t) -> (B, 256, t * 2^n)`` logits in one
  pass; fast to train and to sample, but every sample is predicted from the
  latents alone (no dependence on earlier samples).
* :class:`WaveNetDecoder`: the paper's autoregressive decoder (WaveNet,
  van den Oord et al. 2016, arXiv:1609.03499) with gated dilated causal
  convolutions, local conditioning on ``z_q`` and global conditioning on the
  speaker; teacher-forced training in one pass and fast incremental
  generation with per-layer queues (Paine et al. 2016, "Fast Wavenet
  Generation Algorithm", arXiv:1611.09482), O(layers) work per sample.

Speaker vectors ``g`` are ``(B, speaker_dim)``; ``speaker_dim = 0`` builds a
net without global conditioning (``g`` must then be ``None``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vqvae.nets.blocks import ResidualStack, kaiming_relu_, strided_stack

MU_LAW_CLASSES = 256



class AudioEncoder(nn.Module):
    """``num_downsamples`` Conv1d(window 4, stride 2, padding 1) with ReLU between,
    a 1-D residual stack and a 1x1 projection to the codebook dimension.

    ``(B, in_ch, T) -> (B, embedding_dim, T / 2^num_downsamples)``; each strided
    conv exactly halves an even length, so T must be divisible by ``2^n``.
    """

    def __init__(self, in_ch: int = 1, hidden: int = 128, res_hidden: int = 64, num_res_blocks: int = 2,
                 num_downsamples: int = 6, embedding_dim: int = 64):
        super().__init__()
        self.downsampling = 2**num_downsamples
        self.net = nn.Sequential(
            *strided_stack(nn.Conv1d, [in_ch] + [hidden] * num_downsamples),
            ResidualStack(hidden, res_hidden, num_res_blocks, dims=1),
            nn.Conv1d(hidden, embedding_dim, 1),
        )
        kaiming_relu_(self.net)  # seven layers deep: the default init would drown the signal in the biases

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class _SpeakerBias(nn.Module):
    """Global conditioning: ``g (B, S) -> n`` per-channel biases ``(B, channels, 1)``.

    One linear map yields all ``n`` biases at once (WaveNet, eq. 2: ``V^T h``).
    """

    def __init__(self, speaker_dim: int, channels: int, n: int):
        super().__init__()
        self.n, self.channels = n, channels
        self.proj = nn.Linear(speaker_dim, channels * n) if speaker_dim else None

    def forward(self, g: torch.Tensor | None, batch: int) -> list[torch.Tensor | float]:
        if self.proj is None:
            if g is not None:
                raise ValueError("this decoder was built with speaker_dim=0 and takes no speaker vector")
            return [0.0] * self.n
        if g is None or g.ndim != 2 or g.shape != (batch, self.proj.in_features):
            raise ValueError(f"expected speaker vectors ({batch}, {self.proj.in_features}), got {None if g is None else tuple(g.shape)}")
        return list(self.proj(g).view(batch, self.n, self.channels, 1).unbind(1))


class ParallelDecoder(nn.Module):
    """Non-autoregressive decoder: Conv1d(D -> hidden, 3), residual stack,
    ``num_downsamples`` ConvTranspose1d(window 4, stride 2, padding 1), 1x1 to
    256 mu-law logits.

    ``z (B, D, t), g (B, S) -> logits (B, 256, t * 2^n)``. The speaker vector is
    added as a per-channel bias after the input conv and after each upsampling
    layer (before its ReLU), so the voice can shape every resolution while the
    content comes from ``z`` only.
    """

    def __init__(self, embedding_dim: int = 64, hidden: int = 128, res_hidden: int = 64, num_res_blocks: int = 2,
                 num_downsamples: int = 6, speaker_dim: int = 64, classes: int = MU_LAW_CLASSES):
        super().__init__()
        self.upsampling = 2**num_downsamples
        self.inp = nn.Conv1d(embedding_dim, hidden, 3, padding=1)
        self.res = ResidualStack(hidden, res_hidden, num_res_blocks, dims=1)
        self.ups = nn.ModuleList(nn.ConvTranspose1d(hidden, hidden, 4, stride=2, padding=1) for _ in range(num_downsamples))
        self.speaker = _SpeakerBias(speaker_dim, hidden, num_downsamples + 1)
        self.out = nn.Conv1d(hidden, classes, 1)
        for m in (self.inp, self.res, self.ups):
            kaiming_relu_(m)  # the output layer keeps the default (small) init

    def forward(self, z: torch.Tensor, g: torch.Tensor | None = None) -> torch.Tensor:
        bias = self.speaker(g, z.shape[0])
        h = self.res(self.inp(z) + bias[0])
        for up, b in zip(self.ups, bias[1:]):
            h = F.relu(up(h) + b)
        return self.out(h)


@dataclass
class WaveNetState:
    """Incremental-generation state of a :class:`WaveNetDecoder` for one batch.

    queues: per layer ``(B, dilation, C)``: the layer's last ``dilation``
        inputs, a ring buffer; slot ``t % dilation`` holds the input of time
        ``t - dilation`` until step t overwrites it with the input of time t.
        Zeros at the start, exactly the causal zero padding of training.
    cond: ``(B, layers, 2C, t)`` local + global conditioning at the latent rate.
    t: index of the sample the next :meth:`WaveNetDecoder.step` predicts.
    """

    queues: list[torch.Tensor]
    cond: torch.Tensor
    t: int = 0


class WaveNetDecoder(nn.Module):
    """Autoregressive WaveNet over 256 mu-law classes, conditioned on ``z_q`` and a speaker.

    Per layer l with dilation ``d_l`` (1, 2, ..., 2^(cycle-1), repeated)::

        a = W_l *_{d_l} x  +  V_l z_up  +  U_l g          (2C channels)
        u = tanh(a[:C]) * sigmoid(a[C:])                   (gated unit, WaveNet eq. 2-3)
        skip += S_l u ;  x = x + R_l u                     (residual and skip 1x1s)

    where ``*_d`` is a kernel-2 causal convolution (left-padded by ``d``). The
    input ``x`` at position t is the embedding of mu-law sample ``t - 1`` (zero
    vector at t = 0): the sequence is shifted right by one, so the logits at
    t see samples ``< t`` only. Head: ReLU, 1x1, ReLU, 1x1 -> 256 logits.

    Local conditioning (WaveNet section 2.5 offers a learned transposed-conv
    upsampler or "repeat these values across time"): we repeat. Sample t uses
    latent frame ``t // upsample`` through a per-layer 1x1 ``V_l``; since a
    1x1 conv commutes with nearest-neighbour repetition, ``V_l z`` is computed
    at the latent rate and broadcast over each frame's ``upsample`` samples,
    ``upsample`` times cheaper, and the repeated tensor is never built. It is
    causal-safe because the conditioning is known for the whole clip before
    decoding; the encoder's receptive field already mixes neighbouring frames,
    and the dilated stack smooths the frame boundaries.

    Receptive field: logits at t depend on samples ``t - R .. t - 1`` with
    ``R = 1 + sum(dilations) = 1 + (layers // cycle) (2^cycle - 1) + 2^(layers % cycle) - 1``
    (1024 for 10 layers in one cycle); see :attr:`receptive_field`.
    """

    def __init__(self, embedding_dim: int = 64, channels: int = 64, layers: int = 10, cycle: int = 10,
                 speaker_dim: int = 64, upsample: int = 64, classes: int = MU_LAW_CLASSES, skip_channels: int | None = None):
        super().__init__()
        if channels < 1 or layers < 1 or cycle < 1 or upsample < 1:
            raise ValueError(f"need channels, layers, cycle, upsample >= 1, got {channels}, {layers}, {cycle}, {upsample}")
        skip_channels = skip_channels or channels
        self.channels, self.layers, self.upsample, self.classes = channels, layers, upsample, classes
        self.dilations = [2 ** (i % cycle) for i in range(layers)]
        self.embed = nn.Embedding(classes, channels)
        self.convs = nn.ModuleList(nn.Conv1d(channels, 2 * channels, 2, dilation=d) for d in self.dilations)
        # The last layer's residual output would be unused: it has no R_l.
        self.res = nn.ModuleList(nn.Conv1d(channels, channels, 1) for _ in range(layers - 1))
        self.skip = nn.ModuleList(nn.Conv1d(channels, skip_channels, 1) for _ in range(layers))
        self.local = nn.Conv1d(embedding_dim, layers * 2 * channels, 1, bias=False)  # all V_l at once
        self.speaker = _SpeakerBias(speaker_dim, layers * 2 * channels, 1)  # all U_l at once
        self.head = nn.Sequential(nn.ReLU(), nn.Conv1d(skip_channels, skip_channels, 1), nn.ReLU(), nn.Conv1d(skip_channels, classes, 1))

    @property
    def receptive_field(self) -> int:
        """Number of past samples the logits at t can see: ``1 + sum(dilations)``."""
        return 1 + sum(self.dilations)

    def _conditioning(self, z: torch.Tensor, g: torch.Tensor | None) -> torch.Tensor:
        """``z (B, D, t), g (B, S)`` -> per-layer conditioning ``(B, layers, 2C, t)`` at the latent rate."""
        b, _, t = z.shape
        cond = self.local(z) + self.speaker(g, b)[0]
        return cond.view(b, self.layers, 2 * self.channels, t)

    def forward(self, samples: torch.Tensor, z: torch.Tensor, g: torch.Tensor | None = None) -> torch.Tensor:
        """Teacher-forced logits: ``samples (B, T)`` mu-law int64, ``z (B, D, T/upsample)`` -> ``(B, 256, T)``.

        ``logits[:, :, t]`` is the predicted distribution of ``samples[:, t]`` given ``samples[:, :t]``.
        """
        b, n = samples.shape
        if z.ndim != 3 or z.shape[0] != b or z.shape[2] * self.upsample != n:
            raise ValueError(f"expected samples (B, T) and z (B, D, T/{self.upsample}), got {tuple(samples.shape)} and {tuple(z.shape)}")
        cond = self._conditioning(z, g)
        x = F.pad(self.embed(samples[:, :-1]).transpose(1, 2), (1, 0))  # shift right: (B, C, T)
        skip = 0.0
        for l, d in enumerate(self.dilations):
            a = self.convs[l](F.pad(x, (d, 0)))  # causal: output t sees inputs t - d and t
            a = (a.view(b, 2 * self.channels, -1, self.upsample) + cond[:, l, :, :, None]).view(b, 2 * self.channels, n)
            u = torch.tanh(a[:, : self.channels]) * torch.sigmoid(a[:, self.channels :])
            skip = skip + self.skip[l](u)
            if l < self.layers - 1:
                x = x + self.res[l](u)
        return self.head(skip)

    # -- fast incremental generation (Paine et al. 2016) ---------------------
    @torch.no_grad()
    def start(self, z: torch.Tensor, g: torch.Tensor | None = None) -> WaveNetState:
        """Empty queues and the clip's conditioning, ready to predict sample 0."""
        b = z.shape[0]
        queues = [z.new_zeros(b, d, self.channels) for d in self.dilations]
        return WaveNetState(queues=queues, cond=self._conditioning(z, g))

    @torch.no_grad()
    def step(self, state: WaveNetState, prev: torch.Tensor | None) -> torch.Tensor:
        """Logits ``(B, 256)`` of sample ``state.t`` given sample ``state.t - 1`` (``prev``, ``(B,)``
        int64; ``None`` at t = 0); advances the state. Each call costs O(layers):
        a kernel-2 conv needs only the current input and the one ``d`` steps
        back, which the layer's queue holds."""
        t = state.t
        if t >= state.cond.shape[-1] * self.upsample:
            raise ValueError(f"the conditioning covers {state.cond.shape[-1] * self.upsample} samples; cannot predict sample {t}")
        b = state.cond.shape[0]
        x = state.cond.new_zeros(b, self.channels) if prev is None else self.embed(prev.long())
        cond = state.cond[:, :, :, t // self.upsample]  # (B, layers, 2C)
        skip = 0.0
        for l, d in enumerate(self.dilations):
            queue, slot = state.queues[l], t % d
            w = self.convs[l].weight  # (2C, C, 2): tap 0 multiplies the input d steps back
            a = F.linear(queue[:, slot], w[:, :, 0]) + F.linear(x, w[:, :, 1], self.convs[l].bias) + cond[:, l]
            queue[:, slot] = x
            u = torch.tanh(a[:, : self.channels]) * torch.sigmoid(a[:, self.channels :])
            skip = skip + F.linear(u, self.skip[l].weight[:, :, 0], self.skip[l].bias)
            if l < self.layers - 1:
                x = x + F.linear(u, self.res[l].weight[:, :, 0], self.res[l].bias)
        state.t = t + 1
        return self.head(skip[:, :, None])[:, :, 0]

    @torch.no_grad()
    def generate(self, z: torch.Tensor, g: torch.Tensor | None = None, temperature: float = 1.0,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Ancestral sampling of ``T = t * upsample`` mu-law samples ``(B, T)`` int64.

        Each sample is drawn from ``softmax(logits / temperature)``
        (``temperature = 0``: argmax) with ``generator`` (on the model's
        device), then fed back as the next input.
        """
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        state = self.start(z, g)
        n = z.shape[-1] * self.upsample
        out = torch.empty(z.shape[0], n, dtype=torch.long, device=z.device)
        prev = None
        for t in range(n):
            logits = self.step(state, prev).float()
            if temperature == 0:
                prev = logits.argmax(-1)
            else:
                prev = torch.multinomial((logits / temperature).softmax(-1), 1, generator=generator)[:, 0]
            out[:, t] = prev
        return out
