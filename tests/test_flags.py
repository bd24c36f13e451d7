"""No silent flags: every option either does something for the run it is given, or is refused with one line naming
the runs it applies to (exit 2). Run directories come from tests/fixtures/runs (recorded runs of each family)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import SR
from vqvae.cli import main
from vqvae.data.audio import write_wav

RUNS = Path(__file__).resolve().parent / "fixtures" / "runs"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("flags")
    shutil.copytree(RUNS, root / "runs")
    return root / "runs"


REFUSED = [
    (["eval", "{gpt}", "--candidates", "3"], "--candidates applies to DALL-E (dalle) runs; {gpt} is a transformer run"),
    (["eval", "{pixelcnn}", "--candidates", "4"], "--candidates applies to DALL-E (dalle) runs"),
    (["eval", "{gpt}", "--clip", "x"], "--clip applies to DALL-E (dalle) runs"),
    (["eval", "{dalle}", "--inception", "x.pt"], "--inception applies to prior (pixelcnn, transformer) runs; {dalle} is a dalle run"),
    (["eval", "{clf}", "--data", "mnist"], "--data applies to image tokenizer (vqvae, dvae) and audio VQ-VAE (audio-vqvae) and baseline (vae, vimco, vq) runs"),
    (["eval", "{tok}", "--speaker-classifier", "x"], "--speaker-classifier applies to audio VQ-VAE (audio-vqvae) runs; {tok} is a vqvae run"),
    (["eval", "{audio}", "--classifier", "x"], "--classifier applies to prior (pixelcnn, transformer) and DALL-E (dalle) runs"),
    (["eval", "{tok}", "-n", "10"], "-n/--samples applies to prior"),
    (["eval", "{clip}"], "vqvae eval applies to"),
    (["eval", "{gpt}", "--temperature", "0.9"], "--temperature is for scoring samples: pass --classifier RUN"),
    (["eval", "{pixelcnn}", "-n", "50"], "--samples is for scoring samples: pass --classifier RUN"),
    (["reconstruct", "{tok}", "a.png", "-o", "out", "--speaker", "bob"], "--speaker applies to audio VQ-VAE (audio-vqvae) runs"),
    (["decode", "{audio}", "codes.npy", "-o", "out"], "vqvae decode applies to image tokenizer (vqvae, dvae) runs; {audio} is a audio-vqvae run"),
    (["encode", "{gpt}", "-o", "c.npy"], "vqvae encode applies to"),
    (["reconstruct", "{dalle}", "a.png", "-o", "out"], "vqvae reconstruct applies to"),
    (["train", "--config", "clip", "--out", "x"], "a clip model is trained by `vqvae clip train`, not `vqvae train`"),
    (["train", "--config", "prior-transformer", "--out", "x"], "trained by `vqvae prior train --tokenizer RUN --arch transformer`"),
]


@pytest.mark.parametrize("argv,msg", REFUSED)
def test_an_option_the_run_would_not_read_is_refused(runs, argv, msg, capsys):
    fill = {name: str(runs / name) for name in ("tok", "gpt", "pixelcnn", "dalle", "clf", "audio", "clip")}
    capsys.readouterr()
    assert main([a.format(**fill) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and msg.format(**fill) in err, err


def test_eval_data_works_for_audio_runs(runs, tmp_path, capsys):
    """``--data`` used to be dropped for audio runs: now they are evaluated on the dataset it names."""
    t = np.arange(600) / SR
    for spk, f0 in (("alice", 220.0), ("bob", 440.0)):
        for i in range(10):
            write_wav(tmp_path / "voices" / spk / f"{i}.wav", 0.4 * np.sin(2 * np.pi * f0 * (1 + 0.02 * i) * t), SR)
    capsys.readouterr()
    assert main(["eval", str(runs / "audio"), "--data", str(tmp_path / "voices"), "--json"]) == 0
    m = json.loads(capsys.readouterr().out)
    from vqvae.data.audio import load_audio

    assert m["data"] == "voices" and m["clips"] == len(load_audio(str(tmp_path / "voices"), "test", length=512))
