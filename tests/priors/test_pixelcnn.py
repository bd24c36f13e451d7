"""The gated PixelCNN prior: causality, no blind spot, loss, sampling (cropped == naive), overfitting, errors."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vqvae.core.errors import ConfigError
from vqvae.priors.pixelcnn import PixelCNNConfig, PixelCNNPrior
from vqvae.priors.sequence import to_sequence




def tiny(**kw) -> PixelCNNConfig:
    base = dict(codebook_size=5, height=4, width=5, channels=8, layers=3, first_kernel=3, kernel=3, out_hidden=16)
    base.update(kw)
    return PixelCNNConfig(**base)


def model(seed=0, double=True, **kw) -> PixelCNNPrior:
    torch.manual_seed(seed)
    m = PixelCNNPrior(tiny(**kw)).eval()
    return m.double() if double else m


def rand_codes(cfg, b=2, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, cfg.codebook_size, (b, *cfg.code_shape), generator=g)


def labels_for(cfg, b=2):
    return torch.arange(b) % cfg.num_classes if cfg.num_classes else None


def cell_changes(m, codes, labels, cell, slot):
    """Max |change| of the logits of every cell ``(H*W,)`` when code ``slot`` of ``cell`` is changed."""
    cfg = m.config
    g, k = cfg.num_codebooks, cfg.codebook_size
    grid = codes.reshape(codes.shape[0], g, cfg.height, cfg.width).clone()
    i, j = divmod(cell, cfg.width)
    with torch.no_grad():
        base = m(codes, labels).logits
    grid[:, slot, i, j] = (grid[:, slot, i, j] + 1) % k
    with torch.no_grad():
        new = m(grid.reshape(codes.shape), labels).logits
    return (new - base).abs().reshape(codes.shape[0], cfg.height * cfg.width, g * k).amax(dim=(0, 2))


def dependency_matrix(m, codes, labels):
    """``D[p, q]``: does cell ``q``'s output change when some code of cell ``p`` changes."""
    cells = m.config.height * m.config.width
    d = torch.zeros(cells, cells, dtype=torch.bool)
    for p in range(cells):
        for slot in range(m.config.num_codebooks):
            ch = cell_changes(m, codes, labels, p, slot)
            assert ch[: p + 1].max() <= 1e-12, f"cell {p} (slot {slot}) leaks into cells <= itself"
            d[p] |= ch > 1e-9
    return d


# -- causality and receptive field -------------------------------------------------------


@pytest.mark.parametrize("groups", [1, 3])
@pytest.mark.parametrize("classes", [0, 3])
def test_causality_and_full_receptive_field(groups, classes):
    """Exact oracle: a cell's logits depend on *every* earlier cell (deep enough net, no
    blind spot) and on no cell at or after it, for every slot of every cell."""
    m = model(num_codebooks=groups, num_classes=classes, layers=5)  # reach 5 >= map size
    cfg = m.config
    codes = rand_codes(cfg)
    d = dependency_matrix(m, codes, labels_for(cfg))
    cells = cfg.height * cfg.width
    assert torch.equal(d, torch.ones(cells, cells, dtype=torch.bool).triu(1))


def test_shallow_net_is_causal_at_sequence_level():
    """Sequence-level check on a shallow G=2 net: perturbing position l = (cell*G + g) leaves
    all positions of cells <= cell untouched, while the next cell in the row and the cell
    below do change (2 layers cannot reach from the end of a row to the start of the next)."""
    m = model(num_codebooks=2, layers=2, num_classes=2)
    cfg = m.config
    codes = rand_codes(cfg)
    labels = labels_for(cfg)
    seq = to_sequence(codes, cfg)
    base = m(codes, labels).logits
    for cell in range(cfg.height * cfg.width):
        for g in range(2):
            s = seq.clone()
            s[:, cell * 2 + g] = (s[:, cell * 2 + g] + 1) % cfg.codebook_size
            grid = s.reshape(2, cfg.height, cfg.width, 2).permute(0, 3, 1, 2)
            diff = (m(grid, labels).logits - base).abs().amax(dim=(0, 2))
            assert diff[: (cell + 1) * 2].max() <= 1e-12
            i, j = divmod(cell, cfg.width)
            later = ([cell + 1] if j + 1 < cfg.width else []) + ([cell + cfg.width] if i + 1 < cfg.height else [])
            for q in later:
                assert diff[q * 2 : (q + 1) * 2].min() > 1e-9


def masked_pixelcnn_deps(h, w, layers):
    """Dependency matrix of a *plain* masked-conv PixelCNN (3x3 masks A then B, no stacks)."""
    torch.manual_seed(0)
    convs = [nn.Conv2d(1 if i == 0 else 4, 4, 3, padding=1).double() for i in range(layers)]
    mask = torch.ones(3, 3, dtype=torch.float64)
    mask[1, 2:] = 0
    mask[2:] = 0
    mask_a = mask.clone()
    mask_a[1, 1] = 0

    def f(x):
        for i, c in enumerate(convs):
            x = torch.tanh(F.conv2d(x, c.weight * (mask_a if i == 0 else mask), c.bias, padding=1))
        return x.abs().sum(1)

    d = torch.zeros(h * w, h * w, dtype=torch.bool)
    x = torch.rand(1, 1, h, w, dtype=torch.float64)
    for p in range(h * w):
        y = x.clone()
        y.view(-1)[p] += 1
        d[p] = (f(y) - f(x)).abs().view(-1) > 1e-9
    return d


def test_no_blind_spot():
    """Cell (i, j) sees (i-1, j+2), (i-1, j+3), (i-2, j+3) and the left of its row; a plain
    masked-conv PixelCNN of the same depth misses (i-1, j+2) -- the blind spot -- so the check bites."""
    h, w, layers = 6, 8, 3
    m = model(height=h, width=w, layers=layers)
    d = dependency_matrix(m, rand_codes(m.config), None)
    cell = lambda i, j: i * w + j  # noqa: E731
    i, j = 4, 3
    for src in [(i - 1, j + 2), (i - 1, j + 3), (i - 2, j + 3), (i - 1, j - 3), (i, j - 1), (i, j - 3), (i - 3, j)]:
        assert d[cell(*src), cell(i, j)], f"{src} does not reach {(i, j)}"
    plain = masked_pixelcnn_deps(h, w, layers)
    assert plain[cell(i - 1, j + 1), cell(i, j)] and not plain[cell(i - 1, j + 2), cell(i, j)]


def test_receptive_rows_is_tight():
    """Row i depends on row i - R (R = receptive_rows) and not on row i - R - 1: the band
    the sampler crops to is both sufficient and minimal."""
    m = model(height=9, width=3, layers=2, first_kernel=5)
    r = m.receptive_rows
    assert r == 1 + 2 + 1
    cfg = m.config
    codes = rand_codes(cfg)
    i = cfg.height - 1
    rows = lambda ch: ch.reshape(cfg.height, cfg.width)  # noqa: E731
    assert max(rows(cell_changes(m, codes, None, (i - r) * cfg.width + j, 0))[i].max() for j in range(3)) > 1e-9
    for j in range(3):
        assert rows(cell_changes(m, codes, None, (i - r - 1) * cfg.width + j, 0))[i:].max() == 0


# -- loss and logits layout ----------------------------------------------------------------


@pytest.mark.parametrize("groups,classes", [(1, 0), (3, 2)])
def test_loss_matches_hand_computed_cross_entropy(groups, classes):
    m = model(num_codebooks=groups, num_classes=classes, double=False)  # prior_loss works in fp32
    cfg = m.config
    codes, labels = rand_codes(cfg, b=3), labels_for(cfg, 3)
    out = m(codes, labels)
    assert out.logits.shape == (3, cfg.seq_len, cfg.codebook_size)
    seq = to_sequence(codes, cfg)
    logp = out.logits.log_softmax(-1).gather(-1, seq[..., None])[..., 0]  # (B, L)
    assert torch.allclose(out.loss, -logp.mean())
    assert torch.allclose(out.nll_bits, -logp.sum(1) / math.log(2))
    assert torch.allclose(m.log_prob_bits(codes, labels), out.nll_bits)
    # logits[:, (i*W + j)*G + g] is the (g, i, j) slice of the spatial (B, G*K, H, W) map
    spatial = m._logits_map(codes.reshape(3, groups, cfg.height, cfg.width), labels)
    k = cfg.codebook_size
    for i, j, g in [(0, 0, 0), (1, 3, groups - 1), (3, 4, 0)]:
        assert torch.equal(out.logits[:, (i * cfg.width + j) * groups + g], spatial[:, g * k : (g + 1) * k, i, j])


def test_dropout_only_in_training():
    m = model(dropout=0.5)
    codes = rand_codes(m.config)
    assert torch.equal(m(codes).logits, m(codes).logits)
    m.train()
    assert not torch.equal(m(codes).logits, m(codes).logits)
    m.sample(1, generator=torch.Generator().manual_seed(0))
    assert m.training  # sample() runs in eval mode and restores the mode


# -- sampling -------------------------------------------------------------------------------


@pytest.mark.parametrize("groups,classes", [(1, 0), (3, 2)])
def test_sample_shape_range_reproducible(groups, classes):
    m = model(num_codebooks=groups, num_classes=classes, double=False)
    cfg = m.config
    labels = labels_for(cfg, 3)
    a = m.sample(3, labels, generator=torch.Generator().manual_seed(0))
    b = m.sample(3, labels, generator=torch.Generator().manual_seed(0))
    c = m.sample(3, labels, generator=torch.Generator().manual_seed(1))
    assert a.shape == (3, *cfg.code_shape) and a.dtype == torch.int64 and a.device == torch.device("cpu")
    assert 0 <= int(a.min()) and int(a.max()) < cfg.codebook_size
    assert torch.equal(a, b) and not torch.equal(a, c)
    m(a, labels)  # valid input for forward


@pytest.mark.parametrize(
    "groups,classes,double,filters",
    [
        (1, 0, True, {}),
        (3, 2, True, dict(top_k=3)),
        (2, 0, False, dict(top_p=0.9, temperature=0.7)),
    ],
)
def test_cropped_sampling_equals_naive(groups, classes, double, filters):
    """The band/row-cropped sampler draws exactly what full-map recomputation draws. The map
    (H=8) is taller than the band (R=3), so rows >= 3 really are computed from a cropped band."""
    m = model(num_codebooks=groups, num_classes=classes, double=double, height=8, width=4, layers=2)
    assert m.receptive_rows < m.config.height - 1
    labels = labels_for(m.config, 4)
    fast = m.sample(4, labels, generator=torch.Generator().manual_seed(3), **filters)
    slow = m.sample(4, labels, generator=torch.Generator().manual_seed(3), naive=True, **filters)
    assert torch.equal(fast, slow)


def test_class_conditioning_changes_outputs():
    m = model(num_classes=3, double=False)
    codes = rand_codes(m.config, b=1).expand(3, -1, -1)
    logits = m(codes, torch.tensor([0, 1, 2])).logits
    assert not torch.allclose(logits[0], logits[1]) and not torch.allclose(logits[1], logits[2])
    a = m.sample(4, torch.tensor(0), generator=torch.Generator().manual_seed(0))
    b = m.sample(4, torch.tensor(1), generator=torch.Generator().manual_seed(0))
    assert not torch.equal(a, b)


@pytest.mark.parametrize("groups,classes", [(1, 0), (2, 2)])
def test_overfit_reproduces_pattern(groups, classes):
    """A tiny prior trained on fixed 4x4 maps (one per class) samples them back at low temperature."""
    torch.manual_seed(0)
    cfg = tiny(codebook_size=4, height=4, width=4, num_codebooks=groups, num_classes=classes, layers=4, channels=16)
    m = PixelCNNPrior(cfg)
    base = (torch.arange(16).reshape(4, 4) * 7 + torch.arange(4)[:, None]) % 4  # irregular pattern
    pats = torch.stack([torch.stack([(base + c + g) % 4 for g in range(groups)]) for c in range(max(classes, 1))])
    pats = pats.reshape(-1, *cfg.code_shape)  # one pattern per class
    labels = torch.arange(len(pats)) if classes else None
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    for _ in range(150):
        loss = m(pats, labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.01
    sample_labels = torch.tensor([0, 1, 1, 0]) if classes else None
    s = m.sample(4, sample_labels, temperature=0.1, generator=torch.Generator().manual_seed(0))
    want = pats[sample_labels] if classes else pats.expand(4, *cfg.code_shape)
    assert torch.equal(s, want)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_sample_on_cuda_with_cpu_generator():
    m = model(double=False).cuda()
    s = m.sample(2, generator=torch.Generator().manual_seed(0))
    assert s.device.type == "cuda" and s.dtype == torch.int64
    assert torch.equal(s, m.sample(2, generator=torch.Generator().manual_seed(0), naive=True))


# -- errors ---------------------------------------------------------------------------------


def test_bad_inputs_raise_value_error():
    unc = model(double=False)
    con = model(num_classes=3, double=False, num_codebooks=2)
    cfg = unc.config
    good = rand_codes(cfg)
    bad_cases = [
        (lambda: unc(good[:, :-1]), "expected code maps"),
        (lambda: unc(good[None]), "expected code maps"),
        (lambda: con(rand_codes(cfg), torch.tensor([0, 1])), "expected code maps"),  # G=1 maps on a G=2 prior
        (lambda: unc(good.float()), "integers"),
        (lambda: unc(good.clamp_max(cfg.codebook_size - 1) + 1), r"\[0, 5\)"),
        (lambda: unc(good - good - 1), r"\[0, 5\)"),
        (lambda: unc(good, torch.tensor([0, 1])), "unconditional"),
        (lambda: con(rand_codes(con.config)), "labels"),
        (lambda: con(rand_codes(con.config), torch.tensor([0, 3])), r"\[0, 3\)"),
        (lambda: con(rand_codes(con.config), torch.tensor([-1, 0])), r"\[0, 3\)"),
        (lambda: con(rand_codes(con.config), torch.tensor([0, 1, 2])), "expected 2 labels"),
        (lambda: unc.sample(0), "n must be >= 1"),
        (lambda: unc.sample(-2), "n must be >= 1"),
        (lambda: unc.sample(2, temperature=0.0), "temperature"),
        (lambda: unc.sample(2, temperature=-1.0), "temperature"),
        (lambda: unc.sample(2, top_p=0.0), "top_p"),
        (lambda: unc.sample(2, top_k=-1), "top_k"),
        (lambda: unc.sample(2, torch.tensor([0, 1])), "unconditional"),
        (lambda: con.sample(2), "labels"),
        (lambda: con.sample(2, torch.tensor([0, 5])), r"\[0, 3\)"),
    ]
    for fn, match in bad_cases:
        with pytest.raises(ValueError, match=match):
            fn()


@pytest.mark.parametrize(
    "key,value",
    [("channels", 0), ("layers", 0), ("first_kernel", 1), ("first_kernel", 4), ("kernel", 2), ("out_hidden", 0),
     ("codebook_size", 1), ("height", 0), ("dropout", 1.0)],
)
def test_bad_config_raises_config_error(key, value):
    with pytest.raises(ConfigError, match=f"model.{key}"):
        PixelCNNPrior(tiny(**{key: value}))


def test_config_is_the_model_interface():
    assert PixelCNNPrior.config_cls is PixelCNNConfig
    cfg = PixelCNNConfig(height=8, width=8)
    assert (cfg.channels, cfg.layers, cfg.first_kernel, cfg.kernel, cfg.out_hidden) == (128, 12, 7, 3, 512)
    m = PixelCNNPrior(tiny(layers=4, first_kernel=5, num_classes=2))
    assert m.config.layers == len(m.layers) == 4
    assert m.layers[0].h_conv.conv.kernel_size == (1, 2) and m.layers[0].v_conv.conv.kernel_size == (3, 5)
    assert m.layers[1].h_conv.conv.kernel_size == (1, 2) and m.layers[1].v_conv.conv.kernel_size == (2, 3)


def test_pixelcnn_refuses_codebook_order():
    from vqvae.core.errors import ConfigError
    from vqvae.priors.pixelcnn import PixelCNNConfig

    with pytest.raises(ConfigError, match="raster order"):
        PixelCNNConfig(codebook_size=8, num_codebooks=2, height=3, width=3, order="codebook").validate()
