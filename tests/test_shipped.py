"""The models that ship (vqvae/zoo), used end to end as a new user would, right after install.

Each model's card gives the figures checked here; a model that is not in this checkout is skipped with the reason.
"""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from vqvae.cli import main
from vqvae.core import checkpoint, zoo
from vqvae.core.task import tokenizer_task
from vqvae.priors import codes
from vqvae.scoring.scores import label_accuracy

SHIPPED = set(zoo.names())


def needs(name: str):
    return pytest.mark.skipif(name not in SHIPPED, reason=f"zoo:{name} does not ship in this checkout")


def test_vqvae_zoo_lists_every_shipped_model(capsys):
    assert main(["zoo", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == sorted(SHIPPED)
    assert all(r["size_mb"] > 0 and r["data"] and r["headline"] for r in rows)


@needs("fashion-mnist")
def test_fashion_mnist_samples_are_recognised_by_the_shipped_classifier(tmp_path):
    """``vqvae sample zoo:fashion-mnist --label 3`` draws a grid; the shipped classifier reads 10 samples of each class
    as their class about as often as the card says (its figure is over 1000 samples: a margin for 100)."""
    headline = zoo.manifest("fashion-mnist")["headline"]
    assert main(["sample", "zoo:fashion-mnist", "--label", "3", "-n", "16", "-o", str(tmp_path / "dresses.png")]) == 0
    with Image.open(tmp_path / "dresses.png") as im:
        assert im.size == ((8 * 30 + 2) * 2, (2 * 30 + 2) * 2)  # 16 samples of 28 px, 8 a row, scaled x2
    cfg, prior, tok_cfg, tok = codes.load_prior(zoo.resolve("zoo:fashion-mnist"))
    labels = torch.arange(10).repeat_interleave(10)
    z = prior.sample(100, labels, generator=torch.Generator().manual_seed(0))
    images = tokenizer_task(tok_cfg.arch, "zoo:fashion-mnist/tokenizer").decode(tok, z)
    _, clf = checkpoint.load_run("zoo:fashion-mnist/classifier")
    acc = label_accuracy(clf, images, labels)
    assert acc >= headline["sample accuracy"] - 0.12, acc


def test_an_unknown_zoo_name_is_a_one_line_error(capsys):
    assert main(["eval", "zoo:no-such-model"]) == 2
    err = capsys.readouterr().err
    assert "no zoo model 'no-such-model'; the zoo has: " in err and err.count("\n") == 1


KODAK_CHECKED = ("kodim04", "kodim23")  # two of the card's images: a portrait and the parrots


def _card_rows(card: str) -> dict[str, list[tuple[int, float]]]:
    """The card's per-image table (written by ``benchmarks/bench_codec.py --card``): image -> [(bytes, PSNR)] by quality."""
    section = card.split("<!-- kodak_per_image:start -->", 1)[1].split("<!-- kodak_per_image:end -->", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0].startswith("kodim"):
            rows[cells[0]] = [(int(cells[i]), float(cells[i + 1])) for i in range(1, len(cells), 2)]
    return rows


@needs("coco-rvq4")
def test_the_codec_reproduces_its_cards_kodak_figures(tmp_path):
    """``vqvae compress --refine 0`` at every quality on two Kodak images: the files are exactly the card's size (the
    coding is deterministic) and decode to the card's PSNR within 0.01 dB; the CLI writes the same bytes as the API."""
    from vqvae.codec import load_codec
    from vqvae.data.images import read_image
    from vqvae.data.roots import data_roots
    from vqvae.image.metrics import mse_per_image, psnr_from_mse

    found = [r / "kodak" for r in data_roots(None) if (r / "kodak" / "kodim04.png").is_file()]
    if not found:
        pytest.skip("Kodak is not under any data root (../shared/data/kodak)")
    card = _card_rows((zoo.ZOO / "coco-rvq4" / zoo.CARD).read_text())
    codec = load_codec("coco-rvq4")
    assert len(card) == 24 and all(len(v) == codec.levels for v in card.values())
    for name in KODAK_CHECKED:
        x = read_image(found[0] / f"{name}.png", 3)
        for q, (size, psnr) in enumerate(card[name], start=1):
            data, _ = codec.compress(x, q, refine=0)
            y = codec.decompress(data)
            assert len(data) == size, (name, q)
            assert abs(psnr_from_mse(float(mse_per_image(x[None], y[None])[0])) - psnr) < 0.01, (name, q)
    out = tmp_path / "k.vqz"
    assert main(["compress", str(found[0] / "kodim23.png"), "-o", str(out), "--quality", "1", "--refine", "0"]) == 0
    assert out.stat().st_size == card["kodim23"][0][0]


@needs("fsdd")
def test_fsdd_converts_a_shipped_example_into_another_voice(tmp_path):
    """``vqvae convert zoo:fsdd EXAMPLE --speaker S``: a wav of the input's length at the model's rate, which the
    shipped speaker classifier (trained on recordings only) finds more like S than the same clip reconstructed in
    its own voice, on average over the shipped examples."""
    from vqvae.audio import inference
    from vqvae.audio.conversion import read_clip
    from vqvae.data.audio import read_wav

    examples = sorted((zoo.resolve("zoo:fsdd").parent / "examples").glob("*.wav"))
    assert len(examples) == 3
    cfg, model = checkpoint.load_run("zoo:fsdd")
    _, spk = checkpoint.load_run("zoo:fsdd/speaker-classifier")
    gain = []
    for ex in examples:
        source = ex.stem.split("_")[1]
        target = next(s for s in cfg.model.speakers if s != source)
        out = tmp_path / f"{ex.stem}-to-{target}.wav"
        assert main(["convert", "zoo:fsdd", str(ex), "--speaker", target, "-o", str(out)]) == 0
        y, rate, _ = read_wav(out)
        x, t = read_clip(str(ex), cfg)
        assert rate == cfg.model.sample_rate and len(y) == t
        own = inference.convert(model, x, torch.tensor([cfg.model.speakers.index(source)]))[:, :, :t]
        conv = torch.from_numpy(y)[None, None]
        t_id = cfg.model.speakers.index(target)  # the classifier's labels are the dataset's speakers, as the model's
        with torch.no_grad():
            lp = [torch.log_softmax(spk(w), -1)[0, t_id] for w in (conv, own)]
        gain.append(float(lp[0] - lp[1]))
    assert sum(gain) / len(gain) > 0, gain


@needs("scenes")
def test_a_generated_scene_is_read_back_by_the_shipped_reader(tmp_path, capsys):
    """``vqvae generate zoo:scenes CAPTION`` draws with the settings the card measured (guidance, temperature, the best
    of several by the shipped CLIP); the shipped scene reader finds every attribute of their captions in about the
    card's share of such samples on seen combinations (its figure is over 400 samples: a margin for 32)."""
    from vqvae.data import scenes
    from vqvae.text2image import evaluate as t2i
    from vqvae.text2image.loading import load_clip, load_dalle, load_reader

    m = zoo.manifest("scenes")
    rec = m["sampling"]
    out = tmp_path / "scene.png"
    assert main(["generate", "zoo:scenes", "a red 3 above a small blue sneaker", "-n", "4", "-o", str(out)]) == 0
    said = capsys.readouterr().out
    assert f"guidance {rec['guidance']:g}, temperature {rec['temperature']:g}, the best 4 of {4 * rec['candidates']} by CLIP" in said
    with Image.open(out) as im:
        assert im.size == (4 * 66 + 2, 66 + 2) and im.mode == "RGB"  # 4 scenes of 64 px in a row
    _, model, text, tok = load_dalle(zoo.resolve("zoo:scenes"))
    test = scenes.make_scenes(8, "test", seed=7)
    acc, images = t2i.faithfulness(model.eval(), text, tok, load_reader(zoo.resolve("zoo:scenes/reader")), test.captions,
                                   test.attrs, per_prompt=4, guidance=rec["guidance"], temperature=rec["temperature"],
                                   candidates=rec["candidates"], clip=load_clip(zoo.resolve("zoo:scenes/clip")))
    assert images.shape == (32, 3, 64, 64)
    assert acc["all"] >= m["headline"]["faithful, seen"] - 0.2, acc


@pytest.mark.slow
def test_the_wheel_carries_the_zoo_and_the_page(tmp_path):
    """``pip install .`` installs what the zoo and ``vqvae serve`` need: every shipped file is in the wheel."""
    import subprocess
    import sys
    import zipfile
    from pathlib import Path

    pytest.importorskip("setuptools", reason="building the wheel without network needs setuptools in this environment")
    repo = Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", str(repo), "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    (wheel,) = tmp_path.glob("vqvae-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {str(p.relative_to(repo)) for p in (repo / "vqvae" / "zoo").rglob("*") if p.is_file()}
    assert shipped and shipped <= names, sorted(shipped - names)[:5]
    assert "vqvae/serve/static/index.html" in names
