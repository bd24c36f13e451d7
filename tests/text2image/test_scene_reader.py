"""The scene reader and prompt faithfulness: label layout against a hand-written oracle, scoring, training, and the CLI."""

from __future__ import annotations

import json

import pytest
import torch

from vqvae.text2image import evaluate as dalle_eval

from vqvae.text2image import loading
from vqvae.data import scenes
from vqvae.cli import main
from vqvae.core.errors import DataError
from vqvae.registry import create_model
from vqvae.text2image.scene_reader import SceneReaderConfig


def test_slot_labels_put_each_object_in_its_slot():
    # object 0: a big red (0) 3 in the bottom half (cell 1); object 1: a small blue (2) sneaker (17) on top (cell 0)
    attrs = torch.tensor([[[3, 0, 1, 1], [17, 2, 0, 0]],
                          # object 0: a small green (1) 0 on the left (cell 2); object 1: a big cyan (5) bag (18) on the right (3)
                          [[0, 1, 0, 2], [18, 5, 1, 3]]])
    assert scenes.slot_labels(attrs).tolist() == [[0, 17, 2, 0, 3, 0, 1], [1, 0, 1, 0, 18, 5, 1]]
    assert [n for n, _ in scenes.HEADS] == ["layout", "class0", "colour0", "size0", "class1", "colour1", "size1"]


def test_attribute_accuracy_counts_a_sample_only_when_every_attribute_is_right():
    attrs = torch.tensor([[[3, 0, 1, 1], [17, 2, 0, 0]]]).repeat(4, 1, 1)
    pred = scenes.slot_labels(attrs)
    pred[1, 2] = 4  # a wrong colour
    pred[2, 0] = 1  # a wrong layout
    acc = scenes.attribute_accuracy(pred, attrs)
    assert acc["all"] == 0.5 and acc["position"] == 0.75 and acc["colour"] == 7 / 8 and acc["class"] == 1.0 and acc["size"] == 1.0
    assert acc["class_by_class"] == {"3": 1.0, "sneaker": 1.0}
    pred[0, 1] = 5  # the sneaker (cell 0: slot 0, head 1) misread as a 5
    pred[3, 4] = 0  # a 3 (cell 1: slot 1, head 4) misread as a 0
    assert scenes.class_accuracy(pred, attrs) == {"3": 0.75, "sneaker": 0.75}


def test_reader_shapes_and_read():
    reader = create_model("scene-reader", SceneReaderConfig(width=4, feature_dim=8))
    x = torch.randint(0, 256, (3, 3, 64, 64), dtype=torch.uint8)
    logits = reader(x)
    assert logits.shape == (3, sum(n for _, n in scenes.HEADS))
    pred = reader.read(x)
    assert pred.shape == (3, len(scenes.HEADS)) and all(int(pred[:, i].max()) < n for i, (_, n) in enumerate(scenes.HEADS))
    with pytest.raises(ValueError, match="64, 64"):
        reader(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))


def _reader(seed: int):
    torch.manual_seed(seed)
    return create_model("scene-reader", SceneReaderConfig(width=4, feature_dim=8)).eval()


def test_reader_ensemble_sums_log_probabilities_over_the_joint_layout():
    from vqvae.text2image.scene_reader import ReaderEnsemble

    x = torch.randint(0, 256, (6, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(123))
    a, b = _reader(0), _reader(1)
    # the reader's own layout, passed back in, changes nothing
    assert torch.equal(a(x, side=a.read_layout(x).argmax(1)), a(x))
    # a member that knows nothing (zero final layers: uniform heads) leaves the other's reading as it was
    blank = _reader(2)
    for lin in (blank.layout[-1], blank.head[-1]):
        torch.nn.init.zeros_(lin.weight), torch.nn.init.zeros_(lin.bias)
    assert torch.equal(ReaderEnsemble([a, blank]).read(x), a.read(x))
    # oracle, computed by hand: joint layout from the summed layout log-probs, then each head's summed log-probs
    # with both members reading the halves of that layout
    side = (a.read_layout(x).log_softmax(1) + b.read_layout(x).log_softmax(1)).argmax(1)
    heads = [ha.log_softmax(1) + hb.log_softmax(1) for ha, hb in zip(a.split(a(x, side=side)), b.split(b(x, side=side)))]
    want = torch.stack([side] + [h.argmax(1) for h in heads[1:]], 1)
    assert torch.equal(ReaderEnsemble([a, b]).read(x, batch_size=4), want)
    assert not torch.equal(want, a.read(x)) and not torch.equal(want, b.read(x))  # the oracle tells the ensemble from either member
    with pytest.raises(ValueError, match="at least one"):
        ReaderEnsemble([])


def test_load_reader_reads_a_list_of_runs_as_an_ensemble(reader_run):
    from vqvae.text2image.scene_reader import ReaderEnsemble

    ens = loading.load_reader([reader_run, reader_run])
    assert isinstance(ens, ReaderEnsemble)
    x = torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8)
    assert torch.equal(ens.read(x), loading.load_reader(reader_run).read(x))  # twice the same reader reads as one


def test_reader_reads_each_slot_from_its_own_half():
    # oracle: the layout head picks top/bottom or left/right halves, and each slot's logits are the object net's on that half
    torch.manual_seed(0)
    reader = create_model("scene-reader", SceneReaderConfig(width=4, feature_dim=8)).eval()
    x = torch.randint(0, 256, (6, 3, 64, 64), dtype=torch.uint8)
    with torch.no_grad():
        logits = reader(x)
        f = x.float() / 255 - 0.5
        n_obj = sum(n for _, n in scenes.HEADS[1:4])
        for i in range(6):
            side = int(reader.layout(f[i : i + 1]).argmax())
            halves = (f[i : i + 1, :, :32], f[i : i + 1, :, 32:]) if side == 0 else (f[i : i + 1, ..., :32], f[i : i + 1, ..., 32:])
            for slot, half in enumerate(halves):
                torch.testing.assert_close(logits[i, 2 + slot * n_obj : 2 + (slot + 1) * n_obj], reader.read_object(half)[0])
        # what lies in slot 1's half never changes slot 0's reading: repaint the bottom-right quarter (in the bottom and the right half)
        y = x.clone()
        y[:, :, 32:, 32:] = 0
        again = reader(y)
        same = again[:, :2].argmax(1) == logits[:, :2].argmax(1)
        assert same.any()
        torch.testing.assert_close(again[same, 2 : 2 + n_obj], logits[same, 2 : 2 + n_obj])
        assert not torch.allclose(again[same, 2 + n_obj :], logits[same, 2 + n_obj :])


@pytest.fixture(scope="module")
def reader_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("reader") / "r"
    try:
        code = main(["classifier", "train", "--data", "scenes:40", "--out", str(run), "--steps", "40", "--no-progress", "--model.width=4",
                     "--model.feature_dim=32", "--model.dropout=0", "--train.batch_size=40", "--train.eval_images=8", "--train.warmup_steps=0",
                     "--train.log_every=5"])
    except DataError as e:
        pytest.skip(f"scenes need MNIST and Fashion-MNIST: {e}")
    assert code == 0
    return run


def test_reader_trains_through_the_classifier_command(reader_run, capsys):
    cfg = json.loads((reader_run / "config.json").read_text())
    assert cfg["arch"] == "scene-reader" and cfg["data"]["label"] == "attributes"
    rows = [json.loads(line) for line in (reader_run / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if r["kind"] == "train"]
    assert losses[-1] < 0.7 * losses[0]  # it learns the 40 training scenes
    assert main(["eval", str(reader_run), "--split", "heldout", "--json"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert set(m) >= {"accuracy", "acc_layout", "acc_class0", "acc_colour1"} and 0 <= m["accuracy"] <= 1


def test_faithfulness_of_a_tiny_dalle(reader_run, tmp_path, capsys):
    tok, run = tmp_path / "tok", tmp_path / "dalle"
    assert main(["train", "--config", "tiny", "--data", "scenes:40", "--out", str(tok), "--steps", "2", "--no-progress",
                 "--train.eval_images=8", "--model.codebook_size=16", "--model.num_downsamples=3"]) == 0
    assert main(["dalle", "train", "--tokenizer", str(tok), "--out", str(run), "--steps", "2", "--no-progress", "--model.n_layer=1",
                 "--model.n_embd=16", "--model.n_head=2", "--model.text_len=16", "--model.bpe_vocab=300", "--model.conv_radius=1",
                 "--train.batch_size=8", "--train.eval_images=8"]) == 0
    capsys.readouterr()
    assert main(["eval", str(run), "--classifier", str(reader_run), "--split", "heldout", "-n", "8", "--guidance", "2", "--json"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["samples"] == 8 and m["prompts"] == 2 and 0 <= m["all"] <= min(m["class"], m["colour"], m["size"], m["position"]) + 1e-9
    # reranked by the transformer's likelihood: the same eight samples kept, the unranked draw reported beside them
    assert main(["eval", str(run), "--classifier", str(reader_run), "--split", "heldout", "-n", "8", "--guidance", "2", "--candidates", "2",
                 "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["samples"] == 8 and r["unranked"]["samples"] == 16 and r["reranker"] == "likelihood"
    from vqvae.text2image.loading import load_dalle

    _, model, text, tok_model = load_dalle(run)  # oracle: the same seeded draw, its kept and all samples read directly
    reader = loading.load_reader(reader_run)
    caps, attrs = dalle_eval.prompts(40, "heldout", 2)
    acc, images = dalle_eval.faithfulness(model, text, tok_model, reader, caps, attrs, 4, guidance=2.0, seed=0, candidates=2)
    d = dalle_eval.draw(model, text, tok_model, caps, 4, guidance=2.0, seed=0, candidates=2)
    assert torch.equal(images, d.images)
    assert acc["all"] == scenes.attribute_accuracy(reader.read(d.images), attrs.repeat_interleave(4, 0))["all"]
    assert acc["unranked"]["all"] == scenes.attribute_accuracy(reader.read(d.candidates), attrs.repeat_interleave(8, 0))["all"]
    assert main(["eval", str(run), "--classifier", str(reader_run), "--split", "heldout", "-n", "8", "--clip", str(run)]) == 2
    assert "not a CLIP" in capsys.readouterr().err
    assert main(["eval", str(run), "--split", "heldout"]) == 2  # no reader
    assert "scene reader" in capsys.readouterr().err
    assert main(["eval", str(run), "--classifier", str(tok)]) == 2  # a tokenizer is not a reader
    assert "not a scene reader" in capsys.readouterr().err


def test_held_out_prompts_name_an_unseen_pair():
    try:
        caps, attrs = dalle_eval.prompts(40, "heldout", 3)
    except DataError as e:
        pytest.skip(f"scenes need MNIST and Fashion-MNIST: {e}")
    held = scenes.held_out_pairs()
    assert len(caps) == 3 and all(any((int(c), int(k)) in held for k, c, _, _ in a) for a in attrs)


def test_scenes_pick_their_presets():
    from vqvae.scoring.handlers import classifier_preset
    from vqvae.core.config import preset_for

    assert preset_for("scenes") == preset_for("scenes:500") == "scenes"
    assert classifier_preset("scenes:500") == "scene-reader" and classifier_preset("mnist") == "classifier"


def test_prompt_grid_is_written(tmp_path):
    from vqvae.text2image import plots as t2i_plots

    ims = torch.randint(0, 256, (3, 3, 64, 64), dtype=torch.uint8)
    t2i_plots.save_prompt_grid([("a red 3 above a blue 7", ims), ("a small green bag left of a big cyan 0", ims[:2])], tmp_path / "g.png",
                           marks=[[True, False, True], [False, True]])
    from PIL import Image

    assert Image.open(tmp_path / "g.png").size[0] > 3 * 64


def test_reader_trains_on_every_pair_plus_a_tokenizers_reconstructions(tmp_path):
    from vqvae.core import checkpoint
    from vqvae.core import config
    from vqvae.core.errors import ConfigError
    from vqvae.core.task import load_split

    tok = tmp_path / "tok"
    try:
        assert main(["train", "--config", "tiny", "--data", "scenes:40", "--out", str(tok), "--steps", "2", "--no-progress",
                     "--train.eval_images=8", "--model.codebook_size=16", "--model.num_downsamples=3"]) == 0
    except DataError as e:
        pytest.skip(f"scenes need MNIST and Fashion-MNIST: {e}")
    plain = load_split(config.load_config("scene-reader", "scenes:40"), "train")
    both = load_split(config.load_config("scene-reader", "scenes:40", [f"--data.reconstructions_from={tok}"]), "train")
    real = scenes.scene_split(40, "reader")
    assert torch.equal(plain.images, real.images) and torch.equal(plain.labels, scenes.slot_labels(real.attrs))
    assert torch.equal(both.images[:40], real.images) and torch.equal(both.labels, torch.cat([plain.labels, plain.labels]))
    _, model = checkpoint.load_run(tok)
    with torch.no_grad():  # oracle: the model's own encode -> decode (64 is a multiple of its downsampling, so no padding)
        assert torch.equal(both.images[40:], model.eval().decode(model.encode(real.images)))
    test = load_split(config.load_config("scene-reader", "scenes:40", [f"--data.reconstructions_from={tok}"]), "test")
    assert len(test.images) == 10  # evaluation stays on the real test scenes
    with pytest.raises(ConfigError, match="reconstructions_from"):
        config.load_config(None, "mnist", [f"--data.reconstructions_from={tok}"])  # a VQ-VAE run, not a classifier
