"""Fused Triton nearest-code kernel against a float64 numpy oracle and the chunked torch path.

Without CUDA the kernel runs in Triton's interpreter on CPU tensors: ``TRITON_INTERPRET=1``
is set while this module imports triton and the kernel module and while its tests run
(the interpreter reads it at call time too), and restored otherwise, so nothing else in
the session gets interpreted. Triton's own ``@jit`` library functions (``tl.min``,
``tl.cdiv``) are built when triton is first imported, so if this session imported triton
earlier without the interpreter, these tests rerun this file in a fresh process instead.
Sizes are tiny because the interpreter is slow.
"""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vqvae.quantize.search import nearest_code

CUDA = torch.cuda.is_available()
DEVICE = "cuda" if CUDA else "cpu"
ROOT = Path(__file__).resolve().parents[2]
KERNEL_FILE = ROOT / "vqvae" / "quantize" / "nearest_triton.py"


def _load_private(name: str):
    """A fresh copy of the kernel module under ``name`` (built in the current environment)."""
    spec = importlib.util.spec_from_file_location(name, KERNEL_FILE)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def _set_interpret(value):
    """Set TRITON_INTERPRET (None: unset); returns the previous value."""
    old = os.environ.get("TRITON_INTERPRET")
    if value is None:
        os.environ.pop("TRITON_INTERPRET", None)
    else:
        os.environ["TRITON_INTERPRET"] = value
    return old


def _triton_built_for_interpreter() -> bool:
    from triton.language import standard
    from triton.runtime.interpreter import InterpretedFunction

    return isinstance(standard.cdiv, InterpretedFunction)


_saved_env = _set_interpret("1") if not CUDA else os.environ.get("TRITON_INTERPRET")
try:
    pytest.importorskip("triton")
    FRESH_PROCESS = not CUDA and not _triton_built_for_interpreter()  # triton was imported before, compiled
    from vqvae.quantize import nearest_triton as nt

    if not CUDA and not FRESH_PROCESS and not nt.INTERPRET:  # kernel module imported earlier, compiled
        nt = _load_private("_nearest_triton_interp")
finally:
    _set_interpret(_saved_env)

if not FRESH_PROCESS and not nt.AVAILABLE:
    pytest.skip("triton imports but the kernel module could not use it", allow_module_level=True)


@pytest.fixture(autouse=True, scope="module")
def interpreter_env():
    """The interpreter reads TRITON_INTERPRET again when a kernel runs: set it for this module's tests only."""
    old = _set_interpret("1") if not CUDA else os.environ.get("TRITON_INTERPRET")
    yield
    _set_interpret(old)


@pytest.fixture(autouse=True)
def in_this_process(request):
    if FRESH_PROCESS and request.node.name != "test_in_a_fresh_process":
        pytest.skip("triton was imported compiled in this session; covered by test_in_a_fresh_process")


@pytest.mark.skipif(not FRESH_PROCESS, reason="only when triton was imported compiled earlier in this session")
def test_in_a_fresh_process():
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(Path(__file__).resolve())]
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    assert " passed" in p.stdout


def oracle(x: torch.Tensor, e: torch.Tensor):
    """float64 distances; argmin (first minimum); rows whose best two are within 1e-5 of the problem's scale."""
    x64, e64 = x.double().cpu().numpy(), e.double().cpu().numpy()
    d = ((x64[:, None, :] - e64[None]) ** 2).sum(-1)
    srt = np.sort(d, axis=1)
    gap = srt[:, 1] - srt[:, 0] if d.shape[1] > 1 else np.full(d.shape[0], np.inf)
    scale = 1 + (x64**2).sum(1) + (e64**2).sum(1).max()  # fp32 cancellation error in ||e||^2 - 2 x.e scales with this
    return d.argmin(1), d, gap <= 1e-5 * scale


def run(x, e, **kw):
    out = nt.nearest_code_triton(x, e, **kw)
    assert out.dtype == torch.int64 and out.shape == (x.shape[0],) and out.device == x.device
    return out.cpu().numpy()


@pytest.mark.parametrize("d", [1, 3, 16, 64])
@pytest.mark.parametrize("k", [2, 17, 100])
@pytest.mark.parametrize("n", [1, 37, 130])
def test_matches_float64_oracle_and_torch_path(n, k, d):
    g = torch.Generator().manual_seed(1000 * n + 10 * k + d)
    x = (torch.randn(n, d, generator=g) * 3).to(DEVICE)
    e = torch.randn(k, d, generator=g).to(DEVICE)
    got = run(x, e)
    want, dist, tie = oracle(x, e)
    assert (got[~tie] == want[~tie]).all()
    rows = np.arange(n)
    assert np.allclose(dist[rows, got], dist[rows, want], rtol=1e-5, atol=1e-5)  # a near-tie pick is as close
    ref = nearest_code(x, e).cpu().numpy()
    assert (got[~tie] == ref[~tie]).all()


@pytest.mark.parametrize("split", [2, 3, 7])
def test_codebook_split_gives_the_same_indices(split):
    g = torch.Generator().manual_seed(split)
    x = torch.randn(37, 16, generator=g).to(DEVICE)
    e = torch.randn(100, 16, generator=g).to(DEVICE)
    assert (run(x, e, split=split) == run(x, e, split=1)).all()


@pytest.mark.parametrize("split", [1, 4])
@pytest.mark.parametrize("d", [3, 40])
def test_exact_ties_go_to_the_smallest_index(d, split):
    """Small integers make every distance exact in fp32: duplicates and equidistant codes tie exactly."""
    g = torch.Generator().manual_seed(d)
    base = torch.randint(-1, 2, (30, d), generator=g).float()
    e = torch.cat([base, base[torch.randperm(30, generator=g)], base[:10]])  # every code at least twice
    x = torch.randint(-2, 3, (53, d), generator=g).float()
    d_int = ((x[:, None, :] - e[None]) ** 2).sum(-1)
    want = d_int.argmin(1).numpy()  # first minimum (checked against numpy below)
    assert (want == d_int.numpy().argmin(1)).all()
    assert (d_int == d_int.min(1, keepdim=True).values).sum(1).min() >= 2  # really ties, everywhere
    got = run(x.to(DEVICE), e.to(DEVICE), split=split)
    assert (got == want).all()
    assert (got == nearest_code(x, e).numpy()).all()
    same = torch.zeros(25, d).to(DEVICE)  # all codes identical -> index 0
    assert (run(x.to(DEVICE), same, split=split) == 0).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_other_dtypes_and_strides_are_cast(dtype):
    g = torch.Generator().manual_seed(7)
    x = torch.randn(41, 2 * 24, generator=g).to(DEVICE, dtype)[:, ::2]  # strided columns
    e = torch.randn(24, 33, generator=g).to(DEVICE, dtype).t()  # (33, 24) transposed view
    assert not x.is_contiguous() and not e.is_contiguous()
    got = run(x, e)
    assert (got == run(x.float().contiguous(), e.float().contiguous())).all()
    want, dist, tie = oracle(x.float(), e.float())
    assert (got[~tie] == want[~tie]).all()
    assert (got[~tie] == nearest_code(x, e).cpu().numpy()[~tie]).all()


def test_tf32x3_precision_is_accepted():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(37, 16, generator=g).to(DEVICE)
    e = torch.randn(17, 16, generator=g).to(DEVICE)
    got = run(x, e, precision="tf32x3")
    want, dist, _ = oracle(x, e)
    rows = np.arange(37)
    assert np.allclose(dist[rows, got], dist[rows, want], rtol=1e-4, atol=1e-4)


def test_empty_input():
    out = nt.nearest_code_triton(torch.zeros(0, 8, device=DEVICE), torch.randn(5, 8, device=DEVICE))
    assert out.shape == (0,) and out.dtype == torch.int64


@pytest.mark.parametrize(
    "xs, es, kw",
    [
        ((5,), (3, 5), {}),
        ((2, 3, 4), (3, 4), {}),
        ((4, 8), (3, 7), {}),
        ((4, 8), (8,), {}),
        ((4, 8), (0, 8), {}),
        ((4, 0), (3, 0), {}),
        ((4, nt.MAX_D + 1), (3, nt.MAX_D + 1), {}),
        ((4, 8), (3, 8), {"precision": "tf32"}),
    ],
)
def test_bad_arguments_raise_value_error(xs, es, kw):
    with pytest.raises(ValueError):
        nt.nearest_code_triton(torch.zeros(xs, device=DEVICE), torch.zeros(es, device=DEVICE), **kw)


def test_supported(monkeypatch):
    x, e = torch.zeros(4, 64, device=DEVICE), torch.zeros(3, 64, device=DEVICE)
    assert nt.supported(x, e)
    big = torch.zeros(4, nt.MAX_D + 1, device=DEVICE)
    assert not nt.supported(big, big)
    assert not nt.supported(x, torch.zeros(3, 32, device=DEVICE))
    monkeypatch.setattr(nt, "ENABLED", False)
    assert not nt.supported(x, e)


def test_module_imports_and_refuses_without_triton(monkeypatch):
    monkeypatch.setitem(sys.modules, "triton", None)  # "import triton" now raises ImportError
    monkeypatch.setitem(sys.modules, "triton.language", None)
    try:
        mod = _load_private("_nearest_triton_without")
    finally:
        sys.modules.pop("_nearest_triton_without", None)
    assert not mod.AVAILABLE and not mod.INTERPRET
    x, e = torch.zeros(4, 8), torch.zeros(3, 8)
    assert not mod.supported(x, e)
    with pytest.raises(RuntimeError):
        mod.nearest_code_triton(x, e)


def test_default_precision_is_tf32x3_only_where_tf32_exists(monkeypatch):
    monkeypatch.delenv("VQVAE_NEAREST_PRECISION", raising=False)
    assert nt.default_precision(torch.device("cpu")) == "ieee"
    monkeypatch.setenv("VQVAE_NEAREST_PRECISION", "tf32x3")
    assert nt.default_precision(torch.device("cpu")) == "tf32x3"
    monkeypatch.setenv("VQVAE_NEAREST_PRECISION", "fast")
    with pytest.raises(ValueError, match="VQVAE_NEAREST_PRECISION must be one of"):
        nt.default_precision(torch.device("cpu"))
