"""CLIP, the reranker: its loss against a hand-written InfoNCE, padding and batch independence, learning, bad input."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vqvae.core.errors import ConfigError
from vqvae.text2image.clip import Clip, ClipConfig


def tiny(**kw):
    base = dict(text_vocab=30, text_len=6, in_channels=3, image_size=16, width=4, n_layer=1, n_head=2, n_embd=16, embed_dim=8)
    base.update(kw)
    torch.manual_seed(0)
    return Clip(ClipConfig(**base))


def pairs(m, b=4, seed=1):
    g = torch.Generator().manual_seed(seed)
    c = m.config
    x = torch.randint(0, 256, (b, 3, c.image_size, c.image_size), generator=g, dtype=torch.uint8)
    words = torch.randint(0, c.text_vocab - c.text_len, (b, c.text_len), generator=g)
    lengths = torch.randint(1, c.text_len + 1, (b,), generator=g)
    pad = torch.arange(c.text_vocab - c.text_len, c.text_vocab).expand(b, -1)
    text = torch.where(torch.arange(c.text_len)[None] < lengths[:, None], words, pad)
    return x, text


def test_loss_is_the_symmetric_infonce_of_cosine_similarities():
    m = tiny().eval()
    x, text = pairs(m)
    out = m(x, text)
    img, txt = m.encode_image(x), m.encode_text(text)
    torch.testing.assert_close(img.norm(dim=1), torch.ones(4))
    logits = m.log_scale.exp() * img @ txt.T
    torch.testing.assert_close(out.logits, logits)
    want = (F.cross_entropy(logits, torch.arange(4)) + F.cross_entropy(logits.T, torch.arange(4))) / 2
    torch.testing.assert_close(out.loss, want)
    torch.testing.assert_close(m.score(x, text), (img * txt).sum(1))
    torch.testing.assert_close(m.log_scale.exp(), torch.tensor(1 / 0.07))


def test_padding_is_ignored_and_scores_do_not_depend_on_the_batch():
    m = tiny().eval()
    x, text = pairs(m, 5)
    solo = torch.stack([m.score(x[i : i + 1], text[i : i + 1])[0] for i in range(5)])
    torch.testing.assert_close(m.score(x, text), solo, atol=1e-5, rtol=1e-5)
    # a caption's padded positions are masked: what a padded position's embedding holds changes nothing
    short = text.clone()
    short[:, 2:] = torch.arange(m.config.text_vocab - m.config.text_len, m.config.text_vocab)[2:]
    before = m.encode_text(short)
    with torch.no_grad():
        m.tok_emb.weight[m.config.text_vocab - m.config.text_len + 2 :] += 5.0
    torch.testing.assert_close(m.encode_text(short), before)


def test_it_learns_to_match_pairs():
    m = tiny()
    x, text = pairs(m, 8, seed=3)
    opt = torch.optim.Adam(m.parameters(), 3e-3)
    first = m(x, text).loss.item()
    for _ in range(150):
        out = m(x, text)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    m.eval()
    assert m(x, text).loss.item() < first / 4
    assert m(x, text).accuracy.item() == 1.0


def test_bad_input_and_config():
    m = tiny()
    x, text = pairs(m)
    with pytest.raises(ValueError, match="expected uint8 images"):
        m(x[:, :1], text)
    with pytest.raises(ValueError, match="another text tokenizer"):
        m(x, text + m.config.text_vocab)
    with pytest.raises(ConfigError):
        ClipConfig(text_vocab=10, text_len=16).validate()
    with pytest.raises(ConfigError):
        ClipConfig(text_vocab=100, image_size=40).validate()
