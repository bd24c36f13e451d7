"""DALL-E end to end on a few captioned scenes: tokenizer, transformer training, generation, and their errors."""

from __future__ import annotations

import json

import pytest
import torch

from vqvae.cli import main


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("dalle")
    tok = root / "tok"
    try:
        assert main(["train", "--config", "tiny", "--data", "scenes:40", "--out", str(tok), "--steps", "3", "--no-progress",
                     "--train.eval_images=8", "--model.codebook_size=16", "--model.num_downsamples=3"]) == 0
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"scenes need MNIST and Fashion-MNIST: {e}")
    run = root / "dalle"
    assert main(["dalle", "train", "--tokenizer", str(tok), "--out", str(run), "--steps", "3", "--no-progress", "--model.n_layer=2",
                 "--model.n_embd=16", "--model.n_head=2", "--model.text_len=24", "--model.bpe_vocab=300", "--model.conv_radius=1",
                 "--train.batch_size=8", "--train.eval_images=8"]) == 0
    return root, tok, run


def test_training_writes_a_run_with_its_text_tokenizer(runs):
    _, _, run = runs
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["arch"] == "dalle" and (cfg["model"]["height"], cfg["model"]["width"]) == (8, 8)
    assert (run / "text.json").is_file() and (run / "model.safetensors").is_file()
    final = json.loads((run / "eval.json").read_text())
    assert final["image_loss"] > 0 and final["text_loss"] > 0


def test_fine_tuning_on_other_captions_keeps_the_source_text_tokenizer(runs, tmp_path):
    from vqvae import checkpoint

    _, tok, run = runs
    ft = tmp_path / "ft"
    # other data (more scenes, so other captions) would train another BPE; the source's token ids index its embeddings
    assert main(["dalle", "train", "--tokenizer", str(tok), "--data", "scenes:60", "--out", str(ft), "--steps", "1", "--no-progress",
                 f"--train.init_from={run}", "--model.n_layer=2", "--model.n_embd=16", "--model.n_head=2", "--model.text_len=24",
                 "--model.bpe_vocab=300", "--model.conv_radius=1", "--train.batch_size=8", "--train.eval_images=8"]) == 0
    assert (ft / "text.json").read_text() == (run / "text.json").read_text()
    assert checkpoint.load_config(ft).model == checkpoint.load_config(run).model


def test_generate_and_its_errors(runs, tmp_path, capsys):
    _, tok, run = runs
    out = tmp_path / "g.png"
    assert main(["generate", str(run), "a red 3 above a small blue sneaker", "-n", "2", "--guidance", "2", "-o", str(out)]) == 0
    assert out.is_file()
    assert main(["generate", str(run), "a zyzzyva " * 20, "-n", "1", "-o", str(out)]) == 0  # unseen words, truncated with a warning
    assert "only the first 24" in capsys.readouterr().out
    for argv, msg in [(["generate", str(run), "  ", "-o", str(out)], "prompt is empty"),
                      (["generate", str(tok), "a red 3", "-o", str(out)], "not a prior"),
                      (["generate", str(run), "a red 3", "-n", "0", "-o", str(out)], "-n must be"),
                      (["dalle", "train", "--tokenizer", str(tok), "--data", "mnist", "--out", str(tmp_path / "x")], "captioned images")]:
        capsys.readouterr()
        assert main(argv) == 2, argv
        assert msg in capsys.readouterr().err


def test_coco_captions_train_a_smoke_run(tmp_path):
    """COCO-mini: photos through DALL-E's stage-2 crop, one example per (photo, caption); a smoke test, not quality."""
    from vqvae.captioned import captioned_split
    from vqvae.errors import DataError

    try:
        images, caps = captioned_split("coco", "test", target=32)
    except DataError as e:
        pytest.skip(f"COCO-mini not here: {e}")
    assert images.shape[1:] == (3, 32, 32) and images.dtype == torch.uint8 and len(caps) == images.shape[0] >= 5 * 70
    again, _ = captioned_split("coco", "test", target=32)
    assert torch.equal(images, again)  # seeded crops
    tok, run = tmp_path / "tok", tmp_path / "dalle"
    assert main(["train", "--config", "tiny", "--data", "coco-mini-captions", "--data.image_size=48", "--data.channels=3", "--data.crop=32", "--data.augment=dalle", "--out", str(tok),
                 "--steps", "2", "--no-progress", "--train.eval_images=4", "--model.codebook_size=16", "--model.num_downsamples=2"]) == 0
    assert main(["dalle", "train", "--tokenizer", str(tok), "--data", "coco", "--out", str(run), "--steps", "2", "--no-progress",
                 "--model.n_layer=1", "--model.n_embd=16", "--model.n_head=2", "--model.text_len=24", "--model.bpe_vocab=300",
                 "--model.conv_radius=1", "--train.batch_size=8", "--train.eval_images=8"]) == 0
    assert main(["generate", str(run), "a cat on a sofa", "-n", "2", "-o", str(tmp_path / "g.png")]) == 0
