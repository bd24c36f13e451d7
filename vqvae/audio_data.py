"""Raw-waveform audio datasets for the VQ-VAE paper's speech experiments, held in memory.

The paper (van den Oord et al. 2017, sec. 4.3) trains a VQ-VAE on raw audio with a
WaveNet-style decoder conditioned on the speaker, and converts speakers by decoding
one speaker's latents with another speaker's id. This module supplies the data side:

* :func:`read_wav` / :func:`write_wav`: one clip as float32 mono in [-1, 1] ``(T,)``,
  resampled to the rate asked for; written back as 16-bit PCM, atomically.
* :func:`trim_silence`: drop quiet leading/trailing frames so the fixed-length
  crop spends its samples on speech.
* :func:`mu_law_encode` / :func:`mu_law_decode`: WaveNet's 256-way mu-law
  quantisation (van den Oord et al. 2016), the decoder's categorical output.
* :func:`log_mel`: a log-mel power spectrogram for a distance metric and plots.
* :func:`load_audio`: a split of a dataset as an :class:`AudioSet`, either the Free
  Spoken Digit Dataset (``fsdd``, https://github.com/Jakobovski/free-spoken-digit-dataset)
  or any folder of ``.wav`` files, found under the same data roots as the image sets
  (:func:`vqvae.data.data_roots`).

Clips are decoded once per process (cached on the folder's names, sizes and mtimes,
so edits reload) and padded/cropped to a fixed length so a split is one
``(N, 1, L)`` tensor and training on two cores is never input-bound.
"""

from __future__ import annotations

import functools
import io
import math
import os
import re
import struct
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy.io import wavfile
from scipy.signal import resample_poly

from vqvae.data import DATA_ENV, SPLITS, TensorSet, _in_test, _signature, data_roots
from vqvae.errors import DataError

FSDD_URL = "https://github.com/Jakobovski/free-spoken-digit-dataset"
# Folders the FSDD recordings may sit in under a data root, in order of preference.
_FSDD_DIRS = ["fsdd/recordings", "recordings", "free-spoken-digit-dataset/recordings"]
_FSDD_NAME = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)\.wav$", re.IGNORECASE)
_FSDD_TEST_INDEX = 5  # the official split: recordings 0-4 of each speaker and digit are test
_ALIASES = {"fsdd": "fsdd", "free-spoken-digit-dataset": "fsdd", "free_spoken_digit": "fsdd"}


# -- single clips -----------------------------------------------------------
def read_wav(path: str | os.PathLike, sample_rate: int | None = None, min_samples: int = 64) -> tuple[np.ndarray, int, list[str]]:
    """Read a PCM/float WAV file as float32 mono in [-1, 1], shape ``(T,)``.

    Integer PCM is scaled by its full range (int16 by 1/32768, so int16 data
    survives :func:`write_wav` exactly; uint8 is offset by 128); float data is
    clipped to [-1, 1]. Several channels are averaged to mono. If ``sample_rate``
    is given and differs, the clip is resampled with a polyphase filter at the exact
    rational factor ``sample_rate / rate`` (anti-aliased, no drift in length).

    Returns ``(x, rate, notes)``: ``rate`` is the rate of ``x`` (``sample_rate`` if
    given) and ``notes`` lists each conversion done as ``"<path>: <what>"``, so a
    caller can tell the user once rather than per clip. Anything unreadable raises a
    one-line :class:`DataError`: missing file, not a WAV, truncated, empty, or fewer
    than ``min_samples`` samples (after resampling) -- too short to train on.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"audio file {p} not found")
    notes: list[str] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            rate, a = wavfile.read(p)
    except (ValueError, struct.error, EOFError, IndexError) as e:
        raise DataError(f"{p}: not a readable WAV file, expected RIFF/WAVE PCM or float audio ({type(e).__name__}: {e})") from None
    except OSError as e:
        raise DataError(f"{p}: cannot read ({e})") from None
    for w in caught:
        msg = str(w.message)
        if "EOF" in msg:  # scipy returns the samples it found and only warns: a cut-off file
            raise DataError(f"{p}: truncated WAV file ({msg}); re-download or re-export it")
        notes.append(f"{p}: {msg}")
    if a.ndim == 2:
        if a.shape[1] > 1:
            notes.append(f"{p}: {a.shape[1]} channels, mixed to mono")
        x = _to_float(a, p).mean(axis=1, dtype=np.float64)
    else:
        x = _to_float(a, p)
    if x.size == 0:
        raise DataError(f"{p}: empty WAV file (no samples); expected at least {min_samples} samples")
    if sample_rate and rate != sample_rate:
        g = math.gcd(int(sample_rate), int(rate))
        x = resample_poly(x, sample_rate // g, rate // g)
        notes.append(f"{p}: resampled from {rate} Hz to {sample_rate} Hz")
        rate = sample_rate
    x = np.asarray(x, np.float32)
    if np.abs(x).max() > 1.0:
        notes.append(f"{p}: samples beyond [-1, 1] clipped")
        x = np.clip(x, -1.0, 1.0)
    if x.size < min_samples:
        raise DataError(f"{p}: clip too short: {x.size} samples at {rate} Hz, expected at least {min_samples}")
    return x, int(rate), notes


def _to_float(a: np.ndarray, p: Path) -> np.ndarray:
    if a.dtype == np.uint8:
        return (a.astype(np.float32) - 128.0) / 128.0
    if a.dtype == np.int16:
        return a.astype(np.float32) / 32768.0
    if a.dtype == np.int32:  # also 24-bit PCM, which scipy left-justifies into int32
        return (a.astype(np.float64) / 2147483648.0).astype(np.float32)
    if a.dtype == np.int64:
        return (a.astype(np.float64) / 9223372036854775808.0).astype(np.float32)
    if np.issubdtype(a.dtype, np.floating):
        return a.astype(np.float32)
    raise DataError(f"{p}: unsupported WAV sample type {a.dtype}; expected 8/16/24/32-bit PCM or float")


def write_wav(path: str | os.PathLike, x: np.ndarray | torch.Tensor, sample_rate: int) -> Path:
    """Write float audio ``(T,)`` (or ``(1, T)``) in [-1, 1] as 16-bit mono PCM.

    Samples are scaled by 32768 and clipped to the int16 range (the inverse of
    :func:`read_wav`, so int16 data round-trips exactly and floats within 1/32768).
    The file is built in memory and moved into place atomically, so a reader (or a
    crash) never sees a half-written clip.
    """
    from vqvae.checkpoint import atomic_write  # local: checkpoint pulls in the model code

    a = x.detach().cpu().float().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, np.float64)
    a = a.reshape(-1) if a.ndim == 2 and a.shape[0] == 1 else a
    if a.ndim != 1:
        raise ValueError(f"write_wav expects mono audio (T,) or (1, T), got shape {a.shape}")
    q = np.clip(np.round(np.nan_to_num(a.astype(np.float64)) * 32768.0), -32768, 32767).astype(np.int16)
    buf = io.BytesIO()
    wavfile.write(buf, int(sample_rate), q)
    p = Path(path)
    atomic_write(p, buf.getvalue())
    return p


def trim_silence(x: np.ndarray | torch.Tensor, threshold_db: float = -40.0, frame: int = 256):
    """Drop leading and trailing frames quieter than ``threshold_db`` below the loudest frame.

    ``x`` is ``(T,)`` (numpy or torch, returned as the same type, a view). The clip
    is cut into non-overlapping ``frame``-sample frames (the last may be shorter);
    a frame is kept if its RMS is within ``threshold_db`` dB of the peak frame RMS,
    and everything from the first kept frame to the end of the last one is returned.
    Relative to the clip's own peak, so quiet recordings are not emptied; an all-zero
    clip is returned whole, so the result is never empty.
    """
    a = x.detach().cpu().double().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, np.float64)
    if a.ndim != 1 or a.size == 0:
        return x
    starts = np.arange(0, a.size, frame)
    energy = np.add.reduceat(a * a, starts) / np.diff(np.append(starts, a.size))
    rms = np.sqrt(energy)
    peak = rms.max()
    if peak <= 0:
        return x
    loud = np.flatnonzero(rms >= peak * 10.0 ** (threshold_db / 20.0))
    return x[int(starts[loud[0]]) : int(min(a.size, starts[loud[-1]] + frame))]


def mu_law_compress(x: torch.Tensor, mu: int = 255) -> torch.Tensor:
    """Waveform in [-1, 1] (any shape) -> companded ``F(x) = sign(x) ln(1 + mu|x|) / ln(1 + mu)`` in [-1, 1].

    mu-law spends its levels logarithmically, as speech amplitudes are.
    """
    x = x.float().clamp(-1.0, 1.0)
    return torch.sign(x) * torch.log1p(mu * x.abs()) / math.log1p(mu)


def mu_law_expand(f: torch.Tensor, mu: int = 255) -> torch.Tensor:
    """Inverse of :func:`mu_law_compress`: ``sign(f) ((1 + mu)^|f| - 1) / mu``."""
    f = f.float().clamp(-1.0, 1.0)
    return torch.sign(f) * torch.expm1(f.abs() * math.log1p(mu)) / mu


def mu_law_levels(mu: int = 255) -> torch.Tensor:
    """Companded value of each class, ``2 k / mu - 1`` for ``k = 0..mu``."""
    return torch.arange(mu + 1, dtype=torch.float32) * (2.0 / mu) - 1.0


def mu_law_encode(x: torch.Tensor, mu: int = 255) -> torch.Tensor:
    """Quantise audio in [-1, 1] (any shape) to int64 classes ``0..mu``: the companded
    value rounded to ``mu + 1`` levels -- WaveNet's 256-way softmax output, which the
    VQ-VAE audio decoder predicts. Silence (0) maps to ``(mu + 1) // 2``.
    """
    return torch.floor((mu_law_compress(x, mu) + 1) / 2 * mu + 0.5).clamp(0, mu).long()


def mu_law_decode(q: torch.Tensor, mu: int = 255) -> torch.Tensor:
    """Inverse of :func:`mu_law_encode`: int classes (any shape) to float32 audio in [-1, 1].

    The companded value is off by at most ``1/mu`` so the error is at most
    ``(|x| + 1/mu) ((1 + mu)^(1/mu) - 1)``, about 2.2 % of ``|x|`` for ``mu = 255``.
    """
    return mu_law_expand(2 * q.float() / mu - 1, mu)


# -- spectrograms -----------------------------------------------------------
def hz_to_mel(f):
    """HTK mel scale: ``2595 log10(1 + f / 700)``."""
    return 2595.0 * np.log10(1.0 + np.asarray(f, np.float64) / 700.0)


def mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, np.float64) / 2595.0) - 1.0)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None) -> torch.Tensor:
    """Triangular mel filters ``(n_mels, n_fft // 2 + 1)`` on the HTK scale, peak 1 (unnormalised).

    Band ``m`` rises from edge ``m`` to a peak at centre ``m + 1`` and falls to edge
    ``m + 2`` of ``n_mels + 2`` points equally spaced in mel between ``fmin`` and
    ``fmax`` (default Nyquist). Weights are evaluated at each FFT bin's exact
    frequency, so narrow low bands still catch a bin. Returns a fresh copy.
    """
    return _filterbank(int(sample_rate), int(n_fft), int(n_mels), float(fmin), float(fmax or sample_rate / 2)).clone()


@functools.lru_cache(maxsize=16)
def _filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> torch.Tensor:
    freqs = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs - lo) / (mid - lo)
    down = (hi - freqs) / (hi - mid)
    return torch.from_numpy(np.maximum(0.0, np.minimum(up, down))).float()


def log_mel(x: torch.Tensor, sample_rate: int, n_fft: int = 256, hop: int = 64, n_mels: int = 40, floor: float = 1e-5) -> torch.Tensor:
    """Log mel power spectrogram of ``x`` ``(..., T)`` -> ``(..., n_mels, 1 + T // hop)``.

    ``|STFT|^2`` with a Hann window of ``n_fft`` (centred frames, edges zero-padded
    so any ``T >= 1`` works), projected on :func:`mel_filterbank`, then the natural
    log of ``max(mel, floor)``: the floor keeps silence finite (about -11.5, i.e.
    ~100 dB below a full-scale tone). Defaults suit 8 kHz speech: 32 ms windows,
    8 ms hop, 40 bands. Differentiable; runs on ``x``'s device and dtype.
    """
    shape = x.shape
    flat = x.reshape(-1, shape[-1])
    window = torch.hann_window(n_fft, device=x.device, dtype=x.dtype)
    spec = torch.stft(flat, n_fft, hop, window=window, center=True, pad_mode="constant", return_complex=True)
    power = spec.real**2 + spec.imag**2  # (B, n_fft // 2 + 1, frames)
    fb = _filterbank(int(sample_rate), n_fft, n_mels, 0.0, sample_rate / 2).to(x.device, x.dtype)
    mel = torch.matmul(fb, power)
    return torch.log(mel.clamp_min(floor)).reshape(*shape[:-1], n_mels, mel.shape[-1])


# -- datasets ---------------------------------------------------------------
@dataclass
class AudioSet(TensorSet):
    """A split of an audio dataset, padded to one length so it stacks as a tensor.

    * ``images``: waveforms float32 ``(N, 1, L)`` in [-1, 1] (named ``images`` so the
      generic Trainer and loaders index it like an image batch: one channel, length L);
    * ``labels``: speaker index int64 ``(N,)`` into ``classes`` (sorted speaker names,
      the same list for train and test), what the decoder is conditioned on;
    * ``digits``: the spoken digit int64 ``(N,)`` for FSDD, else ``None``;
    * ``lengths``: int64 ``(N,)`` valid samples of each clip before zero padding;
    * ``files``: each clip's path relative to the dataset folder;
    * ``notes``: conversions done while reading (resampling, mixing to mono).
    """

    digits: torch.Tensor | None
    lengths: torch.Tensor
    sample_rate: int
    files: list[str]
    notes: list[str] = field(default_factory=list)

    @property
    def speakers(self) -> list[str]:
        return self.classes

    @property
    def length(self) -> int:
        return self.images.shape[-1]


def known_audio_datasets() -> list[str]:
    return ["fsdd"]


def load_audio(name: str, split: str = "train", root: str | None = None, sample_rate: int = 8000, length: int = 8192,
               trim: bool = True) -> AudioSet:
    """Load ``split`` of audio dataset ``name`` as clips of ``length`` samples at ``sample_rate``.

    ``name`` is ``fsdd`` (the Free Spoken Digit Dataset: ``{digit}_{speaker}_{index}.wav``
    under ``fsdd/recordings`` of a data root; official split, index 0-4 test), or a
    folder of ``.wav`` files given as a path or a folder name under a data root,
    searched recursively: the first folder level (below ``train/``/``test/`` if both
    exist, which then give the split) names the speaker, files directly in it are
    speaker ``unknown``; without split folders a fixed hash of the relative path puts
    ~10 % in test, as for image folders. A flat folder of FSDD-named files is read as FSDD.

    Each clip is read with :func:`read_wav` (resampled/mixed as needed; a single
    warning summarises such conversions), optionally :func:`trim_silence`-d, then
    centre-cropped to ``length`` or zero-padded at the end. Speakers are indexed in
    sorted order over both splits, so labels agree between train and test.
    """
    if split not in SPLITS:
        raise DataError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if length < 1 or sample_rate < 1:
        raise DataError(f"length and sample_rate must be positive, got length={length}, sample_rate={sample_rate}")
    key = _ALIASES.get(name.lower())
    if key == "fsdd":
        folder, label = _find_fsdd(root), "fsdd"
    else:
        path = Path(name).expanduser()
        folder = path if path.is_dir() else next((r / name for r in data_roots(root) if (r / name).is_dir()), None)
        if folder is None:
            looked = ", ".join(str(r / name) for r in data_roots(root))
            raise DataError(f"unknown audio dataset {name!r}: not one of {', '.join(known_audio_datasets())} and no folder of "
                            f".wav files at {name} or {looked}; set --data-root or ${DATA_ENV}")
        label = folder.resolve().name
    clips = _decode_folder(str(folder.resolve()), int(sample_rate), bool(trim), _signature(folder))
    classes = sorted({c.speaker for c in clips})
    chosen = [c for c in clips if c.split == split]
    if not chosen:
        raise DataError(f"{folder}: no .wav clips in the {split} split")
    x = np.zeros((len(chosen), 1, length), np.float32)
    lengths = np.empty(len(chosen), np.int64)
    for i, c in enumerate(chosen):
        start = max(0, (c.audio.size - length) // 2)  # centre crop keeps the middle of the word
        seg = c.audio[start : start + length]
        x[i, 0, : seg.size] = seg
        lengths[i] = seg.size
    digits = torch.tensor([c.digit for c in chosen], dtype=torch.int64) if all(c.digit is not None for c in chosen) else None
    notes = [n for c in chosen for n in c.notes]
    labels = torch.tensor([classes.index(c.speaker) for c in chosen], dtype=torch.int64)
    return AudioSet(torch.from_numpy(x), labels, classes, label, digits=digits, lengths=torch.from_numpy(lengths),
                    sample_rate=int(sample_rate), files=[c.rel for c in chosen], notes=notes)


def _find_fsdd(root: str | None) -> Path:
    roots = data_roots(root)
    for r in roots:
        for d in _FSDD_DIRS:
            if (r / d).is_dir() and any(_FSDD_NAME.match(p.name) for p in (r / d).iterdir()):
                return r / d
    looked = ", ".join(str(r / _FSDD_DIRS[0]) for r in roots)
    raise DataError(f"dataset 'fsdd' not found; looked in {looked}. Clone {FSDD_URL} and pass --data-root DIR "
                    f"(or set ${DATA_ENV}) to a folder holding fsdd/recordings/*.wav")


@dataclass(frozen=True)
class _Clip:
    rel: str
    split: str
    speaker: str
    digit: int | None
    audio: np.ndarray  # float32 (T,), read-only: shared by every load from the cache
    notes: tuple[str, ...]


@functools.lru_cache(maxsize=4)
def _decode_folder(folder: str, sample_rate: int, trim: bool, signature: tuple) -> tuple[_Clip, ...]:
    """Decode every clip of both splits once; ``signature`` keys the cache on the folder's contents."""
    d = Path(folder)
    files = sorted(p for p in d.rglob("*") if p.suffix.lower() == ".wav" and p.is_file())
    if not files:
        raise DataError(f"no .wav files found under {d}")
    fsdd = all(p.parent == d and _FSDD_NAME.match(p.name) for p in files)
    split_dirs = not fsdd and (d / "train").is_dir() and (d / "test").is_dir()
    clips, kinds = [], []
    for p in files:
        rel = p.relative_to(d)
        digit = None
        if fsdd:
            m = _FSDD_NAME.match(p.name)
            digit, speaker = int(m.group(1)), m.group(2).lower()
            split = "test" if int(m.group(3)) < _FSDD_TEST_INDEX else "train"
        else:
            if split_dirs:
                if rel.parts[0] not in SPLITS:
                    continue  # files beside train/ and test/ belong to neither split
                split, rel_in = rel.parts[0], Path(*rel.parts[1:])
            else:
                split, rel_in = ("test" if _in_test(str(rel)) else "train"), rel
            speaker = rel_in.parts[0] if len(rel_in.parts) > 1 else "unknown"
        audio, _, notes = read_wav(p, sample_rate)
        if trim:
            audio = np.ascontiguousarray(trim_silence(audio))
        audio.setflags(write=False)
        clips.append(_Clip(str(rel), split, speaker, digit, audio, tuple(notes)))
        kinds += [n[len(str(p)) + 2 :] for n in notes]  # read_wav's notes are "<path>: <what>"
    _warn_notes(d, [n for c in clips for n in c.notes], kinds, len(clips))
    return tuple(clips)


def _warn_notes(d: Path, notes: list[str], what: list[str], total: int) -> None:
    """One warning for a whole folder (only when it is decoded, so once per process and content):
    counts of each kind of conversion and an example file; ``AudioSet.notes`` keeps them all."""
    if not notes:
        return
    kinds = Counter(what)
    summary = "; ".join(f"{k} ({v} clips)" for k, v in kinds.most_common(5))
    more = f"; and {len(kinds) - 5} more kinds" if len(kinds) > 5 else ""
    warnings.warn(f"{d}: {len(notes)} conversions over {total} clips: {summary}{more}; e.g. {notes[0]}", stacklevel=4)
