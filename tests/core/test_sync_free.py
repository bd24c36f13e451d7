"""A training step never waits for the device (the GPU-pace issue): no ``.item()``, ``bool()``, ``float()``, ``int()``,
``.tolist()`` or ``.cpu()`` of a tensor in 20 steps between logging steps, for every family that trains on a GPU.

On a GPU each of those is a host sync that stalls the launch queue; on the CPU they are cheap, so this counts them
instead of timing them: a count of 0 here is what lets a GPU step run back to back (and be captured whole)."""

from __future__ import annotations

import contextlib

import pytest
import torch

from tests.helpers import image_set
from vqvae.core.config import build
from vqvae.core.train import Trainer
from vqvae.data.sets import TensorSet

READS = ("item", "__bool__", "__float__", "__int__", "__index__", "tolist", "cpu", "numpy")


@contextlib.contextmanager
def count_reads(monkeypatch):
    """Count every read of a tensor's value back to the host (by method) while the block runs."""
    seen: dict[str, int] = {}
    for name in READS:
        real = getattr(torch.Tensor, name)

        def wrapped(self, *a, _real=real, _name=name, **k):
            seen[_name] = seen.get(_name, 0) + 1
            return _real(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, wrapped)
    try:
        yield seen
    finally:
        monkeypatch.undo()


def codes():
    return TensorSet(torch.randint(0, 8, (32, 4, 4)), torch.arange(32) % 3, None, "codes")


def captioned_codes():
    return TensorSet(torch.randint(0, 8, (32, 4, 4)), torch.randint(0, 20, (32, 4)), None, "captions")


TOK = {"hidden": 8, "res_hidden": 4, "num_res_blocks": 1, "codebook_size": 8, "embedding_dim": 4}
CASES = {  # name -> (arch, model config, data config, training set)
    "vqvae-vq": ("vqvae", {**TOK, "quantizer": "vq", "restart_after": 2}, {"crop": 12, "hflip": True}, lambda: image_set(32)),
    "vqvae-ema": ("vqvae", {**TOK, "quantizer": "ema", "kmeans_init": True, "restart_after": 2}, {}, lambda: image_set(32)),
    "vqvae-rvq": ("vqvae", {**TOK, "num_codebooks": 2, "codebook_layout": "residual", "quantizer_dropout": 0.5}, {},
                  lambda: image_set(32)),
    "dvae": ("dvae", {**TOK, "tau_steps": 10, "kl_steps": 10, "kl_weight": 1.0}, {}, lambda: image_set(32)),
    "transformer": ("transformer", {"codebook_size": 8, "height": 4, "width": 4, "n_layer": 2, "n_embd": 16, "n_head": 2,
                                    "num_classes": 3, "label_dropout": 0.1}, {}, codes),
    "dalle": ("dalle", {"text_vocab": 20, "text_len": 4, "image_vocab": 8, "height": 4, "width": 4, "n_layer": 4, "n_head": 2,
                        "n_embd": 16, "conv_radius": 1}, {}, captioned_codes),
    "pixelcnn": ("pixelcnn", {"codebook_size": 8, "height": 4, "width": 4, "channels": 8, "layers": 2, "out_hidden": 8,
                              "num_classes": 3}, {}, codes),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_twenty_steps_between_logs_read_nothing_back_from_the_device(tmp_path, monkeypatch, name):
    arch, model, data, make = CASES[name]
    cfg = build({"arch": arch, "model": model, "data": data,
                 "train": {"steps": 100, "batch_size": 8, "log_every": 1000, "eval_every": 0, "grad_clip": 1.0}})
    tr = Trainer(cfg, tmp_path / "run", make(), make(), progress=False)
    for _ in range(3):  # the first steps may do one-off work (k-means initialisation reads its flag once)
        tr.meter.add(tr.train_step(*tr.batch(tr.step), detail=False))
    with count_reads(monkeypatch) as seen:
        for _ in range(20):  # the loop's body on a step that does not log (see Trainer.fit)
            tr._out_of_time(float("inf"), log_now=False)
            tr.meter.add(tr.train_step(*tr.batch(tr.step), detail=False))
    assert seen == {}, seen
    record = tr.meter.record({"lr": 1e-3})  # the logging step: one read of everything accumulated
    assert record["lr"] == 1e-3 and all(isinstance(v, float) for v in record.values()) and "loss" in record


def test_the_counter_sees_a_read(monkeypatch):
    with count_reads(monkeypatch) as seen:
        bool(torch.ones(()) > 0)
        torch.ones(2).tolist()
    assert seen == {"__bool__": 1, "tolist": 1}


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_forward_and_loss_trace_as_one_graph(tmp_path, name):
    """``torch._dynamo.explain`` of the task's step (forward, loss, and inside the forward the codebook's EMA update,
    restarts and usage counts): one graph, no break, so ``torch.compile`` can take the whole model, quantizer included.

    The backward and the optimizer are outside this graph: dynamo does not trace ``Tensor.backward()`` and
    ``Optimizer.step`` breaks the graph on purpose (pytorch#104053); the whole step goes into a CUDA graph by capture
    instead, which needs what the read count above checks."""
    arch, model, data, make = CASES[name]
    cfg = build({"arch": arch, "model": model, "data": data, "train": {"steps": 10, "batch_size": 8, "eval_every": 0}})
    tr = Trainer(cfg, tmp_path / "run", make(), make(), progress=False)
    for _ in range(3):
        tr.train_step(*tr.batch(tr.step), detail=False)
    x, y = tr.batch(tr.step)
    torch._dynamo.reset()
    explained = torch._dynamo.explain(lambda x, y: tr.task.step(tr.model, x, y, False))(x, y)
    assert (explained.graph_count, explained.graph_break_count) == (1, 0), [str(b.reason)[:200] for b in explained.break_reasons]


def test_out_of_range_training_ids_are_refused_once_when_prepared(tmp_path):
    """The steps skip the range check, so the task checks the whole training set when it prepares it."""
    from vqvae.core.errors import VQVAEError

    arch, model, data, _ = CASES["transformer"]
    bad = TensorSet(torch.full((8, 4, 4), 8), torch.zeros(8, dtype=torch.long), None, "codes")  # K = 8: 8 is out of range
    cfg = build({"arch": arch, "model": model, "train": {"steps": 1, "batch_size": 4}})
    with pytest.raises(VQVAEError, match=r"codes of codes must lie in \[0, 8\), got \[8, 8\]"):
        Trainer(cfg, tmp_path / "p", bad, bad, progress=False)
    arch, model, _, _ = CASES["dalle"]
    bad_text = TensorSet(torch.zeros(8, 4, 4, dtype=torch.long), torch.full((8, 4), 20), None, "captions")
    cfg = build({"arch": arch, "model": model, "train": {"steps": 1, "batch_size": 4}})
    with pytest.raises(VQVAEError, match=r"text ids of captions must lie in \[0, 20\)"):
        Trainer(cfg, tmp_path / "d", bad_text, bad_text, progress=False)
