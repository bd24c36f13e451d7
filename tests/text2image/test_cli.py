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
    from vqvae.core import checkpoint

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
                      (["generate", str(run), "a red 3", "-n", "0", "-o", str(out)], "-n (images per caption) and --candidates must be"),
                      (["dalle", "train", "--tokenizer", str(tok), "--data", "mnist", "--out", str(tmp_path / "x")], "captioned images")]:
        capsys.readouterr()
        assert main(argv) == 2, argv
        assert msg in capsys.readouterr().err


def test_reranking_keeps_the_best_scored_candidates(runs, tmp_path, capsys):
    from vqvae.image import inference
    from vqvae.text2image import evaluate as dalle_eval
    from vqvae.text2image.loading import load_dalle

    _, _, run = runs
    _, model, text, tok = load_dalle(run)
    caps = ["a red 3 above a small blue sneaker", "a green 7 left of a big yellow bag"]
    d = dalle_eval.draw(model, text, tok, caps, per_prompt=2, guidance=2.0, candidates=3, seed=4)
    assert d.images.shape[0] == 4 and d.candidates.shape[0] == d.codes.shape[0] == d.scores.shape[0] == 12
    assert torch.equal(d.images, d.candidates[d.kept])
    ids = torch.stack([text.encode(c, warn=False) for c in caps])
    torch.testing.assert_close(d.scores, model.image_log_prob(ids.repeat_interleave(6, 0), d.codes))  # recomputed in one batch
    for i in range(2):  # each caption keeps its own two best of six
        own = d.kept[2 * i : 2 * i + 2]
        assert ((own >= 6 * i) & (own < 6 * i + 6)).all()
        rest = [j for j in range(6 * i, 6 * i + 6) if j not in own.tolist()]
        assert d.scores[own].min() >= d.scores[rest].max()
    assert (inference.decode(tok, d.codes[d.kept]).int() - d.images.int()).abs().max() <= 1
    plain = dalle_eval.draw(model, text, tok, caps, per_prompt=2, guidance=2.0, seed=4)  # one candidate: the sampler's draw as is
    want = model.generate(ids.repeat_interleave(2, 0), guidance=2.0, generator=torch.Generator().manual_seed(4))
    assert torch.equal(plain.codes, want) and plain.scores.numel() == 0 and torch.equal(plain.kept, torch.arange(4))
    out = tmp_path / "r.png"
    assert main(["generate", str(run), caps[0], "-n", "2", "--candidates", "3", "-o", str(out)]) == 0
    assert out.is_file() and "the best 2 of 6" in capsys.readouterr().out
    assert main(["generate", str(run), caps[0], "--candidates", "0", "-o", str(out)]) == 2
    assert "and --candidates must be >= 1" in capsys.readouterr().err


def test_clip_trains_on_the_train_split_and_reranks(runs, tmp_path, capsys):
    from vqvae.text2image import evaluate as dalle_eval
    from vqvae.text2image import loading
    from vqvae.text2image.loading import load_dalle

    _, tok, run = runs
    clip_run = tmp_path / "clip"
    assert main(["clip", "train", "--data", "scenes:40", "--out", str(clip_run), "--steps", "2", "--no-progress", "--train.batch_size=8",
                 "--train.eval_images=16", "--model.width=4", "--model.n_embd=16", "--model.n_head=2", "--model.n_layer=1",
                 "--model.bpe_vocab=300", f"--data.reconstructions_from={tok}"]) == 0
    assert "on 80 captioned images" in capsys.readouterr().out  # 40 scenes and the tokenizer's reconstructions of them
    final = json.loads((clip_run / "eval.json").read_text())
    assert 0 <= final["accuracy"] <= 1 and final["batch"] == 8 and final["loss"] > 0
    clip = loading.load_clip(clip_run)
    _, model, text, tok_model = load_dalle(run)
    caps = ["a red 3 above a small blue sneaker", "a green 7 left of a big yellow bag"]
    d = dalle_eval.draw(model, text, tok_model, caps, per_prompt=1, candidates=3, seed=2, clip=clip)
    assert d.images.shape[0] == 2
    torch.testing.assert_close(d.scores, clip.score(d.candidates, [c for c in caps for _ in range(3)]))
    for i in range(2):
        assert d.scores[d.kept[i]] == d.scores[3 * i : 3 * i + 3].max()
    out = tmp_path / "c.png"
    assert main(["generate", str(run), caps[0], "-n", "2", "--candidates", "2", "--clip", str(clip_run), "-o", str(out)]) == 0
    assert "the best 2 of 4 by CLIP" in capsys.readouterr().out
    for argv, msg in [(["generate", str(run), caps[0], "--clip", str(clip_run), "-o", str(out)], "pass --candidates"),
                      (["generate", str(run), caps[0], "--candidates", "2", "--clip", str(run), "-o", str(out)], "not a CLIP"),
                      (["clip", "train", "--data", "scenes:40", "--out", str(clip_run)], "already holds a run")]:
        assert main(argv) == 2, argv
        assert msg in capsys.readouterr().err


def test_coco_captions_train_a_smoke_run(tmp_path):
    """COCO-mini: photos through DALL-E's stage-2 crop, one example per (photo, caption); a smoke test, not quality."""
    from vqvae.data.captioned import captioned_split
    from vqvae.core.errors import DataError

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
