"""The Trainer: reproducible, resumable bit for bit, safe against NaN and kill -9."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.helpers import image_set, tiny_config, write_npy_data
from vqvae.core import checkpoint
from vqvae.core.errors import TrainingDiverged
from vqvae.core.train import BatchSampler, Trainer
from vqvae.data.sets import TensorSet

REPO = Path(__file__).resolve().parents[2]


def _params(model) -> dict:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _train(run_dir, steps, resume=False, **kw) -> Trainer:
    cfg = tiny_config(steps=steps, eval_every=0, ckpt_every=1000, **kw)
    tr = Trainer(cfg, run_dir, image_set(64), image_set(16, seed=1), resume=resume, progress=False)
    tr.fit()
    return tr


def test_batch_sampler_covers_each_epoch_once():
    s = BatchSampler(10, 3, seed=5)
    epoch0 = torch.cat([s.indices(i) for i in range(3)])
    assert len(set(epoch0.tolist())) == 9  # 3 full batches, no repeats
    assert torch.equal(BatchSampler(10, 3, seed=5).indices(4), s.indices(4))
    assert not torch.equal(BatchSampler(10, 3, seed=6).indices(0), s.indices(0))


def test_same_seed_same_weights(tmp_path):
    a = _params(_train(tmp_path / "a", 6).model)
    b = _params(_train(tmp_path / "b", 6).model)
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = _params(_train(tmp_path / "c", 6, seed=1).model)
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_resume_equals_uninterrupted_bit_for_bit(tmp_path):
    full = _train(tmp_path / "full", 8)
    _train(tmp_path / "part", 3)
    resumed = _train(tmp_path / "part", 8, resume=True)
    assert resumed.step == 8
    a, b = _params(full.model), _params(resumed.model)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    sa, sb = full.optimizer.state_dict()["state"], resumed.optimizer.state_dict()["state"]
    assert sa.keys() == sb.keys()
    for pid in sa:
        for name in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(sa[pid][name], sb[pid][name])
    steps = [json.loads(line)["step"] for line in (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()
             if json.loads(line)["kind"] == "train"]
    assert steps == sorted(steps) and len(steps) == len(set(steps))  # no duplicated log lines after resume


def test_run_directory_contents_and_loss_falls(tmp_path):
    tr = _train(tmp_path / "r", 30)
    names = {p.name for p in (tmp_path / "r").iterdir()}
    assert {"config.json", "model.safetensors", "train_state.safetensors", "metrics.jsonl", "tb"} <= names
    logs = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in logs if r["kind"] == "train"]
    assert train[-1]["recon_loss"] < train[0]["recon_loss"]
    assert logs[-1]["final"] and {"psnr", "ssim", "usage_pct", "perplexity", "bits_per_dim"} <= set(logs[-1])
    cfg, model = checkpoint.load_run(tmp_path / "r")
    assert all(torch.equal(v, tr.model.state_dict()[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize("log_every", [1, 3])
def test_nan_loss_stops_with_step_and_keeps_checkpoint(tmp_path, monkeypatch, log_every):
    """The finite check is a device flag read on logging steps and before checkpoints (not every step): the run
    stops at the first of those after the bad step, names that step (numbered as the logs number steps), and the
    checkpoint on disk is the last good one."""
    tr = Trainer(tiny_config(steps=10, ckpt_every=2, eval_every=0, log_every=log_every), tmp_path, image_set(64), image_set(16),
                 progress=False)
    real = tr.model.forward

    def poisoned(x):
        out = real(x)
        if tr.step == 5:
            out.loss = out.loss * float("nan")
        return out

    monkeypatch.setattr(tr.model, "forward", poisoned)
    with pytest.raises(TrainingDiverged, match="non-finite at step 6 \\(noticed at step 6\\)"):
        tr.fit()
    cfg, model = checkpoint.load_run(tmp_path)
    step, _ = checkpoint.load_train_state(tmp_path, model, torch.optim.Adam(model.parameters()))
    assert step == 4 and all(torch.isfinite(v).all() for v in model.state_dict().values() if v.is_floating_point())


@pytest.mark.slow
def test_kill_9_mid_training_then_resume(tmp_path):
    data = write_npy_data(tmp_path / "data")
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "vqvae", "train", "--config", "tiny", "--data", data, "--out", str(run), "--steps", "100000",
           "--no-progress", "--train.ckpt_every=1", "--train.eval_every=0", "--train.log_every=1"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 300  # a loaded 2-core machine can take a minute just to import torch
        while time.time() < deadline and not (run / checkpoint.STATE).exists() and proc.poll() is None:
            time.sleep(0.1)
        assert proc.poll() is None, f"training exited early: {proc.stderr.read().decode()[-2000:]}"
        time.sleep(1.5)  # well into the loop, checkpointing every step
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert (run / checkpoint.STATE).exists()
    cfg, model = checkpoint.load_run(run)  # readable after the kill
    step, _ = checkpoint.load_train_state(run, model, torch.optim.Adam(model.parameters()))
    assert step > 0
    done = subprocess.run(cmd[:-4] + ["--steps", str(step + 3), "--resume"] + cmd[-3:], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert not list(run.glob(".*.tmp"))
    cfg, model = checkpoint.load_run(run)
    step2, _ = checkpoint.load_train_state(run, model, torch.optim.Adam(model.parameters()))
    assert step2 == step + 3


def test_random_crop_takes_contiguous_windows_and_patches():
    from vqvae.data.augment import random_crop

    x = torch.arange(4 * 2 * 50, dtype=torch.float32).view(4, 2, 50)
    y = random_crop(x, 16, torch.Generator().manual_seed(0))
    assert y.shape == (4, 2, 16)
    for i in range(4):
        start = int(y[i, 0, 0] - x[i, 0, 0])
        assert torch.equal(y[i], x[i, :, start : start + 16])  # same window on every channel
    assert torch.equal(random_crop(x, 16, torch.Generator().manual_seed(0)), y)  # a function of the generator
    assert random_crop(x, 64, torch.Generator()).shape == x.shape  # shorter clips stay whole
    img = torch.arange(3 * 1 * 10 * 12).view(3, 1, 10, 12)
    p = random_crop(img, 4, torch.Generator().manual_seed(1))
    assert p.shape == (3, 1, 4, 4)
    for i in range(3):
        r, c = divmod(int(p[i, 0, 0, 0] - img[i, 0, 0, 0]), 12)
        assert torch.equal(p[i], img[i, :, r : r + 4, c : c + 4])


def test_fp16_with_loss_scaling_trains_and_resumes_its_scale(tmp_path):
    tr = _train(tmp_path / "a", 4, amp="fp16")
    assert tr.scaler.is_enabled() and all(torch.isfinite(p).all() for p in tr.model.parameters())
    scale = tr.scaler.get_scale()
    resumed = Trainer(tiny_config(steps=4, eval_every=0, amp="fp16"), tmp_path / "a", image_set(64), image_set(16, seed=1),
                      resume=True, progress=False)
    assert resumed.step == 4 and resumed.scaler.get_scale() == scale


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_compile_and_channels_last_train_the_same_model(tmp_path):
    """The compiled whole step (inductor on the CPU here: forward, backward, fused Adam, EMA update and restarts,
    after the k-means step) and NHWC change speed, not the maths: the same weights as eager after 6 steps within
    float tolerance, one compilation for all of them (the learning rate changes every step), and the run directory
    loads into a plain model (same state-dict keys); resuming it keeps the learning rate a tensor."""
    from torch._dynamo.utils import counters

    eager = _train(tmp_path / "eager", 6, log_every=100)
    counters.clear()
    _train(tmp_path / "one", 3, compile="default", channels_last=True, log_every=100)  # one compiled step (after k-means)
    one = counters["stats"]["unique_graphs"]
    counters.clear()
    fast = _train(tmp_path / "fast", 6, compile="default", channels_last=True, log_every=100)  # four, the lr moving
    assert one >= 1 and counters["stats"]["unique_graphs"] <= one  # four steps, the lr moving: no recompilation
    resumed = Trainer(tiny_config(steps=8, eval_every=0, compile="default"), tmp_path / "fast", image_set(64), image_set(16, seed=1),
                      resume=True, progress=False)
    assert resumed.step == 6 and torch.is_tensor(resumed.optimizer.param_groups[0]["lr"])
    a, b = _params(eager.model), _params(fast.model)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), atol=1e-4, rtol=1e-3), k
    cfg, model = checkpoint.load_run(tmp_path / "fast")
    assert sorted(model.state_dict()) == sorted(a)


COMPILED = {  # arch -> (a tiny config, a training set, the attributes compile must reach; "" is the whole model)
    "transformer": ({"codebook_size": 8, "height": 2, "width": 2, "n_layer": 2, "n_embd": 16, "n_head": 2},
                    lambda: TensorSet(torch.randint(0, 8, (8, 2, 2)), None, None, "codes"), ("",)),
    "pixelcnn": ({"codebook_size": 8, "height": 2, "width": 2, "channels": 8, "layers": 2, "out_hidden": 8},
                 lambda: TensorSet(torch.randint(0, 8, (8, 2, 2)), None, None, "codes"), ("",)),
    "vqvae": ({"hidden": 8, "res_hidden": 4, "num_res_blocks": 1, "codebook_size": 8, "embedding_dim": 4}, lambda: image_set(16), ("encoder", "decoder")),
    "classifier": ({"width": 4, "feature_dim": 8}, lambda: image_set(16), ("",)),
}


@pytest.mark.parametrize("arch", sorted(COMPILED))
def test_compile_compiles_the_whole_step_for_every_family(tmp_path, arch):
    """train.compile compiles the training step (forward, backward, optimizer, codebook update), whatever the family;
    the learning rate becomes a device tensor (a schedule then recompiles nothing); the modules stay plain (under
    torchrun the task's compile targets are compiled instead)."""
    from vqvae.core.config import build

    model_cfg, data, parts = COMPILED[arch]
    cfg = build({"arch": arch, "model": model_cfg, "train": {"steps": 1, "batch_size": 4, "compile": "default"}})
    tr = Trainer(cfg, tmp_path / "p", data(), data(), progress=False)
    assert tr._compiled_update is not None and torch.is_tensor(tr.optimizer.param_groups[0]["lr"])
    assert all(getattr(getattr(tr.model, p) if p else tr.model, "_compiled_call_impl", None) is None for p in parts)


# -- schedules planned from a wall-clock budget ---------------------------------
def _lrs(run_dir) -> list[float]:
    return [r["lr"] for r in map(json.loads, (Path(run_dir) / "metrics.jsonl").read_text().splitlines()) if r["kind"] == "train"]


def test_a_time_budget_moves_the_schedule_with_the_clock():
    cfg = tiny_config(steps=100, warmup_steps=10, lr_schedule="cosine", lr=1e-3, minutes=1.0)

    class Clocked(Trainer):  # the schedule alone: no model, no data
        def __init__(self, step: int, elapsed: float):
            self.cfg, self.step, self.elapsed_before, self._started = cfg, step, elapsed, None

    t = Clocked(5, 30.0)
    assert t.planned_step() == 50.0  # 5 steps done but half the minute gone: the schedule is half way
    assert t.lr_at(t.planned_step()) == pytest.approx(1e-3 * 0.5 * (1 + math.cos(math.pi * 40 / 90)))
    assert Clocked(5, 0.0).planned_step() == 5.0  # ahead of the clock: the step itself
    assert Clocked(0, 3.0).lr_at(Clocked(0, 3.0).planned_step()) == pytest.approx(1e-3 * 6 / 10)  # warm-up by the clock too
    cfg.train.minutes = 0.0
    assert Clocked(5, 1e9).planned_step() == 5.0  # no budget: steps only


def test_a_run_stopped_by_its_budget_has_warmed_up_and_decayed(tmp_path):
    """However slow the machine, the last steps of a budget-bound run are near the end of the decay."""
    tr = _train(tmp_path / "r", 10**6, minutes=0.03, warmup_steps=50, lr_schedule="cosine", lr=1e-3)
    lrs = _lrs(tmp_path / "r")
    assert 0 < tr.step < 10**6
    assert max(lrs) > 0.9e-3  # the warm-up ended (it is 50 of a million steps, but a fraction of the time)
    assert lrs[-1] < 0.1e-3  # and the cosine had nearly reached 0 when the time ran out
    state_extra = checkpoint.load_train_state(tmp_path / "r", tr.model, tr.optimizer)[1]
    assert state_extra["elapsed_seconds"] == pytest.approx(1.8, abs=0.6)  # the budget, stored for --resume


def test_a_budget_the_machine_keeps_changes_nothing(tmp_path):
    """Ahead of the clock the schedule is the steps': the same weights as a run without a budget (bit for bit)."""
    a = _params(_train(tmp_path / "a", 6, warmup_steps=2, lr_schedule="cosine").model)
    b = _params(_train(tmp_path / "b", 6, warmup_steps=2, lr_schedule="cosine", minutes=600.0).model)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert _lrs(tmp_path / "a") == _lrs(tmp_path / "b")


def test_resuming_a_budgeted_run_continues_its_clock(tmp_path):
    first = _train(tmp_path / "r", 4, minutes=600.0)
    cfg = tiny_config(steps=8, eval_every=0, ckpt_every=1000, minutes=600.0)
    tr = Trainer(cfg, tmp_path / "r", image_set(64), image_set(16, seed=1), resume=True, progress=False)
    assert tr.step == 4 and 0 < tr.elapsed_before == pytest.approx(first.elapsed(), abs=1.0)  # the first invocation's seconds


def test_the_thread_tuner_keeps_the_fastest_count(monkeypatch):
    """threads=-1 times each candidate on real steps and keeps the fastest (here 1 thread, made fast by a fake clock)."""
    from vqvae.core import pace

    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)
    chosen = []
    monkeypatch.setattr(torch, "set_num_threads", chosen.append)
    tuner = pace.ThreadTuner(warmup=1, per=2)
    assert tuner.candidates == [4, 2, 1]
    step_cost = {4: 5, 2: 3, 1: 1}  # seconds a step on each count
    now = [0.0]
    monkeypatch.setattr(pace.time, "perf_counter", lambda: now[0])
    said = None
    for _ in range(12):
        said = tuner.tick() or said
        now[0] += step_cost[chosen[-1]] if chosen else 7
    assert tuner.choice == 1 and chosen[-1] == 1
    assert said.startswith("threads: 1") and tuner.times == {4: 10.0, 2: 6.0, 1: 2.0}


def test_threads_minus_one_trains(tmp_path):
    tr = _train(tmp_path / "r", 12, threads=-1)
    assert tr.step == 12


def test_the_final_evaluation_covers_final_eval_images(tmp_path):
    """train.final_eval_images bounds the final evaluation (0: the whole test set), for runs whose evaluation is costly
    (the baselines' importance-weighted bounds) and that are scored apart."""
    whole = Trainer(tiny_config(steps=1, eval_every=0), tmp_path / "a", image_set(64), image_set(16, seed=1), progress=False).fit()
    part = Trainer(tiny_config(steps=1, eval_every=0, final_eval_images=5), tmp_path / "b", image_set(64), image_set(16, seed=1),
                   progress=False).fit()
    assert (whole["images"], part["images"]) == (16, 5)
