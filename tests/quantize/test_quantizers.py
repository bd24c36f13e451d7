"""Quantizers against independent oracles: numpy float64 search, hand-written EMA maths."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vqvae.quantize.vq import perplexity_of, VectorQuantizer, VectorQuantizerEMA
from vqvae.quantize.search import kmeans, nearest_code


def oracle_argmin(x: np.ndarray, e: np.ndarray):
    d = ((x[:, None, :].astype(np.float64) - e[None].astype(np.float64)) ** 2).sum(-1)
    srt = np.sort(d, axis=1)
    return d.argmin(1), d, srt[:, 1] - srt[:, 0]


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 300), k=st.integers(2, 200), d=st.integers(1, 40), chunk=st.integers(1, 64), seed=st.integers(0, 2**16))
def test_nearest_code_matches_float64_oracle(n, k, d, chunk, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g) * 3
    e = torch.randn(k, d, generator=g)
    got = nearest_code(x, e, chunk_size=chunk).numpy()
    want, dist, gap = oracle_argmin(x.numpy(), e.numpy())
    clear = gap > 1e-3 * (1 + dist.min(1))  # away from fp32 near-ties the answer is exact
    assert (got[clear] == want[clear]).all()
    # and where it differs, the chosen code is (numerically) as close as the best
    rows = np.arange(n)
    assert np.allclose(dist[rows, got], dist[rows, want], rtol=1e-4, atol=1e-4)


def test_nearest_code_is_fp32_under_autocast_and_chunk_invariant():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1000, 32, generator=g)
    e = torch.randn(300, 32, generator=g)
    ref = nearest_code(x, e, chunk_size=1000)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(nearest_code(x.bfloat16().float(), e), nearest_code(x.bfloat16().float(), e, chunk_size=7))
        assert torch.equal(nearest_code(x, e, chunk_size=13), ref)


def test_nearest_code_buffer_is_bounded(monkeypatch):
    """The distance buffer is (chunk, K), never (N, K)."""
    import vqvae.quantize.search as q

    shapes = []
    real_empty = torch.empty

    def spy(*size, **kw):
        t = real_empty(*size, **kw)
        shapes.append(tuple(t.shape))
        return t

    monkeypatch.setattr(q.torch, "empty", spy)
    monkeypatch.setattr(q, "_CHUNK_BYTES", 4 * 100 * 50)  # 50 rows of K = 100
    nearest_code(torch.randn(5000, 8), torch.randn(100, 8))
    assert max(s[0] * (s[1] if len(s) > 1 else 1) for s in shapes if len(s) == 2) <= 50 * 100


@pytest.mark.parametrize("cls", [VectorQuantizer, VectorQuantizerEMA])
@pytest.mark.parametrize("shape", [(2, 8, 5, 7), (3, 8, 11)])
def test_quantizer_output_contract(cls, shape):
    torch.manual_seed(0)
    q = cls(codebook_size=16, embedding_dim=8)
    z = torch.randn(*shape, requires_grad=True)
    codebook_before = q.codebook.detach().clone()
    out = q(z)
    assert out.z_q.shape == z.shape
    assert out.indices.shape == (shape[0], *shape[2:]) and out.indices.dtype == torch.int64
    assert out.usage.shape == (16,) and out.usage.sum().item() == np.prod(shape) / shape[1]
    # indices are the float64 nearest codes of the codebook used for the assignment
    flat = z.detach().movedim(1, -1).reshape(-1, 8).numpy()
    want, _, _ = oracle_argmin(flat, codebook_before.numpy())
    assert (out.indices.flatten().numpy() == want).all()
    # z_q's forward value is those codes
    codes = codebook_before[out.indices].movedim(-1, 1)
    assert torch.allclose(out.z_q.detach(), codes, atol=1e-6)
    # straight-through: d z_q / d z = identity
    z.grad = None
    (out.z_q * torch.arange(out.z_q.numel()).reshape(z.shape)).sum().backward(retain_graph=True)
    assert torch.equal(z.grad, torch.arange(z.numel()).reshape(z.shape).float())
    assert 1.0 <= out.perplexity.item() <= 16.0 + 1e-4


def test_vq_loss_terms_and_gradients():
    torch.manual_seed(0)
    q = VectorQuantizer(codebook_size=10, embedding_dim=4, commitment_cost=0.25)
    z = torch.randn(2, 4, 3, 3, requires_grad=True)
    out = q(z)
    e = q.embedding.detach()[out.indices].movedim(-1, 1)
    mse = ((z.detach() - e) ** 2).mean()
    assert torch.allclose(out.codebook_loss, mse) and torch.allclose(out.commitment_loss, mse)
    assert torch.allclose(out.loss, 1.25 * mse)
    out.loss.backward()
    # encoder gets beta * d/dz mse only (the codebook term is stopped)
    assert torch.allclose(z.grad, 0.25 * 2 * (z.detach() - e) / z.numel(), atol=1e-7)
    # codebook gets d/de ||sg[z] - e||^2 only on used rows
    used = torch.zeros(10, dtype=torch.bool)
    used[out.indices.flatten()] = True
    assert (q.embedding.grad[~used] == 0).all() and (q.embedding.grad[used].abs().sum(1) > 0).all()


def test_ema_update_matches_hand_computation():
    torch.manual_seed(0)
    k, d, gamma, eps = 6, 3, 0.9, 1e-5
    q = VectorQuantizerEMA(k, d, decay=gamma, epsilon=eps)
    count0, weight0 = q.ema_count.clone(), q.ema_weight.clone()
    z = torch.randn(4, d, 5)
    out = q(z)
    flat = z.movedim(1, -1).reshape(-1, d).numpy().astype(np.float64)
    idx = out.indices.flatten().numpy()
    n = np.bincount(idx, minlength=k)
    s = np.zeros((k, d))
    np.add.at(s, idx, flat)
    count = gamma * count0.numpy() + (1 - gamma) * n
    weight = gamma * weight0.numpy() + (1 - gamma) * s
    tot = count.sum()
    smoothed = (count + eps) / (tot + k * eps) * tot
    np.testing.assert_allclose(q.ema_count.numpy(), count, rtol=1e-5)
    np.testing.assert_allclose(q.embedding.numpy(), weight / smoothed[:, None], rtol=1e-4, atol=1e-6)
    assert out.loss.item() == pytest.approx(0.25 * out.commitment_loss.item())
    # eval mode never changes the codebook
    q.eval()
    before = q.embedding.clone()
    q(z)
    assert torch.equal(before, q.embedding)


def test_ema_codebook_converges_to_cluster_means():
    torch.manual_seed(0)
    centres = torch.tensor([[5.0, 0.0], [-5.0, 0.0], [0.0, 5.0]])
    q = VectorQuantizerEMA(3, 2, decay=0.9, kmeans_init=True)
    for _ in range(100):
        x = centres[torch.randint(3, (256,))] + 0.1 * torch.randn(256, 2)
        q(x.t().reshape(1, 2, 256))
    got = q.embedding[q.embedding[:, 0].argsort()]
    want = centres[centres[:, 0].argsort()]
    assert torch.allclose(got, want, atol=0.05)


def _ema_mean(q) -> torch.Tensor:
    """The EMA codebook's definition (appendix A.1): each code is its running sum over its Laplace-smoothed running count."""
    n = q.ema_count.sum()
    smoothed = (q.ema_count + q.epsilon) / (n + q.codebook_size * q.epsilon) * n
    return q.ema_weight / smoothed[:, None]


def test_kmeans_init_and_dead_code_restart():
    torch.manual_seed(0)
    k, d = 32, 4
    q = VectorQuantizerEMA(k, d, kmeans_init=True, restart_after=3)
    q.train()
    data = torch.randn(1, d, 2000) + 10.0  # far from the random init
    assert q.initialized.item() == 0
    q(data)
    assert q.initialized.item() == 1
    assert (q.embedding.mean(1) > 5).all(), "k-means centres come from the data"
    # make codes 0..3 dead: move them far away; they must be re-seeded from the batch
    with torch.no_grad():
        q.embedding[:4] = -100.0
        q.ema_weight[:4] = -100.0
    restarted, set_codes = [], q._set_codes
    # restarts are masked (every step, the same operations whatever the data): record the steps that restart some
    q._set_codes = lambda mask, vectors: (mask.any() and restarted.append(mask.nonzero().squeeze(1)), set_codes(mask, vectors))[1]
    steps = 0
    while not restarted:
        out = q(data)
        steps += 1
    rows = restarted[0]
    assert steps == 3 and sorted(rows.tolist())[:4] == [0, 1, 2, 3]  # after restart_after unused steps
    assert (q.embedding[:4].mean(1) > 5).all(), "dead codes were re-seeded from encoder outputs"
    flat = data[0].t()  # the batch's vectors: each restarted code is one of them
    assert all(bool((flat == q.embedding[r]).all(1).any()) for r in rows.tolist())
    # consistent EMA state: a restarted code is its own running mean (sum = vector, count = 1) ...
    assert torch.equal(q.ema_weight[rows] / q.ema_count[rows, None], q.embedding[rows]) and (q.ema_count[rows] == 1).all()
    kept = torch.ones(k, dtype=torch.bool)
    kept[rows] = False  # ... and every other code is the EMA mean of appendix A.1
    torch.testing.assert_close(q.embedding[kept], _ema_mean(q)[kept])
    out = q(data)  # the next update keeps the whole codebook on that definition
    torch.testing.assert_close(q.embedding, _ema_mean(q))
    assert (q.steps_unused[rows] < 3).all() and out.usage.sum() == 2000


def test_restart_resets_ema_state_consistently():
    q = VectorQuantizerEMA(8, 2)
    vec = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    mask = torch.zeros(8, dtype=torch.bool)
    mask[[1, 5]] = True
    before = q.embedding.clone()
    q._set_codes(mask, torch.zeros(8, 2).index_copy(0, torch.tensor([1, 5]), vec))
    assert torch.equal(q.embedding[[1, 5]], vec) and torch.equal(q.embedding[~mask], before[~mask])
    assert torch.equal(q.ema_weight[[1, 5]] / q.ema_count[[1, 5], None], vec)


def test_kmeans_recovers_separated_clusters():
    g = torch.Generator().manual_seed(1)
    centres = torch.randn(5, 3, generator=g) * 20
    x = centres.repeat(100, 1) + torch.randn(500, 3, generator=g) * 0.1
    found = kmeans(x, 5, iters=20, generator=g)
    d = torch.cdist(found, centres).min(1).values
    assert (d < 1.0).sum() >= 4  # Lloyd may merge at most one pair from a bad seed


def test_lookup_rejects_out_of_range():
    q = VectorQuantizer(8, 3)
    with pytest.raises(ValueError, match=r"\[0, 8\)"):
        q.lookup(torch.tensor([[8]]))
    got = q.lookup(torch.tensor([[1, 2]]))  # (B, T) -> (B, D, T)
    assert got.shape == (1, 3, 2) and torch.equal(got[0, :, 1], q.embedding[2].detach())


def test_perplexity_bounds():
    assert perplexity_of(torch.ones(16)).item() == pytest.approx(16)
    assert perplexity_of(torch.tensor([5.0, 0, 0])).item() == pytest.approx(1)


def test_input_shape_errors():
    q = VectorQuantizer(8, 4)
    with pytest.raises(ValueError, match="channel-first"):
        q(torch.randn(2, 3, 5))


# -- several codebooks per latent position (the paper's CIFAR 8x8x10) ----------
@pytest.mark.parametrize("kind", ["vq", "ema"])
def test_grouped_quantizer_matches_independent_slots(kind):
    from vqvae.quantize.codebooks import GroupedQuantizer
    from vqvae.quantize.factory import make_quantizer

    torch.manual_seed(0)
    q = make_quantizer(kind, 8, 4, num_codebooks=3)
    assert isinstance(q, GroupedQuantizer) and q.num_codebooks == 3
    z = torch.randn(2, 12, 5, 5)
    before = q.quantize(z)  # before the EMA update moves the codebook
    out = q(z)
    assert out.indices.shape == (2, 3, 5, 5) and out.usage.shape == (24,) and out.z_q.shape == z.shape
    for g in range(3):  # oracle: each slot is a plain nearest-code search against its own codebook
        cb = q.groups[g].codebook.detach().double().numpy()
        zs = z[:, 4 * g : 4 * g + 4].movedim(1, -1).reshape(-1, 4).double().numpy()
        if kind == "vq":
            want = ((zs[:, None] - cb[None]) ** 2).sum(-1).argmin(1)
            assert np.array_equal(out.indices[:, g].reshape(-1).numpy(), want)
        assert out.usage[8 * g : 8 * g + 8].sum() == 50
    assert torch.equal(before, out.indices)
    q.eval()
    assert torch.allclose(q.lookup(q.quantize(z)), q(z).z_q, atol=1e-6)
    with pytest.raises(ValueError):
        q(torch.randn(2, 8, 5, 5))
    with pytest.raises(ValueError):
        q.lookup(out.indices[:, :2])


def test_vqvae_with_several_codebooks_roundtrip_and_eval():
    from vqvae.image.inference import decode, encode, evaluate
    from vqvae.image.vqvae import VQVAE, VQVAEConfig

    m = VQVAE(VQVAEConfig(in_channels=3, hidden=8, res_hidden=4, num_res_blocks=1, codebook_size=16, embedding_dim=4, num_codebooks=3))
    x = torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8)
    codes = encode(m, x)
    assert codes.shape == (4, 3, 4, 4) and m.config.code_shape(16, 16) == (3, 4, 4)
    assert decode(m, codes).shape == x.shape
    with pytest.raises(ValueError):
        decode(m, codes[:, 0])
    ev = evaluate(m, x)
    assert 0 < ev["usage_pct"] <= 100 and ev["dead_codes"] == 48 - round(ev["usage_pct"] * 48 / 100)
    # uniform prior: 3 slots x 16 positions x log2(16) bits over 3*16*16 sub-pixels
    assert ev["bits_per_dim"] - ev["recon_bits_per_dim"] == pytest.approx(3 * 16 * 4 / (3 * 256))


# -- residual quantization ---------------------------------------------------------------------
def _rvq(kind="ema", stages=3, k=8, d=4, dropout=0.0, seed=0):
    from vqvae.quantize.factory import make_quantizer

    torch.manual_seed(seed)
    q = make_quantizer(kind, k, d, stages, layout="residual", quantizer_dropout=dropout)
    with torch.no_grad():
        for s, st_ in enumerate(q.stages):
            (st_.embedding.copy_ if kind == "ema" else st_.embedding.data.copy_)(torch.randn(k, d) / (s + 1))
    return q


def test_residual_quantize_matches_numpy_oracle():
    """Stage s picks the nearest code to z minus the chosen codes of stages < s (float64 numpy oracle)."""
    q = _rvq().eval()
    z = torch.randn(2, 4, 5, 3)
    idx = q.quantize(z)
    assert idx.shape == (2, 3, 5, 3)
    flat = z.permute(0, 2, 3, 1).reshape(-1, 4).double().numpy()
    res = flat.copy()
    for s, st_ in enumerate(q.stages):
        cb = st_.codebook.detach().double().numpy()
        want = ((res[:, None, :] - cb[None]) ** 2).sum(-1).argmin(1)
        np.testing.assert_array_equal(idx[:, s].reshape(-1).numpy(), want)
        res = res - cb[want]
    # lookup of every prefix is the sum of its stages' codes; the full sum is what the decoder gets in eval
    for s in (1, 2, 3):
        want = sum(q.stages[t].lookup(idx[:, t]) for t in range(s))
        torch.testing.assert_close(q.lookup(idx[:, :s]), want)
    out = q(z)
    torch.testing.assert_close(out.z_q, q.lookup(idx))
    assert torch.equal(out.indices, idx)
    with pytest.raises(ValueError, match="1 <= s <= 3"):
        q.lookup(torch.zeros(2, 4, 5, 3, dtype=torch.long))


@pytest.mark.parametrize("kind", ["vq", "ema"])
def test_residual_losses_and_gradients(kind):
    q = _rvq(kind).train()
    z = torch.randn(4, 4, 6, 6, requires_grad=True)
    out = q(z)
    assert out.usage.shape == (3 * 8,) and float(out.usage.sum()) == 3 * 4 * 36
    # straight-through: the decoder's input passes the gradient to z unchanged, once
    (g,) = torch.autograd.grad(out.z_q.sum(), z, retain_graph=True)
    torch.testing.assert_close(g, torch.ones_like(z))
    out.loss.backward()
    assert z.grad is not None and z.grad.abs().sum() > 0  # commitment terms reach the encoder
    if kind == "vq":
        assert all(s.embedding.grad is not None for s in q.stages)


def test_quantizer_dropout_truncates_per_sample():
    q = _rvq("vq", dropout=1.0).train()  # gradient codebooks: unchanged by the forward pass (EMA ones update)
    z = torch.randn(64, 4, 2, 2)
    torch.manual_seed(1)
    out = q(z)
    idx = out.indices
    sums = [q.lookup(idx[:, :s]) for s in (1, 2, 3)]
    kept = []
    for b in range(64):
        match = [s + 1 for s in range(3) if torch.allclose(out.z_q[b], sums[s][b], atol=1e-6)]
        assert match, "each sample's decoder input is the sum of a prefix of its stages"
        kept.append(match[0])
    assert set(kept) == {1, 2, 3}  # n ~ U{1..3} over 64 samples
    q.eval()
    torch.testing.assert_close(q(z).z_q, sums[2])  # no dropout in evaluation


def test_vqvae_with_residual_stages_decodes_every_prefix():
    from vqvae.image.vqvae import VQVAE, VQVAEConfig

    m = VQVAE(VQVAEConfig(in_channels=3, hidden=8, res_hidden=4, num_res_blocks=1, codebook_size=8, embedding_dim=4, num_codebooks=3,
                          codebook_layout="residual", quantizer_dropout=0.5))
    assert m.encoder.net[-1].out_channels == 4  # residual stages share one D-dim latent
    x = torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8)
    idx = m.encode(x)
    assert idx.shape == (2, 3, 4, 4) and m.config.code_shape(16, 16) == (3, 4, 4)
    for s in (1, 2, 3):
        assert m.decode(idx[:, :s]).shape == x.shape
    out = m.train()(x)
    out.loss.backward()
