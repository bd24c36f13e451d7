"""The BPE text tokenizer for DALL-E: training, fixed length with per-position padding, bad prompts, save/load."""

from __future__ import annotations

import pytest

from vqvae.core.errors import VQVAEError
from vqvae.text2image.text import TextTokenizer
from vqvae.data.captioned import coco_captions

CAPTIONS = ["a red 3 above a small blue sneaker", "a green 7 left of a big yellow bag", "a blue 1 below a red 5"] * 20


@pytest.fixture(scope="module")
def tok():
    return TextTokenizer.train(CAPTIONS, vocab_size=300, text_len=12)


def test_round_trip_and_padding(tok):
    ids = tok.encode("A red 3 above a blue 7")
    assert ids.shape == (12,) and ids.dtype.is_floating_point is False
    n = int((ids < tok.vocab_size).sum())
    assert ids[n:].tolist() == [tok.vocab_size + i for i in range(n, 12)]  # one padding token per position
    assert tok.decode(ids) == "a red 3 above a blue 7"
    assert tok.total_size == tok.vocab_size + 12


def test_unseen_words_still_tokenize_and_long_prompts_truncate(tok):
    wide = TextTokenizer(tok.tok, 64)
    ids = wide.encode("zebra quokka ünïcödé 🦓")
    assert int(ids.max()) < wide.total_size and wide.decode(ids) == "zebra quokka ünïcödé 🦓"
    with pytest.warns(UserWarning, match="only the first 12"):
        ids = tok.encode("a red 3 above a blue 7 " * 5)
    assert ids.shape == (12,) and int(ids.max()) < tok.vocab_size
    for bad in ("", "   ", None):
        with pytest.raises(VQVAEError, match="empty"):
            tok.encode(bad)


def test_save_load(tok, tmp_path):
    tok.save(tmp_path / "text.json")
    again = TextTokenizer.load(tmp_path / "text.json")
    assert again.text_len == 12 and again.encode("a red 3").tolist() == tok.encode("a red 3").tolist()
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(VQVAEError, match="not a text tokenizer"):
        TextTokenizer.load(tmp_path / "bad.json")
    with pytest.raises(VQVAEError, match="no text tokenizer"):
        TextTokenizer.load(tmp_path / "none.json")


def test_coco_mini_captions_train_a_bpe():
    try:
        items = coco_captions(split="train")
    except Exception:
        pytest.skip("COCO-mini not available")
    assert len(items) == 80 and all(len(c) == 5 for _, c in items)
    tok = TextTokenizer.train([c for _, cs in items for c in cs], vocab_size=512, text_len=32)
    ids = tok.encode(items[0][1][0])
    assert tok.decode(ids) == items[0][1][0].lower().strip()
