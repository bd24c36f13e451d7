"""Using a trained audio VQ-VAE: evaluation, reconstruction, speaker conversion, codes.

Waveforms are float ``(N, 1, T)`` in [-1, 1] with ``T`` divisible by the
downsampling (64 in the paper); speakers are int64 ids ``(N,)``. Everything
runs in eval mode without gradients, in batches, on the model's device.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import torch

from vqvae.audio import metrics
from vqvae.core.errors import VQVAEError
from vqvae.core.progress import batches
from vqvae.core.windows import windowed_1d


def _device(model) -> torch.device:
    return next(model.parameters()).device


WINDOW = 2048  # code cells (16 s at 8 kHz and 64x) per window through the nets: longer clips go window by window


def context_cells(cfg) -> int:
    """Code cells of context each side of a window: the strided convolutions see under 2 cells, each residual block's
    3-tap convolution at the code rate one, the parallel decoder's input convolution one, and one to spare."""
    return 4 + cfg.num_res_blocks


@torch.no_grad()
def encode(model, x: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Waveforms -> codes ``(N, T / f)`` int64 on the CPU (speaker-independent). Clips longer than :data:`WINDOW` code
    cells are encoded one at a time in overlapping windows (the same codes as one pass; memory bounded)."""
    model.eval()
    dev = _device(model)
    f, t = model.config.downsampling, x.shape[-1] // model.config.downsampling
    if t > WINDOW:
        fn = lambda w: model.encode(w.to(dev)).cpu()  # noqa: E731
        return torch.cat([windowed_1d(fn, x[i : i + 1], t, f, 1, WINDOW, context_cells(model.config)) for i in range(x.shape[0])])
    return torch.cat([model.encode(x[s : s + batch_size].to(dev)).cpu() for s in range(0, x.shape[0], batch_size)])


@torch.no_grad()
def decode(model, codes: torch.Tensor, speakers: torch.Tensor, batch_size: int = 64, temperature: float = 1.0,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """Codes ``(N, t)`` in the voice of ``speakers (N,)`` -> waveforms ``(N, 1, t * f)`` on the CPU. The parallel
    decoder takes long clips window by window, as :func:`encode`; the WaveNet samples one long pass."""
    model.eval()
    dev = _device(model)
    t, cfg = codes.shape[-1], model.config
    if t > WINDOW and cfg.decoder == "parallel":
        out = []
        for i in range(codes.shape[0]):
            spk = speakers[i : i + 1].to(dev)
            fn = lambda c, spk=spk: model.decode(c.to(dev), spk, temperature=temperature, generator=generator).cpu()  # noqa: E731
            out.append(windowed_1d(fn, codes[i : i + 1], t, 1, cfg.downsampling, WINDOW, context_cells(cfg)))
        return torch.cat(out)
    out = []
    for s in range(0, codes.shape[0], batch_size):
        out.append(model.decode(codes[s : s + batch_size].to(dev), speakers[s : s + batch_size].to(dev),
                                temperature=temperature, generator=generator).cpu())
    return torch.cat(out)


def convert(model, x: torch.Tensor, speakers: torch.Tensor, **kw) -> torch.Tensor:
    """Speaker conversion: the content codes of ``x`` decoded in the voice of ``speakers``."""
    return decode(model, encode(model, x), speakers, **kw)


@torch.no_grad()
def evaluate_audio(model, x: torch.Tensor, speakers: torch.Tensor, batch_size: int = 64, generate: bool | None = None,
                   desc: str | None = None) -> dict:
    """Test metrics of an audio VQ-VAE on waveforms ``x`` with their true ``speakers``.

    Always: the decoder's teacher-forced mu-law NLL in bits per sample (the
    multi-resolution STFT loss, ``stft_loss``, for ``output="waveform"``), codebook
    usage (% of K), dead codes, perplexity, and the code rate in bits/s.
    With ``generate`` (default: for the parallel decoder only, whose decode is
    one pass): SNR and log-mel distance of the reconstructions decoded with
    the true speaker.
    """
    was = model.training
    model.eval()
    cfg = model.config
    dev = _device(model)
    k = cfg.codebook_size
    counts = torch.zeros(k, dtype=torch.float64)
    nll = 0.0
    n = x.shape[0]
    for s in batches(n, batch_size, desc):
        out = model(x[s : s + batch_size].to(dev), speakers[s : s + batch_size].to(dev))
        nll += out.recon_loss.item() * out.vq.indices.shape[0]
        counts += torch.bincount(out.vq.indices.flatten().cpu(), minlength=k).double()
    p = counts[counts > 0] / counts.sum()
    rec = {"stft_loss": nll / n} if cfg.output == "waveform" else {"bits_per_sample": nll / n / math.log(2)}
    res = {**rec, "usage_pct": 100.0 * float((counts > 0).sum()) / k,
           "dead_codes": int((counts == 0).sum()), "perplexity": math.exp(-(p * p.log()).sum().item()),
           "bits_per_second": cfg.bits_per_second, "clips": n}
    if generate is None:
        generate = cfg.decoder == "parallel"
    if generate:
        y = decode(model, encode(model, x, batch_size), speakers, batch_size)
        res["snr_db"] = metrics.snr_db(x, y).mean().item()
        res["log_mel_distance"] = metrics.log_mel_distance(x, y, cfg.sample_rate).mean().item()
    model.train(was)
    return res


def recon_text(m: dict) -> str:
    """The reconstruction loss of an audio evaluation, in words: mu-law NLL or multi-resolution STFT loss."""
    return f"{m['bits_per_sample']:.3f} bits/sample (mu-law NLL)" if "bits_per_sample" in m else f"STFT loss {m['stft_loss']:.3f}"


def speaker_id(cfg, name: str | None, source: str | Path | None = None) -> int:
    """A speaker's id by name; without a name, the speaker in an FSDD-style file name ``{digit}_{speaker}_{index}.wav``."""
    known = cfg.model.speakers
    if name is None and source is not None:
        m = re.match(r"^\d_([A-Za-z]+)_\d+$", Path(source).stem)
        name = m.group(1) if m and m.group(1) in known else None
        if name is None:
            raise VQVAEError(f"which voice? {source} does not name a known speaker: pass --speaker (known: {', '.join(known)})")
    if name not in known:
        raise VQVAEError(f"unknown speaker {name!r}; this model knows: {', '.join(known)}")
    return known.index(name)
