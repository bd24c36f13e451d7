"""The GPT prior over codes: KV cache == recompute, causality, attention and loss oracles, overfitting, errors."""

import math

import pytest
import torch

from vqvae.core.errors import ConfigError
from vqvae.priors.sequence import from_sequence, to_sequence
from vqvae.priors.transformer import TransformerConfig, TransformerPrior




def tiny(**kw):
    base = dict(codebook_size=8, num_codebooks=1, height=3, width=4, n_layer=2, n_head=2, n_embd=16)
    base.update(kw)
    return TransformerConfig(**base)


def model(seed=0, **kw):
    torch.manual_seed(seed)
    m = TransformerPrior(tiny(**kw)).eval()
    with torch.no_grad():  # larger than the 0.02 init, so that every position's logits depend visibly on the inputs
        for p in m.parameters():
            p.normal_(0, 0.3)
    return m


def codes_for(cfg, b=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, cfg.codebook_size, (b, *cfg.code_shape), generator=g)


CASES = [dict(), dict(num_codebooks=2), dict(num_classes=5), dict(num_codebooks=3, num_classes=4, bias=False),
         dict(num_codebooks=3, order="codebook")]


def labels_for(cfg, b):
    return torch.arange(b) % cfg.num_classes if cfg.num_classes else None


@pytest.mark.parametrize("kw", CASES)
def test_shapes(kw):
    m = model(**kw)
    cfg = m.config
    z = codes_for(cfg)
    out = m(z, labels_for(cfg, 3))
    assert out.logits.shape == (3, cfg.seq_len, cfg.codebook_size) and out.nll_bits.shape == (3,)
    s = m.sample(2, labels_for(cfg, 2), generator=torch.Generator().manual_seed(0))
    assert s.shape == (2, *cfg.code_shape) and s.dtype == torch.int64
    assert int(s.min()) >= 0 and int(s.max()) < cfg.codebook_size


@pytest.mark.parametrize("kw", CASES)
def test_cache_step_equals_forward(kw):
    m = model(**kw)
    cfg = m.config
    z = codes_for(cfg)
    labels = labels_for(cfg, 3)
    full = m(z, labels).logits
    seq = to_sequence(z, cfg)
    cache = m.new_cache(3)
    inc = [m.start(cache, labels)]
    for t in range(1, cfg.seq_len):
        inc.append(m.step(cache, seq[:, t - 1]))
    assert cache.pos == cfg.seq_len
    torch.testing.assert_close(torch.stack(inc, 1), full, atol=1e-5, rtol=1e-5)
    # the uncached single-step path agrees too
    for t in (0, 5, cfg.seq_len - 1):
        torch.testing.assert_close(m.prefix_logits(seq[:, :t], labels), full[:, t], atol=1e-5, rtol=1e-5)


def test_cache_chunked_prefill_equals_forward():
    """Feeding several positions at once into a non-empty cache (explicit causal mask) matches forward."""
    m = model(num_codebooks=2)
    z = codes_for(m.config)
    seq = to_sequence(z, m.config)
    full = m(z).logits
    cache = m.new_cache(3)
    with torch.no_grad():
        a = m._start(cache, None)
        b = m._run(m.wte(seq[:, :9]), 1, cache)
    torch.testing.assert_close(torch.cat([a[:, None], b], 1), full[:, :10], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kw", CASES)
@pytest.mark.parametrize("filters", [dict(), dict(temperature=0.7, top_k=5, top_p=0.9)])
def test_sample_cache_equals_recompute(kw, filters):
    m = model(**kw)
    labels = labels_for(m.config, 4)
    a = m.sample(4, labels, generator=torch.Generator().manual_seed(3), use_cache=True, **filters)
    b = m.sample(4, labels, generator=torch.Generator().manual_seed(3), use_cache=False, **filters)
    assert torch.equal(a, b)
    c = m.sample(4, labels, generator=torch.Generator().manual_seed(3), **filters)
    assert torch.equal(a, c)  # reproducible
    d = m.sample(4, labels, generator=torch.Generator().manual_seed(4), **filters)
    assert not torch.equal(a, d)


def test_greedy_sample_is_argmax_chain():
    """top_k=1 sampling picks argmax at every step: forward on the result predicts it back exactly."""
    m = model(num_codebooks=2, num_classes=3)
    labels = torch.tensor([0, 1, 2])
    s = m.sample(3, labels, top_k=1)
    out = m(s, labels)
    assert torch.equal(out.logits.argmax(-1), to_sequence(s, m.config))


def test_causality():
    m = model(num_codebooks=2)
    cfg = m.config
    z = codes_for(cfg, b=1)
    seq = to_sequence(z, cfg)
    base = m(z).logits
    for pos in (0, 7, cfg.seq_len - 2):
        s2 = seq.clone()
        s2[0, pos] = (s2[0, pos] + 1) % cfg.codebook_size
        z2 = s2.reshape(1, cfg.height, cfg.width, 2).permute(0, 3, 1, 2)
        assert torch.equal(to_sequence(z2, cfg), s2)
        pert = m(z2).logits
        torch.testing.assert_close(pert[:, : pos + 1], base[:, : pos + 1], atol=1e-6, rtol=0)
        assert (pert[:, pos + 1 :] - base[:, pos + 1 :]).abs().max() > 1e-3


def test_attention_oracle():
    m = model(n_head=4, n_embd=16)
    attn = m.blocks[0].attn
    x = torch.randn(2, 7, 16)
    w, bias = attn.c_attn.weight, attn.c_attn.bias
    qkv = x @ w.T + bias
    q, k, v = qkv[..., :16], qkv[..., 16:32], qkv[..., 32:]
    heads = lambda a: a.reshape(2, 7, 4, 4).transpose(1, 2)  # noqa: E731
    q, k, v = heads(q), heads(k), heads(v)
    scores = q @ k.transpose(-1, -2) / math.sqrt(4)
    mask = torch.ones(7, 7).tril().bool()
    scores = scores.masked_fill(~mask, float("-inf"))
    y = (scores.softmax(-1) @ v).transpose(1, 2).reshape(2, 7, 16)
    want = y @ attn.c_proj.weight.T + attn.c_proj.bias
    with torch.no_grad():
        torch.testing.assert_close(attn(x), want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kw", [dict(), dict(num_codebooks=2, num_classes=3)])
def test_loss_is_cross_entropy(kw):
    m = model(**kw)
    cfg = m.config
    z = codes_for(cfg)
    labels = labels_for(cfg, 3)
    out = m(z, labels)
    seq = to_sequence(z, cfg)
    logp = out.logits.log_softmax(-1).gather(-1, seq[..., None])[..., 0]  # (B, L) nats
    torch.testing.assert_close(out.loss, -logp.mean())
    torch.testing.assert_close(out.nll_bits, -(logp / math.log(2)).sum(1))
    # bits also sum per position: the chain rule over the incremental steps
    cache = m.new_cache(3)
    bits = -m.start(cache, labels).log_softmax(-1).gather(1, seq[:, :1])[:, 0] / math.log(2)
    for t in range(1, cfg.seq_len):
        bits = bits - m.step(cache, seq[:, t - 1]).log_softmax(-1).gather(1, seq[:, t : t + 1])[:, 0] / math.log(2)
    torch.testing.assert_close(bits, out.nll_bits, atol=1e-4, rtol=1e-5)


def test_start_token_depends_on_label():
    torch.manual_seed(0)
    m = TransformerPrior(tiny(num_classes=4)).eval()  # default 0.02 init
    z = codes_for(m.config, b=1).expand(4, *m.config.code_shape)
    first = m(z, torch.arange(4)).logits[:, 0]
    for a in range(4):
        for b in range(a + 1, 4):
            assert (first[a] - first[b]).abs().max() > 1e-6
    again = m(z, torch.zeros(4, dtype=torch.long)).logits[:, 0]
    torch.testing.assert_close(again, first[:1].expand(4, -1))


def test_position_tables_follow_sequence_order():
    """The (row, col, slot) tables name the cell of each sequence position, as to_sequence orders them."""
    m = model(num_codebooks=3, height=2, width=3, codebook_size=64)
    g, i, j = torch.meshgrid(torch.arange(3), torch.arange(2), torch.arange(3), indexing="ij")
    seq = to_sequence(((g * 2 + i) * 3 + j)[None], m.config)[0]  # code value = flat (g, i, j)
    assert torch.equal(m.pos_slot, seq // 6) and torch.equal(m.pos_row, seq // 3 % 2) and torch.equal(m.pos_col, seq % 3)
    assert m.row_emb.num_embeddings == 2 and m.col_emb.num_embeddings == 3 and m.slot_emb.num_embeddings == 3
    assert model().slot_emb is None


def test_codebook_order_is_stage_slowest_and_prefix_friendly():
    """order="codebook": codebook g's whole map comes before codebook g+1's, so a prefix of s * H * W
    codes is exactly the first s codebooks; the position tables follow that order."""
    m = model(num_codebooks=3, height=2, width=3, codebook_size=64, order="codebook")
    g, i, j = torch.meshgrid(torch.arange(3), torch.arange(2), torch.arange(3), indexing="ij")
    seq = to_sequence(((g * 2 + i) * 3 + j)[None], m.config)[0]
    assert torch.equal(seq, torch.arange(18))
    assert torch.equal(m.pos_slot, seq // 6) and torch.equal(m.pos_row, seq // 3 % 2) and torch.equal(m.pos_col, seq % 3)
    z = codes_for(m.config)
    assert torch.equal(from_sequence(to_sequence(z, m.config), m.config), z)
    with pytest.raises(ConfigError, match="order"):
        tiny(order="zigzag").validate()


def test_init_tying_and_dropout():
    torch.manual_seed(0)
    m = TransformerPrior(tiny(n_layer=8, n_embd=64, n_head=4, dropout=0.5, codebook_size=512))
    assert m.lm_head.weight is m.wte.weight
    assert abs(m.blocks[0].mlp.c_fc.weight.std().item() - 0.02) < 0.002
    assert abs(m.blocks[0].mlp.c_proj.weight.std().item() - 0.02 / 4) < 0.0005
    assert abs(m.blocks[0].attn.c_proj.weight.std().item() - 0.02 / 4) < 0.0008
    z = codes_for(m.config)
    m.train()
    assert not torch.equal(m(z).logits, m(z).logits)
    m.sample(1)
    assert m.training  # sample() ran in eval mode and restored the mode
    m.eval()
    assert torch.equal(m(z).logits, m(z).logits)


def test_overfit_one_code_map():
    torch.manual_seed(0)
    cfg = TransformerConfig(codebook_size=8, height=4, width=4, n_layer=2, n_head=2, n_embd=32)
    m = TransformerPrior(cfg)
    target = torch.randint(0, 8, (1, 4, 4))
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    for _ in range(200):
        loss = m(target).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05
    s = m.sample(4, temperature=0.3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(s, target.expand(4, 4, 4))


def test_config_errors():
    for kw, key in [
        (dict(n_embd=30, n_head=4), "model.n_embd"),
        (dict(n_layer=0), "model.n_layer"),
        (dict(n_head=0), "model.n_head"),
        (dict(n_embd=0), "model.n_embd"),
        (dict(height=0), "model.height"),
        (dict(dropout=1.0), "model.dropout"),
        (dict(codebook_size=1), "model.codebook_size"),
    ]:
        with pytest.raises(ConfigError, match=key):
            TransformerPrior(tiny(**kw))


def test_bad_inputs():
    m = model()
    mc = model(num_classes=3, num_codebooks=2)
    z, zc = codes_for(m.config), codes_for(mc.config)
    bad = [
        (lambda: m(z[:, :2]), "expected code maps"),
        (lambda: m(z[:, None]), "expected code maps"),
        (lambda: m(z.float()), "integers"),
        (lambda: m(z + 8), r"codes must lie in \[0, 8\)"),
        (lambda: m(z - 1), r"codes must lie in \[0, 8\)"),
        (lambda: m(z, torch.zeros(3, dtype=torch.long)), "unconditional"),
        (lambda: mc(zc), "class-conditional"),
        (lambda: mc(zc, torch.tensor([0, 1, 3])), r"labels must lie in \[0, 3\)"),
        (lambda: mc(zc, torch.tensor([0, 1])), "expected 3 labels"),
        (lambda: m.sample(0), "n must be >= 1"),
        (lambda: m.sample(2, temperature=0.0), "temperature"),
        (lambda: m.sample(2, temperature=-1.0), "temperature"),
        (lambda: m.sample(2, top_p=0.0), "top_p"),
        (lambda: m.sample(2, top_p=1.5), "top_p"),
        (lambda: m.sample(2, top_k=-1), "top_k"),
        (lambda: m.sample(2, labels=torch.tensor([1, 1])), "unconditional"),
        (lambda: mc.sample(2), "class-conditional"),
        (lambda: mc.sample(2, labels=torch.tensor([5, 0])), "labels must lie"),
    ]
    for fn, msg in bad:
        with pytest.raises(ValueError, match=msg):
            fn()


def test_cache_misuse():
    m = model()
    cache = m.new_cache(2)
    with pytest.raises(ValueError, match="start"):
        m.step(cache, torch.zeros(2, dtype=torch.long))
    m.start(cache)
    with pytest.raises(ValueError, match="empty cache"):
        m.start(cache)
    for bad, msg in [(torch.zeros(3, dtype=torch.long), "shape"), (torch.zeros(2), "integer"), (torch.tensor([0, 8]), "must lie")]:
        with pytest.raises(ValueError, match=msg):
            m.step(cache, bad)
    assert cache.pos == 1
    for _ in range(m.config.seq_len - 1):
        m.step(cache, torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="full"):
        m.step(cache, torch.tensor([1, 2]))


def test_classifier_free_guidance_is_greedy_on_the_guided_logits():
    """With guidance s, each step's logits are u + s (c - u) of the class's and the "no class" start's (an oracle
    from the uncached forward pass): greedy guided samples are the argmax chain of those logits."""
    m = model(num_classes=3, label_dropout=0.1)
    labels, s = torch.tensor([0, 1, 2]), 2.5
    z = m.sample(3, labels, top_k=1, guidance=s)
    seq = to_sequence(z, m.config)
    null = torch.full_like(labels, 3)
    for t in range(seq.shape[1]):
        c, u = m.prefix_logits(seq[:, :t], labels), m.prefix_logits(seq[:, :t], null)
        assert torch.equal(seq[:, t], (u + s * (c - u)).argmax(-1))
    assert torch.equal(m.sample(3, labels, top_k=1, guidance=s, use_cache=False), z)  # the cache changes nothing
    c0, u0 = m.prefix_logits(seq[:, :0], labels), m.prefix_logits(seq[:, :0], null)
    assert (c0 - u0).abs().max() > 0.1  # the class and the "no class" starts do differ, so the oracle tests something


def test_label_dropout_trains_the_no_class_start():
    m = model(num_classes=3, label_dropout=0.5).train()
    x, y = codes_for(m.config, b=64), torch.arange(64) % 3
    m(x, y).loss.backward()
    assert m.wse.weight.shape[0] == 4 and m.wse.weight.grad[3].abs().sum() > 0  # the null row learns
    with pytest.raises(ValueError, match="label_dropout"):
        model(num_classes=3).sample(2, torch.tensor([0, 1]), guidance=2.0)
    with pytest.raises(ConfigError, match="class-conditional"):
        tiny(label_dropout=0.1).validate()
