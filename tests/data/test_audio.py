"""Audio data: WAV I/O, trimming and datasets against synthetic clips and oracles.

Synthetic clips are written here with scipy (the writer is the oracle for the reader);
the real Free Spoken Digit Dataset is checked when ``../shared/data/fsdd`` exists.
"""

from __future__ import annotations

import math
import re
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.io import wavfile

from vqvae.data.audio import AudioSet, load_audio, read_wav, trim_silence, write_wav
from vqvae.data.roots import DATA_ENV
from vqvae.core.errors import DataError

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
FSDD = SHARED / "fsdd" / "recordings"
needs_fsdd = pytest.mark.skipif(not FSDD.is_dir(), reason="FSDD not present under ../shared/data/fsdd")


def _tone(freq: float, rate: int, seconds: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _pcm16(x: np.ndarray) -> np.ndarray:
    return np.round(x * 32767).astype(np.int16)


def _one_line(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert "\n" not in msg and msg
    return msg


# -- read / write -----------------------------------------------------------
def test_int16_round_trip_is_exact(tmp_path):
    q = np.random.default_rng(0).integers(-32768, 32768, 4000).astype(np.int16)
    wavfile.write(tmp_path / "a.wav", 8000, q)
    x, rate, notes = read_wav(tmp_path / "a.wav")
    assert x.dtype == np.float32 and x.shape == (4000,) and rate == 8000 and notes == []
    assert -1 <= x.min() and x.max() <= 1
    write_wav(tmp_path / "b.wav", x, 8000)
    rate2, q2 = wavfile.read(tmp_path / "b.wav")
    assert rate2 == 8000 and q2.dtype == np.int16
    np.testing.assert_array_equal(q2, q)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # the atomic write left no temp file


def test_float_round_trip_within_one_step_and_clipped(tmp_path):
    x = np.random.default_rng(1).uniform(-1, 1, 3000).astype(np.float32)
    x[:3] = [1.0, -1.0, 0.0]
    write_wav(tmp_path / "f.wav", torch.from_numpy(x)[None], 16000)  # (1, T) tensors are accepted too
    y, rate, _ = read_wav(tmp_path / "f.wav")
    assert rate == 16000 and np.abs(y - x).max() <= 1 / 32767
    write_wav(tmp_path / "loud.wav", np.array([2.0, -3.0, 0.5]), 8000)
    assert wavfile.read(tmp_path / "loud.wav")[1].tolist() == [32767, -32768, 16384]
    with pytest.raises(ValueError):
        write_wav(tmp_path / "s.wav", np.zeros((100, 2)), 8000)


def test_stereo_is_mixed_to_mono_with_a_note(tmp_path):
    left, right = _tone(300, 8000, 0.1), _tone(500, 8000, 0.1, 0.25)
    wavfile.write(tmp_path / "st.wav", 8000, _pcm16(np.stack([left, right], 1)))
    x, _, notes = read_wav(tmp_path / "st.wav")
    assert x.shape == left.shape
    np.testing.assert_allclose(x, (left + right) / 2, atol=2 / 32768)
    assert len(notes) == 1 and notes[0].endswith("st.wav: 2 channels, mixed to mono")


def test_resampling_halves_length_and_keeps_the_tone(tmp_path):
    rate_in, f0 = 16000, 440.0
    wavfile.write(tmp_path / "hi.wav", rate_in, _pcm16(_tone(f0, rate_in, 1.0)))
    x, rate, notes = read_wav(tmp_path / "hi.wav", sample_rate=8000)
    assert rate == 8000 and x.shape == (8000,)
    assert any("resampled from 16000 Hz to 8000 Hz" in n for n in notes)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    peak_hz = np.argmax(spectrum) * rate / x.size
    assert abs(peak_hz - f0) <= 1.0
    assert abs(np.sqrt(np.mean(x[1000:-1000] ** 2)) - 0.5 / math.sqrt(2)) < 0.01  # amplitude preserved
    x2, rate2, _ = read_wav(tmp_path / "hi.wav", sample_rate=22050)  # non-integer ratio: exact rational factors
    assert rate2 == 22050 and x2.size == 22050


def test_uint8_and_float32_inputs(tmp_path):
    u = np.array([0, 64, 128, 192, 255] * 20, np.uint8)
    wavfile.write(tmp_path / "u8.wav", 8000, u)
    x, _, _ = read_wav(tmp_path / "u8.wav")
    np.testing.assert_allclose(x[:5], [-1.0, -0.5, 0.0, 0.5, 127 / 128])
    f = np.linspace(-1, 1, 200, dtype=np.float32)
    f[0] = -1.5  # out of range floats are clipped, with a note
    wavfile.write(tmp_path / "f32.wav", 8000, f)
    x, _, notes = read_wav(tmp_path / "f32.wav")
    assert x.dtype == np.float32 and x[0] == -1.0
    np.testing.assert_array_equal(x[1:], f[1:])
    assert any("clipped" in n for n in notes)
    wavfile.write(tmp_path / "i32.wav", 8000, np.array([2**30, -(2**31)] * 50, np.int32))
    np.testing.assert_allclose(read_wav(tmp_path / "i32.wav")[0][:2], [0.5, -1.0])


def test_bad_files_are_one_line_data_errors(tmp_path):
    good = tmp_path / "good.wav"
    wavfile.write(good, 8000, _pcm16(_tone(200, 8000, 0.2)))
    raw = good.read_bytes()
    (tmp_path / "text.wav").write_text("this is not audio\n")
    (tmp_path / "header.wav").write_bytes(raw[:30])  # cut inside the fmt chunk
    (tmp_path / "data.wav").write_bytes(raw[:1000])  # cut inside the samples
    (tmp_path / "zero.wav").write_bytes(b"")
    wavfile.write(tmp_path / "empty.wav", 8000, np.zeros(0, np.int16))
    wavfile.write(tmp_path / "short.wav", 8000, np.zeros(10, np.int16))
    cases = {"text.wav": "not a readable WAV", "header.wav": "not a readable WAV", "data.wav": "truncated",
             "zero.wav": "not a readable WAV", "empty.wav": "empty", "short.wav": "too short: 10 samples",
             "missing.wav": "not found"}
    for name, expect in cases.items():
        with pytest.raises(DataError) as e:
            read_wav(tmp_path / name)
        msg = _one_line(e)
        assert expect in msg and name in msg, msg
    with pytest.raises(DataError, match="at least 5000"):
        read_wav(good, min_samples=5000)


# -- trimming ---------------------------------------------------------------
def test_trim_silence_keeps_the_tone_and_drops_padding():
    rng = np.random.default_rng(2)
    tone = _tone(400, 8000, 0.25)
    pad = lambda n: (1e-4 * rng.standard_normal(n)).astype(np.float32)  # noqa: E731  -74 dB noise
    x = np.concatenate([np.zeros(3000, np.float32), pad(1000), tone, pad(1500), np.zeros(2000, np.float32)])
    start, stop = 4000, 4000 + tone.size
    y = trim_silence(x, frame=256)
    cut = (y.ctypes.data - x.ctypes.data) // x.itemsize  # a view: where it starts in x
    assert isinstance(y, np.ndarray) and y.size < x.size
    assert start - 256 < cut <= start and cut + y.size >= stop and cut + y.size < stop + 256  # within a frame
    np.testing.assert_array_equal(x[cut : cut + y.size], y)
    yt = trim_silence(torch.from_numpy(x))
    assert isinstance(yt, torch.Tensor) and yt.numel() == y.size
    assert trim_silence(np.zeros(1000, np.float32)).size == 1000  # all silence: kept whole, never empty
    assert trim_silence(np.array([0.0, 0.0, 1.0]), frame=1).tolist() == [1.0]
    assert y.size < trim_silence(x, threshold_db=-90).size <= x.size - 3000  # a laxer threshold keeps the noise, not the zeros


# -- datasets ---------------------------------------------------------------
def _write(path: Path, seconds: float, rate: int = 8000, freq: float = 300.0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    wavfile.write(path, rate, _pcm16(_tone(freq, rate, seconds)))


def test_folder_with_split_subfolders(tmp_path):
    d = tmp_path / "voices"
    _write(d / "train" / "bob" / "a.wav", 0.5)  # 4000 samples: padded
    _write(d / "train" / "bob" / "b.wav", 2.0)  # 16000 samples: centre-cropped
    _write(d / "train" / "alice" / "c.wav", 0.25, rate=16000)  # resampled
    _write(d / "test" / "alice" / "d.wav", 0.1)
    _write(d / "test" / "carol" / "e.wav", 0.1)  # a speaker only in test still gets the shared index
    with pytest.warns(UserWarning, match="resampled from 16000 Hz to 8000 Hz"):
        tr = load_audio("voices", "train", root=str(tmp_path), length=8192, trim=False)
    te = load_audio(str(d), "test", length=8192, trim=False)
    assert isinstance(tr, AudioSet) and tr.name == "voices" and tr.sample_rate == 8000
    assert tr.classes == te.classes == tr.speakers == ["alice", "bob", "carol"]
    assert tr.files == ["train/alice/c.wav", "train/bob/a.wav", "train/bob/b.wav"]
    assert tr.labels.tolist() == [0, 1, 1] and te.labels.tolist() == [0, 2]
    assert tr.images.shape == (3, 1, 8192) and tr.images.dtype == torch.float32 and tr.length == 8192
    assert tr.lengths.tolist() == [2000, 4000, 8192] and tr.digits is None
    assert torch.all(tr.images[1, 0, 4000:] == 0) and tr.images[1, 0, :4000].abs().max() > 0.4
    full = torch.from_numpy(read_wav(d / "train" / "bob" / "b.wav")[0])
    torch.testing.assert_close(tr.images[2, 0], full[(16000 - 8192) // 2 :][:8192])  # the middle of the clip
    assert len(tr.notes) == 1 and "c.wav" in tr.notes[0]


def test_flat_folder_hash_split_trim_and_cache(tmp_path):
    d = tmp_path / "flat"
    d.mkdir()
    for i in range(40):  # 800 tone samples with 1000 zeros before and 500 after
        x = np.concatenate([np.zeros(1000, np.float32), _tone(200 + 10 * i, 8000, 0.1), np.zeros(500, np.float32)])
        wavfile.write(d / f"clip{i:02d}.wav", 8000, _pcm16(x))
    tr, te = load_audio(str(d), "train", length=1024), load_audio(str(d), "test", length=1024)
    assert len(tr) + len(te) == 40 and 0 < len(te) < 12  # ~10 % by hash of the relative path
    assert not set(tr.files) & set(te.files)
    assert tr.classes == ["unknown"] and torch.all(tr.labels == 0)
    assert torch.all((tr.lengths >= 800) & (tr.lengths <= 800 + 2 * 256))  # trimmed to the tone, give or take a frame each side
    again = load_audio(str(d), "train", length=1024)
    assert again.files == tr.files and torch.equal(again.images, tr.images)
    again.images.zero_()
    assert load_audio(str(d), "train", length=1024).images.abs().max() > 0  # the cache hands out copies
    t = time.perf_counter()
    load_audio(str(d), "test", length=1024)
    assert time.perf_counter() - t < 0.5  # decoded once: later loads are cached
    _write(d / "clip99.wav", 0.1)  # new content invalidates the cache
    assert len(load_audio(str(d), "train", length=1024)) + len(load_audio(str(d), "test", length=1024)) == 41


def test_dataset_errors(tmp_path, monkeypatch):
    with pytest.raises(DataError, match="split must be one of"):
        load_audio("fsdd", "valid")
    with pytest.raises(DataError) as e:
        load_audio("no-such-set", root=str(tmp_path))
    assert str(tmp_path / "no-such-set") in _one_line(e)
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    with pytest.raises(DataError) as e:
        load_audio("no-such-set")
    assert str(tmp_path / "no-such-set") in _one_line(e) and "../shared/data" in str(e.value)
    with pytest.raises(DataError) as e:
        load_audio("fsdd", root=str(tmp_path))
    msg = _one_line(e)
    assert str(tmp_path / "fsdd" / "recordings") in msg and "free-spoken-digit-dataset" in msg
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no .wav files"):
        load_audio("empty", root=str(tmp_path))
    (tmp_path / "bad" / "x").mkdir(parents=True)
    (tmp_path / "bad" / "x" / "oops.wav").write_text("nope")
    with pytest.raises(DataError, match="oops.wav: not a readable WAV"):
        load_audio("bad", root=str(tmp_path))


def test_fake_fsdd_layout(tmp_path):
    rec = tmp_path / "fsdd" / "recordings"
    for digit in (3, 7):
        for spk in ("zed", "amy"):
            for idx in (0, 4, 5, 12):
                _write(rec / f"{digit}_{spk}_{idx}.wav", 0.2, freq=200 + 50 * digit)
    (rec / "README.txt").write_text("not a clip")
    tr, te = load_audio("fsdd", "train", root=str(tmp_path)), load_audio("fsdd", "test", root=str(tmp_path))
    assert (len(tr), len(te)) == (8, 8) and tr.classes == te.classes == ["amy", "zed"]
    for ds, want in ((tr, {5, 12}), (te, {0, 4})):
        for f, d, s in zip(ds.files, ds.digits.tolist(), ds.labels.tolist()):
            digit, spk, idx = re.match(r"(\d)_(\w+)_(\d+)\.wav", f).groups()
            assert int(idx) in want and int(digit) == d and ds.classes[s] == spk


@needs_fsdd
def test_real_fsdd():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # FSDD is 8 kHz mono int16: no conversion notes
        tr = load_audio("fsdd", "train", root=str(SHARED))
        te = load_audio("fsdd", "test", root=str(SHARED))
    assert (len(tr), len(te)) == (2700, 300) and tr.sample_rate == te.sample_rate == 8000
    assert tr.speakers == te.speakers == ["george", "jackson", "lucas", "nicolas", "theo", "yweweler"]
    assert tr.images.shape == (2700, 1, 8192) and tr.images.abs().max() <= 1
    assert sorted(set(tr.digits.tolist())) == list(range(10)) and torch.bincount(te.digits).tolist() == [30] * 10
    for ds, test in ((tr, False), (te, True)):
        idx = torch.tensor([int(Path(f).stem.split("_")[2]) for f in ds.files])
        assert torch.all((idx < 5) == test)
        assert [ds.classes[i] for i in ds.labels.tolist()] == [Path(f).stem.split("_")[1] for f in ds.files]
        assert ds.digits.tolist() == [int(Path(f).name[0]) for f in ds.files]
    assert torch.all((tr.lengths > 1000) & (tr.lengths <= 8192))
    x, rate, notes = read_wav(FSDD / "0_george_0.wav")
    assert rate == 8000 and notes == [] and x.shape == (2384,)
    i = tr.files.index("0_george_5.wav")
    assert tr.lengths[i] <= read_wav(FSDD / "0_george_5.wav")[0].size


def test_nan_or_infinite_samples_are_refused(tmp_path):
    """A float WAV holding NaN or infinite samples is one line naming how many, not a silently written output."""
    from scipy.io import wavfile

    x = np.zeros(800, np.float32)
    x[[3, 500]] = [np.nan, np.inf]
    wavfile.write(tmp_path / "nan.wav", 8000, x)
    with pytest.raises(DataError, match=r"2 of its 800 samples are NaN or infinite; expected finite audio"):
        read_wav(tmp_path / "nan.wav")
