"""DALL-E's transformer: cache == recompute, per-layer sparse masks, loss weights, guidance, bad input."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vqvae.core.errors import ConfigError
from vqvae.text2image.dalle import Dalle, DalleConfig


def model(seed=0, **kw):
    base = dict(text_vocab=20, text_len=5, image_vocab=7, height=3, width=4, n_layer=3, n_head=2, n_embd=16, conv_radius=1,
                caption_dropout=0.0)
    base.update(kw)
    torch.manual_seed(seed)
    m = Dalle(DalleConfig(**base)).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.3)
    return m


def batch(m, b=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    c = m.config
    return (torch.randint(0, c.text_vocab - c.text_len, (b, c.text_len), generator=g),
            torch.randint(0, c.image_vocab, (b, c.height, c.width), generator=g))


def test_layer_patterns_and_loss_weights():
    m = model(n_layer=5)
    assert m.patterns == ["row", "column", "row", "row", "conv"]
    text, codes = batch(m)
    out = m(text, codes)
    assert out.image_logits.shape == (3, 12, 7)
    torch.testing.assert_close(out.loss, out.text_loss / 8 + out.image_loss * 7 / 8)
    want = F.cross_entropy(out.image_logits.transpose(1, 2), codes.reshape(3, -1))
    torch.testing.assert_close(out.image_loss, want)
    with pytest.raises(ConfigError):
        DalleConfig(text_vocab=20, text_len=5, height=3, width=4, attn=["diagonal"]).validate()


def test_cached_generation_equals_recompute_with_and_without_guidance():
    """The sliced KV cache, the static one (fixed shapes, a device-side position: what CUDA graphs capture) and
    recomputing the prefix draw the same codes for a seed."""
    m = model()
    text, _ = batch(m, 2)
    for guidance in (1.0, 3.0):
        a = m.generate(text, guidance=guidance, generator=torch.Generator().manual_seed(5))
        b = m.generate(text, guidance=guidance, generator=torch.Generator().manual_seed(5), use_cache=False)
        s = m.generate(text, guidance=guidance, generator=torch.Generator().manual_seed(5), static=True)  # the CUDA path's cache
        assert torch.equal(a, b) and torch.equal(a, s) and a.shape == (2, 3, 4)
    assert not torch.equal(m.generate(text, guidance=3.0, generator=torch.Generator().manual_seed(5)),
                           m.generate(text, guidance=1.0, generator=torch.Generator().manual_seed(5)))


def test_teacher_forced_logits_match_step_by_step():
    m = model()
    text, codes = batch(m, 2)
    full = m(text, codes).image_logits
    c = m.config
    img = codes.reshape(2, -1)
    shape = (c.n_layer, 2, c.n_head, c.seq_len, c.n_embd // c.n_head)
    cache = (torch.zeros(shape), torch.zeros(shape))
    with torch.no_grad():
        steps = [m.image_head(m._blocks(m._embed_text(text), 0, cache)[:, -1])]
        for t in range(c.image_len - 1):
            steps.append(m.image_head(m._blocks(m._embed_image(img[:, t : t + 1], t), c.text_len + t, cache)[:, -1]))
    torch.testing.assert_close(torch.stack(steps, 1), full, atol=1e-5, rtol=1e-5)


def test_column_attention_only_sees_its_column():
    """With column attention in every layer, the logits predicting image position p depend on the image codes
    in the column of position p-1's input chain only, and on all the text."""
    m = model(attn=["column"], last_conv=False)
    text, codes = batch(m, 1)
    base = m(text, codes).image_logits
    # image input position q carries code q-... : input at image position k (0-based) is code k; output at k predicts code k+1
    changed = codes.clone()
    changed[0, 0, 1] = (changed[0, 0, 1] + 1) % 7  # code 1: input of image position 1 (row 0, column 1)
    diff = (m(text, changed).image_logits - base).abs().sum(-1)[0]  # (13,) over outputs: [text_len-1 | image positions]
    # outputs at image positions k with column(k) == 1 and k >= 1 may change; the others may not
    for k in range(12):
        out_pos = 1 + k  # index into image_logits (0 is the last text position)
        if out_pos >= 12:
            break
        if k % 4 != 1 or k < 1:
            assert diff[out_pos] == 0, k
    assert diff[1 + 1] > 0 and diff[1 + 5] > 0
    text2 = text.clone()
    text2[0, 0] = (text2[0, 0] + 1) % 15
    assert ((m(text2, codes).image_logits - base).abs().sum(-1) > 0).all()  # everything sees the text


def test_empty_caption_and_bad_input():
    m = model()
    assert m.empty_caption(2).tolist() == [[15, 16, 17, 18, 19]] * 2
    text, codes = batch(m)
    with pytest.raises(ValueError, match="text ids"):
        m(text[:, :4], codes)
    with pytest.raises(ValueError, match="another tokenizer"):
        m(text, codes[:, :2])
    with pytest.raises(ValueError, match="another text tokenizer"):
        m.generate(torch.full((1, 5), 25))


def test_image_log_prob_matches_step_by_step():
    m = model()
    text, codes = batch(m, 2)
    c = m.config
    img = codes.reshape(2, -1)

    def step_by_step(txt):  # an independent path: the KV-cached decoder, one code at a time
        shape = (c.n_layer, 2, c.n_head, c.seq_len, c.n_embd // c.n_head)
        cache = (torch.zeros(shape), torch.zeros(shape))
        with torch.no_grad():
            h = m._blocks(m._embed_text(txt), 0, cache)[:, -1]
            total = torch.zeros(2)
            for t in range(c.image_len):
                total += torch.log_softmax(m.image_head(h), -1).gather(1, img[:, t : t + 1]).squeeze(1)
                if t + 1 < c.image_len:
                    h = m._blocks(m._embed_image(img[:, t : t + 1], t), c.text_len + t, cache)[:, -1]
        return total

    lp = m.image_log_prob(text, codes)
    torch.testing.assert_close(lp, step_by_step(text), atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(-lp.mean() / c.image_len, m(text, codes).image_loss, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(m.image_log_prob(m.empty_caption(2), codes), step_by_step(m.empty_caption(2)), atol=1e-4, rtol=1e-5)
    m.train()  # scoring is in eval mode (no caption dropout) and restores the mode
    m.config.caption_dropout = 1.0
    torch.testing.assert_close(m.image_log_prob(text, codes), lp)
    assert m.training


def test_a_static_decoding_step_reads_nothing_back_and_traces_as_one_graph(monkeypatch):
    from tests.core.test_sync_free import count_reads

    m = model()
    text, _ = batch(m, 2)
    c = m.config
    shape = (c.n_layer, 2, c.n_head, c.seq_len, c.n_embd // c.n_head)
    cache = (torch.zeros(shape), torch.zeros(shape))
    m._blocks(m._embed_text(text), 0, cache)
    decode = m._static_decoder(cache, torch.zeros(2, 1, dtype=torch.long), capture=False)
    with count_reads(monkeypatch) as seen:
        for t in range(3):
            logits = decode(torch.full((2, 1), t))
    assert seen == {} and logits.shape == (2, c.image_vocab)
    torch._dynamo.reset()
    explained = torch._dynamo.explain(decode)(torch.ones(2, 1, dtype=torch.long))
    assert (explained.graph_count, explained.graph_break_count) == (1, 0), [str(b.reason)[:200] for b in explained.break_reasons]
