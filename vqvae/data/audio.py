"""Raw-waveform audio datasets for the VQ-VAE paper's speech experiments, held in memory.

The paper (van den Oord et al. 2017, sec. 4.3) trains a VQ-VAE on raw audio with a
WaveNet-style decoder conditioned on the speaker, and converts speakers by decoding
one speaker's latents with another speaker's id. This module supplies the data side:

* :func:`read_wav` / :func:`write_wav`: one clip as float32 mono in [-1, 1] ``(T,)``,
  resampled to the rate asked for; written back as 16-bit PCM, atomically.
* :func:`trim_silence`: drop quiet leading/trailing frames so the fixed-length
  crop spends its samples on speech.
* :func:`load_audio`: a split of a dataset as an :class:`AudioSet`, either the Free
  Spoken Digit Dataset (``fsdd``, https://github.com/Jakobovski/free-spoken-digit-dataset)
  or any folder of ``.wav`` files, found under the same data roots as the image sets
  (:func:`vqvae.data.roots.data_roots`). Mu-law and log-mel live in :mod:`vqvae.nets.dsp`.

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
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from scipy.io import wavfile
from scipy.signal import resample_poly

from vqvae.core.errors import DataError
from vqvae.core.files import atomic_write
from vqvae.data.roots import DATA_ENV, SPLITS, data_roots, in_test, signature
from vqvae.data.sets import TensorSet

FSDD_URL = "https://github.com/Jakobovski/free-spoken-digit-dataset"
# Folders the FSDD recordings may sit in under a data root, in order of preference.
_FSDD_DIRS = ["fsdd/recordings", "recordings", "free-spoken-digit-dataset/recordings"]
_FSDD_NAME = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)\.wav$", re.IGNORECASE)
_FSDD_TEST_INDEX = 5  # the official split: recordings 0-4 of each speaker and digit are test
_ALIASES = {"fsdd": "fsdd", "free-spoken-digit-dataset": "fsdd", "free_spoken_digit": "fsdd"}


# -- single clips -----------------------------------------------------------
MAX_RATE = 768_000  # Hz: the highest sample rate a WAV may declare (higher ones are damaged headers)


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
    except (ValueError, struct.error, EOFError, IndexError, ZeroDivisionError, OverflowError, MemoryError) as e:
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
    if not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).sum())
        raise DataError(f"{p}: {bad} of its {x.size} samples are NaN or infinite; expected finite audio")
    if not 1 <= rate <= MAX_RATE:
        raise DataError(f"{p}: sample rate {rate} Hz; expected 1 to {MAX_RATE} Hz")
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

    def followed_by(self, images: torch.Tensor) -> "AudioSet":
        """This set and, after it, ``images`` (e.g. its clips decoded by an audio VQ-VAE) with the same labels,
        digits, lengths and file names (marked as reconstructed)."""
        twice = lambda t: None if t is None else torch.cat([t, t])  # noqa: E731
        return replace(self, images=torch.cat([self.images, images]), labels=twice(self.labels), digits=twice(self.digits),
                       lengths=twice(self.lengths), files=self.files + [f"{f} (reconstructed)" for f in self.files])

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
    clips = _decode_folder(str(folder.resolve()), int(sample_rate), bool(trim), signature(folder))
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


def audio_split(d, split: str, root: str | None = None) -> AudioSet:
    """``split`` of the audio dataset ``d.name`` as fixed-length clips, labelled by speaker."""
    return load_audio(d.name, split, root=root or d.root, sample_rate=d.sample_rate, length=d.clip_length, trim=d.trim)


def labelled(ds: AudioSet, label: str) -> AudioSet:
    """``ds`` with the labels ``data.label`` names: speakers (as loaded) or spoken digits."""
    if label == "digit":
        if ds.digits is None:
            raise DataError(f"data.label=digit needs spoken-digit labels, and {ds.name} has none (FSDD has)")
        ds.labels, ds.classes = ds.digits.clone(), [str(i) for i in range(10)]
    return ds


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
                split, rel_in = ("test" if in_test(str(rel)) else "train"), rel
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
