"""Per-resblock gradient scaling (DALL-E's fp16 recipe): exact unscaling, per-block back-off and growth, the Trainer."""

from __future__ import annotations

import torch

from tests.text2image.test_dalle import batch, model
from vqvae.core.amp import BlockGradScaler
from vqvae.registry import task_for


def _scaler(m, **kw):
    return task_for("dalle").grad_scaler(m, torch.device("cpu"), True) if not kw else BlockGradScaler(
        m, m.blocks, [p for e in (m.text_emb, m.text_pos, m.image_emb, m.row_emb, m.col_emb) for p in e.parameters()], "cpu", **kw)


def _grads(m):
    return {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}


def test_unscaled_gradients_equal_plain_backward_whatever_the_scales():
    """Scales of 2^3 .. 2^12, a different one per block: after unscale_ every parameter's gradient is the plain one."""
    m = model(n_layer=4).train()
    text, codes = batch(m)
    m(text, codes).loss.backward()
    plain = _grads(m)
    m.zero_grad()
    s = _scaler(m)
    s.scales = torch.tensor([2.0**3, 2.0**9, 2.0**5, 2.0**12, 2.0**7])
    s.scale(m(text, codes).loss).backward()
    assert not torch.allclose(m.text_emb.weight.grad, plain["text_emb.weight"])  # still scaled: by s_0 = 8
    torch.testing.assert_close(m.text_emb.weight.grad / 8, plain["text_emb.weight"])
    s.unscale_()
    got = _grads(m)
    assert got.keys() == plain.keys() and float(s.found_inf.sum()) == 0
    for k in plain:
        torch.testing.assert_close(got[k], plain[k], rtol=1e-5, atol=1e-7)


def test_an_overflowing_block_skips_the_step_and_backs_off_alone_and_clean_steps_grow():
    m = model(n_layer=3).train()
    text, codes = batch(m)
    s = _scaler(m, growth_interval=2)
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    s.scale(m(text, codes).loss).backward()
    next(m.blocks[1].parameters()).grad[0] = float("inf")  # block 1 overflowed
    assert s.step(opt) is False and all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    s.update()
    assert s.scales.tolist() == [2.0**13, 2.0**12, 2.0**13, 2.0**13]  # only block 1's scale halves
    for _ in range(2):  # two clean steps: every scale grows
        opt.zero_grad()
        s.scale(m(text, codes).loss).backward()
        assert s.step(opt) is True
        s.update()
    assert s.scales.tolist() == [2.0**14, 2.0**13, 2.0**14, 2.0**14]
    restored = _scaler(m, growth_interval=2)
    restored.load_state_dict(s.state_dict())
    assert torch.equal(restored.scales, s.scales) and torch.equal(restored.good, s.good)


def test_dalle_trains_in_fp16_with_one_scale_per_block(tmp_path):
    """The Trainer takes the family's scaler: DALL-E under fp16 autocast (on the CPU here) keeps a scale per block,
    trains, and resumes with its scales."""
    from tests.core.test_sync_free import captioned_codes
    from vqvae.core.config import build
    from vqvae.core.train import Trainer

    cfg = build({"arch": "dalle", "model": {"text_vocab": 20, "text_len": 4, "image_vocab": 8, "height": 4, "width": 4, "n_layer": 3,
                                            "n_head": 2, "n_embd": 16, "conv_radius": 1},
                 "train": {"steps": 6, "batch_size": 8, "amp": "fp16", "eval_every": 0, "log_every": 2, "lr": 3e-3}})
    tr = Trainer(cfg, tmp_path / "run", captioned_codes(), captioned_codes(), progress=False)
    assert isinstance(tr.scaler, BlockGradScaler) and tr.scaler.scales.numel() == 4
    final = tr.fit()
    assert torch.isfinite(torch.tensor(final["loss"]))
    resumed = Trainer(cfg, tmp_path / "run", captioned_codes(), captioned_codes(), resume=True, progress=False)
    assert torch.equal(resumed.scaler.scales, tr.scaler.scales)
