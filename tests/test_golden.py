"""Golden values: a seeded tiny run of every family gives bit-identical metrics, weights and bytes, and run
directories written by earlier code still load and give the same numbers.

``tests/fixtures/golden.json`` and the run directories in ``tests/fixtures/runs/`` were recorded before the
package was reorganised into families (issue 20), at the commit that introduced this file:

    VQVAE_RECORD_GOLDEN=1 python -m pytest -q tests/test_golden.py

Everything runs on one thread (tests/conftest.py) from a scratch folder, with data given by relative names, so
the recorded configs point at data every test run regenerates. Wall-clock figures (``train_seconds``) and paths
are left out; everything else must match exactly.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers import fake_fsdd, write_npy_data
from vqvae.cli import main

FIXTURES = Path(__file__).resolve().parent / "fixtures"
GOLDEN = FIXTURES / "golden.json"
RUNS = FIXTURES / "runs"
RECORD = os.environ.get("VQVAE_RECORD_GOLDEN") == "1"
Q = ["--no-progress", "--train.eval_images=8", "--train.batch_size=8", "--train.log_every=2"]
BLOBS = "data/blobs_{split}.npy"
CAPTION = "a red 3 above a small blue sneaker"
KEPT = {"tok": ("config.json", "model.safetensors"), "dvae": ("config.json", "model.safetensors"),
        "pixelcnn": ("config.json", "model.safetensors"), "gpt": ("config.json", "model.safetensors"),
        "audio": ("config.json", "model.safetensors"), "clf": ("config.json", "model.safetensors"),
        "scenes-tok": ("config.json", "model.safetensors"), "dalle": ("config.json", "model.safetensors", "text.json"),
        "clip": ("config.json", "model.safetensors", "text.json")}


def _sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _pixels(path: Path) -> str:
    return hashlib.sha256(np.asarray(Image.open(path)).tobytes()).hexdigest()


def _final(run: Path) -> dict:
    """eval.json without the wall-clock time, and the weights' hash."""
    ev = json.loads((run / "eval.json").read_text())
    ev.pop("train_seconds", None)
    return {"eval": ev, "weights": _sha(run / "model.safetensors")}


def _cli(*argv) -> str:
    """Run the CLI in this process; returns what it printed."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(list(argv))
    assert code == 0, (argv, buf.getvalue()[-2000:])
    return buf.getvalue()


def _data(folder: Path) -> None:
    write_npy_data(folder / "data", size=16, channels=1)
    write_npy_data(folder / "rgb", size=32, channels=3)
    fake_fsdd(folder / "audio-data")


def _train_all() -> dict:
    """Train one tiny run per family from the current folder; returns what each produced."""
    out: dict = {}
    _cli("train", "--config", "tiny", "--data", BLOBS, "--out", "runs/tok", "--steps", "6", *Q)
    out["tokenizer"] = _final(Path("runs/tok"))
    _cli("dvae", "train", "--data", BLOBS, "--out", "runs/dvae", "--steps", "6", "--model.hidden=16", "--model.res_hidden=8",
         "--model.codebook_size=16", "--model.embedding_dim=8", "--model.tau_steps=4", "--model.kl_steps=4", *Q)
    out["dvae"] = _final(Path("runs/dvae"))
    for arch, name, extra in (("pixelcnn", "pixelcnn", ["--model.channels=8", "--model.layers=2", "--model.out_hidden=16"]),
                              ("transformer", "gpt", ["--model.n_layer=1", "--model.n_embd=16", "--model.n_head=2"])):
        _cli("prior", "train", "--tokenizer", "runs/tok", "--arch", arch, "--conditional", "--out", f"runs/{name}",
             "--steps", "4", *extra, *Q)
        _cli("sample", f"runs/{name}", "-n", "6", "--seed", "3", "-o", f"{name}.png", "--save-codes", f"{name}.npy")
        out[name] = {**_final(Path(f"runs/{name}")), "samples": _sha(Path(f"{name}.npy"))}
    _cli("train", "--data", "fsdd", "--data-root", "audio-data", "--out", "runs/audio", "--steps", "4", "--model.hidden=16",
         "--model.res_hidden=8", "--model.codebook_size=16", "--model.embedding_dim=8", "--model.speaker_dim=4",
         "--model.num_downsamples=3", "--data.clip_length=512", "--data.crop=256", *Q)
    _cli("convert", "runs/audio", "audio-data/fsdd/recordings/1_alice_0.wav", "--speaker", "bob", "-o", "conv.wav")
    out["audio"] = {**_final(Path("runs/audio")), "converted": _sha(Path("conv.wav"))}
    _cli("classifier", "train", "--data", BLOBS, "--out", "runs/clf", "--steps", "3", "--model.width=4", "--model.feature_dim=8", *Q)
    out["classifier"] = _final(Path("runs/clf"))
    out.update(_train_text2image())
    out["codec"] = _codec()
    return out


def _train_text2image() -> dict:
    out = {}
    _cli("train", "--config", "tiny", "--data", "scenes:40", "--out", "runs/scenes-tok", "--steps", "3", "--model.codebook_size=16",
         "--model.num_downsamples=3", *Q)
    _cli("dalle", "train", "--tokenizer", "runs/scenes-tok", "--out", "runs/dalle", "--steps", "3", "--model.n_layer=2",
         "--model.n_embd=16", "--model.n_head=2", "--model.text_len=24", "--model.bpe_vocab=300", "--model.conv_radius=1", *Q)
    _cli("generate", "runs/dalle", CAPTION, "-n", "2", "--guidance", "2", "--seed", "1", "-o", "gen.png")
    out["dalle"] = {**_final(Path("runs/dalle")), "generated": _pixels(Path("gen.png"))}
    _cli("clip", "train", "--data", "scenes:40", "--out", "runs/clip", "--steps", "3", "--model.width=4", "--model.n_layer=1",
         "--model.n_embd=16", "--model.n_head=2", "--model.embed_dim=8", "--model.bpe_vocab=300", *Q)
    out["clip"] = _final(Path("runs/clip"))
    return out


def _codec() -> dict:
    _cli("train", "--config", "tiny", "--data", "rgb/blobs_{split}.npy", "--out", "runs/rvq", "--steps", "6",
         "--model.codebook_size=16", "--model.num_codebooks=2", "--model.codebook_layout=residual", "--model.quantizer_dropout=0.5", *Q)
    _cli("prior", "train", "--tokenizer", "runs/rvq", "--arch", "transformer", "--config", "prior-codec", "--tile", "4",
         "--out", "runs/rvq-prior", "--steps", "4", "--model.n_layer=1", "--model.n_embd=16", "--model.n_head=2", *Q)
    img = np.load("rgb/blobs_test.npy")[:2].transpose(0, 2, 3, 1).reshape(64, 32, 3)  # two blobs stacked: 64 x 32
    Image.fromarray(np.ascontiguousarray(img)).save("photo.png")
    out = {}
    for refine in (0, 2):
        for q in (1, 2):
            _cli("compress", "photo.png", "--model", "runs/rvq-prior", "--quality", str(q), "--refine", str(refine),
                 "--no-progress", "-o", f"p{q}r{refine}.vqz")
            _cli("decompress", f"p{q}r{refine}.vqz", "--model", "runs/rvq-prior", "-o", f"p{q}r{refine}.png")
            out[f"q{q}-refine{refine}"] = {"bytes": _sha(Path(f"p{q}r{refine}.vqz")), "decoded": _pixels(Path(f"p{q}r{refine}.png"))}
    return out


def _from_fixtures() -> dict:
    """What the recorded run directories give when loaded and used (``runs/`` holds copies of them)."""
    out = {}
    for name in ("tok", "dvae", "clf"):
        out[name] = json.loads(_cli("eval", f"runs/{name}", "--json"))
    for name in ("pixelcnn", "gpt"):
        out[name] = json.loads(_cli("eval", f"runs/{name}", "--json"))
        _cli("sample", f"runs/{name}", "-n", "4", "--label", "2", "--seed", "5", "-o", "s.png", "--save-codes", "s.npy")
        out[name]["samples"] = _sha(Path("s.npy"))
    out["audio"] = json.loads(_cli("eval", "runs/audio", "--json"))
    _cli("generate", "runs/dalle", CAPTION, "-n", "2", "--seed", "2", "-o", "g.png")
    out["dalle"] = _pixels(Path("g.png"))
    _cli("generate", "runs/dalle", CAPTION, "-n", "1", "--candidates", "2", "--clip", "runs/clip", "--seed", "2", "-o", "c.png")
    out["clip-reranked"] = _pixels(Path("c.png"))
    for m in out.values():
        if isinstance(m, dict):
            m.pop("run", None)
    return out


@pytest.fixture(scope="module")
def golden(tmp_path_factory):
    if not RECORD and not GOLDEN.is_file():
        pytest.fail(f"{GOLDEN} is missing: record it with VQVAE_RECORD_GOLDEN=1")
    return None if RECORD else json.loads(GOLDEN.read_text())


@pytest.fixture(scope="module")
def produced(tmp_path_factory):
    """Train every family and use the recorded run directories, in a scratch folder."""
    here = Path.cwd()
    work = tmp_path_factory.mktemp("golden")
    os.chdir(work)
    try:
        _data(work)
        trained = _train_all()
        if RECORD:
            _keep_fixture_runs(work / "runs")
        shutil.rmtree(work / "runs")
        shutil.copytree(RUNS, work / "runs")
        loaded = _from_fixtures()
    finally:
        os.chdir(here)
    result = {"trained": trained, "loaded": loaded}
    if RECORD:
        GOLDEN.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    return result


def _keep_fixture_runs(runs: Path) -> None:
    if RUNS.exists():
        shutil.rmtree(RUNS)
    for name, files in KEPT.items():
        (RUNS / name).mkdir(parents=True)
        for f in files:
            shutil.copyfile(runs / name / f, RUNS / name / f)


FAMILIES = ("tokenizer", "dvae", "pixelcnn", "gpt", "audio", "classifier", "dalle", "clip", "codec")


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_a_seeded_tiny_run_gives_the_recorded_numbers(produced, golden, family):
    if RECORD:
        pytest.skip("recording")
    assert produced["trained"][family] == golden["trained"][family]


@pytest.mark.slow
@pytest.mark.parametrize("name", ("tok", "dvae", "clf", "pixelcnn", "gpt", "audio", "dalle", "clip-reranked"))
def test_run_directories_written_before_still_load_and_agree(produced, golden, name):
    if RECORD:
        pytest.skip("recording")
    assert produced["loaded"][name] == golden["loaded"][name]
