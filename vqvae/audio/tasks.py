"""How the audio VQ-VAE trains and reports, turns speech into codes and back, and its registration.

Waveforms ``(B, 1, T)`` and speaker ids -> the decoder's loss (mu-law
cross-entropy or the multi-resolution STFT loss) + the quantizer's; evaluated
with :func:`vqvae.audio.inference.evaluate_audio`; a finished run writes
spectrograms and wavs of a few test clips, reconstructed and converted.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from vqvae.audio import inference
from vqvae.audio.model import AudioVQVAE
from vqvae.audio.plots import save_spectrograms
from vqvae.core.errors import DataError, VQVAEError
from vqvae.core.task import TokenizerTask, raw
from vqvae.data.audio import AudioSet, audio_split, labelled, write_wav
from vqvae.registry import Arch, register


def write_report(run_dir: Path, model, test, n: int = 3) -> None:
    """Spectrograms and wavs of a few test clips: input, reconstruction, conversion to another speaker."""
    run_dir = Path(run_dir)
    cfg = model.config
    ex = run_dir / "examples"
    rows = []
    k = len(cfg.speakers)
    for i in range(min(n, len(test))):
        j = i * max(1, len(test) // n)
        x, spk, t = test.images[j : j + 1], int(test.labels[j]), int(test.lengths[j])
        tgt = (spk + 1 + i) % k if k > 1 else spk
        rec = inference.decode(model, inference.encode(model, x), torch.tensor([spk]))[0, 0, :t]
        conv = inference.decode(model, inference.encode(model, x), torch.tensor([tgt]))[0, 0, :t]
        name = Path(test.files[j]).stem
        write_wav(ex / f"{name}.wav", x[0, 0, :t], cfg.sample_rate)
        write_wav(ex / f"{name}-reconstruction.wav", rec, cfg.sample_rate)
        write_wav(ex / f"{name}-to-{cfg.speakers[tgt]}.wav", conv, cfg.sample_rate)
        rows += [(f"{name} ({cfg.speakers[spk]})", x[0, 0, :t]), ("reconstruction", rec), (f"converted to {cfg.speakers[tgt]}", conv)]
    save_spectrograms(rows, cfg.sample_rate, run_dir / "spectrograms.png")


class AudioTask(TokenizerTask):
    """The audio VQ-VAE: waveforms ``(B, 1, T)`` and speaker ids -> mu-law cross-entropy + quantizer loss."""

    preview = ("samples", 8)  # a folder of wavs
    bar = ("loss", "bits_per_sample", "stft_loss", "perplexity")
    curves = (("loss", "loss", "loss"), ("bits_per_sample", "bits_per_sample", "mu-law NLL (bits/sample)"),
              ("stft_loss", "stft_loss", "multi-resolution STFT loss"), ("perplexity", "perplexity", "codebook perplexity"))

    def load_split(self, cfg, split, root=None, progress=True):
        return labelled(audio_split(cfg.data, split, root), cfg.data.label)

    def prepare(self, cfg, train_set) -> None:
        m = cfg.model
        if m.num_speakers == 0:
            m.num_speakers = len(train_set.classes)
        if m.num_speakers < len(train_set.classes):
            raise VQVAEError(f"model.num_speakers={m.num_speakers} but {train_set.name} has {len(train_set.classes)} speakers")
        m.sample_rate = cfg.data.sample_rate
        if not m.speakers:
            m.speakers = list(train_set.classes)
        for key in ("clip_length", "crop"):
            if getattr(cfg.data, key) % m.downsampling:
                raise VQVAEError(f"data.{key}={getattr(cfg.data, key)} is not divisible by the downsampling {m.downsampling}")

    def step(self, model, x, y, detail):
        out = model(x, y)
        rec = out.recon_loss.detach()
        rec = {"stft_loss": rec} if raw(model).config.output == "waveform" else {"bits_per_sample": rec / math.log(2)}
        return out.loss, {**rec, "perplexity": out.vq.perplexity,
                          "commitment": out.vq.commitment_loss}

    def evaluate(self, model, x, y, batch_size):
        return inference.evaluate_audio(model, x, y, batch_size, desc="evaluating" if self.show_progress else None)

    def report(self, run_dir, model, test_set, final) -> str:
        write_report(run_dir, model, test_set)
        return (f"step {final['step']}: test SNR {final.get('snr_db', float('nan')):.2f} dB, log-mel distance "
                f"{final.get('log_mel_distance', float('nan')):.3f}, {inference.recon_text(final)}, {final['usage_pct']:.1f}% of codes used; "
                f"see {Path(run_dir) / 'spectrograms.png'}")

    def encode(self, model, x) -> np.ndarray:
        return inference.encode(model, x).numpy()  # (N, T / f): one row of content codes per clip

    def reconstruct_inputs(self, model, ds, progress=True, batch_size=None) -> torch.Tensor:
        """Each clip decoded in its own speaker's voice (the speakers matched by name)."""
        if not isinstance(ds, AudioSet):
            raise DataError(f"data.reconstructions_from is an audio VQ-VAE; {ds.name} is not audio")
        known = {name: i for i, name in enumerate(model.config.speakers)}
        missing = sorted(set(ds.speakers) - set(known))
        if missing:
            raise DataError(f"data.reconstructions_from does not know the speakers {missing}; it knows {sorted(known)}")
        speakers = torch.tensor([known[ds.speakers[i]] for i in ds.labels.tolist()], dtype=torch.int64)
        return inference.convert(model, ds.images, speakers, batch_size=batch_size or 64)

    def decode(self, model, codes) -> torch.Tensor:
        """Codes ``(N, t)`` in each model's first voice -> waveforms ``(N, 1, t * f)``."""
        codes = torch.as_tensor(codes)
        return inference.decode(model, codes, torch.zeros(codes.shape[0], dtype=torch.long))

    def codes_per_second(self, model_config) -> float:
        return model_config.sample_rate / model_config.downsampling

    def render(self, model, codes, out, labels=None, nrow=8, voice=None) -> None:
        """Sampled codes ``(n, 1, t)`` -> wav files in the voice of ``labels`` (a speaker-conditional prior) or ``voice``:
        ``out`` itself for one sample named ``*.wav``, else ``out/sample_NNN_<speaker>.wav``; spectrograms beside."""
        n = codes.shape[0]
        voices = labels if labels is not None else torch.full((n,), voice or 0, dtype=torch.long)
        wav = inference.decode(model, codes[:, 0].cpu(), voices)
        sr, names = model.config.sample_rate, model.config.speakers
        out = Path(out)
        one = out.suffix.lower() == ".wav" and n == 1
        paths = [out] if one else [out / f"sample_{i:03d}_{names[int(v)]}.wav" for i, v in enumerate(voices)]
        for p, w in zip(paths, wav):
            write_wav(p, w[0], sr)
        save_spectrograms([(p.name, w[0]) for p, w in list(zip(paths, wav))[:4]], sr,
                          out.with_suffix(".png") if out.suffix.lower() == ".wav" else out / "spectrograms.png")

    def voice(self, cfg, name: str) -> int:
        return inference.speaker_id(cfg, name)


register(Arch("audio-vqvae", AudioVQVAE, AudioTask, "tokenizer"))
