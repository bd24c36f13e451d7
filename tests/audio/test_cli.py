"""Audio end to end: train, reconstruct, convert, encode, eval with classifiers, and the one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vqvae.data.audio import read_wav, write_wav
from tests.helpers import SR, fake_fsdd
from vqvae.cli import main

TINY = ["--no-progress", "--data.clip_length=512", "--data.crop=256", "--train.batch_size=8", "--train.eval_images=8", "--train.log_every=2"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = fake_fsdd(tmp_path_factory.mktemp("audio"))
    r = ["--data-root", str(root)]
    vq = root / "vq"
    assert main(["train", "--data", "fsdd", *r, "--out", str(vq), "--steps", "4", "--model.hidden=16", "--model.res_hidden=8",
                 "--model.codebook_size=16", "--model.embedding_dim=8", "--model.speaker_dim=4", "--model.num_downsamples=3", *TINY]) == 0
    spk, dig = root / "spk", root / "dig"
    for out, extra in ((spk, []), (dig, ["--data.label=digit"])):
        assert main(["classifier", "train", "--data", "fsdd", *r, "--out", str(out), "--steps", "3", "--model.width=4",
                     "--model.feature_dim=8", *extra, *TINY]) == 0
    return root, vq, spk, dig


def test_training_writes_run_report(runs):
    _, vq, _, _ = runs
    cfg = json.loads((vq / "config.json").read_text())
    assert cfg["arch"] == "audio-vqvae" and cfg["model"]["speakers"] == ["alice", "bob"] and cfg["model"]["num_speakers"] == 2
    for name in ("model.safetensors", "train_state.safetensors", "eval.json", "spectrograms.png", "loss_curves.png"):
        assert (vq / name).is_file(), name
    assert len(list((vq / "examples").glob("*.wav"))) >= 3
    m = json.loads((vq / "eval.json").read_text())
    assert m["bits_per_second"] == pytest.approx(SR / 8 * 4) and "snr_db" in m and m["log_mel_distance"] >= 0


def test_reconstruct_and_convert_keep_length(runs, tmp_path, capsys):
    root, vq, _, _ = runs
    src = root / "fsdd" / "recordings" / "1_alice_0.wav"
    assert main(["reconstruct", str(vq), str(src), "-o", str(tmp_path / "rec.wav")]) == 0  # speaker from the file name
    assert main(["convert", str(vq), str(src), "--speaker", "bob", "-o", str(tmp_path / "conv")]) == 0
    for p in (tmp_path / "rec.wav", tmp_path / "conv" / "1_alice_0-to-bob.wav"):
        y, sr, _ = read_wav(p)
        assert sr == SR and len(y) == 600  # padded to the downsampling, cropped back
        assert p.with_suffix(".png").is_file()
    assert main(["convert", str(vq), str(src), "--speaker", "carol", "-o", str(tmp_path / "x.wav")]) == 2
    assert "alice, bob" in capsys.readouterr().err
    other = tmp_path / "mystery.wav"
    write_wav(other, np.zeros(300), SR)
    assert main(["reconstruct", str(vq), str(other), "-o", str(tmp_path / "y.wav")]) == 2
    assert "--speaker" in capsys.readouterr().err


def test_stereo_other_rate_input_is_converted_with_a_note(runs, tmp_path, capsys):
    _, vq, _, _ = runs
    t = np.arange(1200) / 16000
    tone = 0.3 * np.sin(2 * np.pi * 300 * t)
    import scipy.io.wavfile

    scipy.io.wavfile.write(tmp_path / "st.wav", 16000, (np.stack([tone, tone], 1) * 32767).astype(np.int16))
    assert main(["reconstruct", str(vq), str(tmp_path / "st.wav"), "--speaker", "alice", "-o", str(tmp_path / "o.wav")]) == 0
    out = capsys.readouterr().out
    assert "mono" in out and "resampled" in out
    assert len(read_wav(tmp_path / "o.wav")[0]) == 600


def test_bad_wavs_are_one_line_errors(runs, tmp_path, capsys):
    _, vq, _, _ = runs
    (tmp_path / "bad.wav").write_text("not a wav")
    write_wav(tmp_path / "short.wav", np.zeros(3), SR)
    for f in ("bad.wav", "short.wav", "missing.wav"):
        assert main(["reconstruct", str(vq), str(tmp_path / f), "--speaker", "bob", "-o", str(tmp_path / "o.wav")]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and "\n" not in err


def test_encode_and_eval_with_classifiers(runs, tmp_path, capsys):
    root, vq, spk, dig = runs
    assert main(["encode", str(vq), "--data-root", str(root), "--split", "test", "-o", str(tmp_path / "c.npy")]) == 0
    c = np.load(tmp_path / "c.npy")
    assert c.shape == (20, 512 // 8) and c.max() < 16
    capsys.readouterr()
    assert main(["eval", str(vq), "--data-root", str(root), "--json", "--speaker-classifier", str(spk), "--digit-classifier", str(dig)]) == 0
    m = json.loads(capsys.readouterr().out)
    for k in ("converted_speaker_accuracy", "converted_digit_accuracy", "speaker_classifier_accuracy_real", "digit_classifier_accuracy_real",
              "speaker_classifier_accuracy_reconstructed", "digit_classifier_accuracy_reconstructed"):
        assert 0 <= m[k] <= 1, k
    assert m["conversions"] == 20
    assert main(["eval", str(vq), "--data-root", str(root), "--speaker-classifier", str(vq)]) == 2


def test_audio_prior_samples_wavs(runs, tmp_path, capsys):
    root, vq, _, _ = runs
    prior = tmp_path / "prior"
    assert main(["prior", "train", "--tokenizer", str(vq), "--arch", "transformer", "--conditional", "--out", str(prior), "--steps", "3",
                 "--data-root", str(root), "--model.n_layer=1", "--model.n_embd=16", "--model.n_head=2", "--no-progress",
                 "--train.batch_size=8", "--train.eval_images=8"]) == 0
    cfg = json.loads((prior / "config.json").read_text())["model"]
    assert (cfg["height"], cfg["width"], cfg["num_classes"]) == (1, 64, 2)  # one row of 512/8 codes, speaker-conditional
    assert len(list((prior / "samples").glob("*.wav"))) == 8
    assert main(["sample", str(prior), "-n", "1", "--speaker", "bob", "-o", str(tmp_path / "s.wav")]) == 0
    y, sr, _ = read_wav(tmp_path / "s.wav")
    assert sr == SR and len(y) == 512 and (tmp_path / "s.png").is_file()
    assert main(["sample", str(prior), "-n", "3", "-o", str(tmp_path / "many")]) == 0
    assert len(list((tmp_path / "many").glob("*.wav"))) == 3
    capsys.readouterr()
    assert main(["eval", str(prior), "--data-root", str(root), "--json"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["bits_per_second_uniform_prior"] == pytest.approx(4 * SR / 8) and m["bits_per_second"] > 0
    assert main(["sample", str(prior), "--speaker", "carol", "-o", str(tmp_path / "x.wav")]) == 2


def test_classifier_trains_on_reconstructions_too(runs):
    import torch

    from vqvae.core import checkpoint
    from vqvae.core import config
    from vqvae.core.errors import DataError
    from vqvae.core.task import load_split

    root, vq, spk, _ = runs
    over = ["--data.clip_length=512", "--data.label=digit"]
    plain = load_split(config.load_config("classifier-audio", "fsdd", over), "train", str(root))
    both = load_split(config.load_config("classifier-audio", "fsdd", [*over, f"--data.reconstructions_from={vq}"]), "train", str(root))
    n = len(plain)
    assert len(both) == 2 * n and torch.equal(both.images[:n], plain.images)
    assert torch.equal(both.labels, torch.cat([plain.labels, plain.labels])) and torch.equal(both.digits[n:], plain.digits)
    _, model = checkpoint.load_run(vq)
    speakers = load_split(config.load_config("classifier-audio", "fsdd", over[:1]), "train", str(root)).labels  # alice, bob
    with torch.no_grad():  # oracle: the model's own encode -> decode with each clip's speaker
        assert torch.allclose(both.images[n:], model.eval().decode(model.encode(plain.images), speakers), atol=1e-6)
    with pytest.raises(DataError, match="audio VQ-VAE"):
        load_split(config.load_config("classifier-audio", "fsdd", [*over, f"--data.reconstructions_from={spk}"]), "train", str(root))
