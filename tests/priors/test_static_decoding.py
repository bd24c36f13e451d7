"""The static KV cache (GPU-pace issue): decoding steps with fixed shapes and a device-side position, so a step can be
captured in a CUDA graph; on the CPU they give the sliced cache's samples, read nothing back, and trace as one graph."""

from __future__ import annotations

import pytest
import torch

from tests.core.test_sync_free import count_reads
from tests.priors.test_transformer import model
from vqvae.priors.decoding import on_device


@pytest.mark.parametrize("kw, guidance, num_codebooks", [({}, 1.0, 1), ({"num_classes": 3, "label_dropout": 0.1}, 2.0, 1),
                                                         ({}, 1.0, 2)])
def test_static_cache_samples_equal_the_sliced_caches(kw, guidance, num_codebooks):
    m = model(num_codebooks=num_codebooks, **kw)
    labels = torch.tensor([0, 2, 1, 1]) if kw else None
    draw = lambda static: m.sample(4, labels, temperature=0.9, top_k=6, guidance=guidance, static=static,  # noqa: E731
                                   generator=torch.Generator().manual_seed(3))
    assert torch.equal(draw(True), draw(False))


def test_static_steps_match_the_full_forward_and_read_nothing_back(monkeypatch):
    m = model()
    codes = torch.randint(0, 8, (2, 3, 4), generator=torch.Generator().manual_seed(0))
    seq = codes.reshape(2, -1)
    full = m(codes).logits
    cache = m.new_cache(2, static=True)
    out = [m._start(cache, None)]
    k_ptr = cache.k.data_ptr()
    with count_reads(monkeypatch) as seen:
        for t in range(seq.shape[1] - 1):
            out.append(m._step(cache, seq[:, t]))
    assert seen == {} and cache.k.data_ptr() == k_ptr and int(cache.pos) == seq.shape[1]
    torch.testing.assert_close(torch.stack(out, 1), full, atol=1e-5, rtol=1e-5)


def test_a_static_step_traces_as_one_graph():
    m = model()
    cache = m.new_cache(2, static=True)
    m._start(cache, None)
    torch._dynamo.reset()
    explained = torch._dynamo.explain(lambda z: m._step(cache, z))(torch.tensor([1, 2]))
    assert (explained.graph_count, explained.graph_break_count) == (1, 0), [str(b.reason)[:200] for b in explained.break_reasons]


def test_a_generator_already_on_the_device_is_used_as_is():
    g = torch.Generator().manual_seed(5)
    assert on_device(None, torch.device("cpu")) is None and on_device(g, torch.device("cpu")) is g  # already there: as is


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (CUDA-graph capture)")
def test_captured_decoding_samples_like_eager_static_decoding_on_cuda():
    m = model().cuda()
    g = lambda: torch.Generator(device="cuda").manual_seed(0)  # noqa: E731
    captured = m.sample(8, generator=g())  # static, captured (the CUDA default)
    cache = m.new_cache(8, static=True)
    assert captured.shape == (8, 3, 4) and captured.device.type == "cuda" and cache.k.is_cuda
    eager = m.sample(8, generator=g(), static=False)
    assert (captured == eager).float().mean() > 0.9  # same draws up to rare float near-ties
