"""Training under torchrun's environment with 2 gloo processes on the CPU.

Oracles: after several steps (k-means initialisation and dead-code restarts
included) both ranks hold bit-identical parameters, codebooks and EMA state;
and without restarts, 2 processes on a global batch of B train the same model
as 1 process on the same B (gradients averaged over equal halves, EMA
statistics summed, k-means on the gathered batch).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file

from vqvae.core.dist import free_port

STEPS = 6


def _config(restart_after: int, quantizer: str = "ema"):
    from tests.helpers import tiny_config

    cfg = tiny_config(steps=STEPS, eval_every=0, batch_size=16, ckpt_every=1000)
    cfg.model.restart_after = restart_after
    cfg.model.quantizer = quantizer
    return cfg


def _train(run_dir: Path, restart_after: int, quantizer: str):
    """Train the tiny config; returns (trainer, number of codebook writes: k-means + restarts)."""
    from tests.helpers import image_set
    from vqvae.core.train import Trainer

    torch.set_num_threads(1)
    tr = Trainer(_config(restart_after, quantizer), run_dir, image_set(64), image_set(16, seed=1), progress=False)
    q = tr.model.quantizer
    writes = []
    original = q._set_codes
    q._set_codes = lambda mask, vectors: (writes.append(int(mask.sum())), original(mask, vectors))[1]  # codes written (0: none)
    tr.fit()
    return tr, sum(1 for w in writes if w)


def _worker(rank: int, world: int, port: int, out: str, restart_after: int, quantizer: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    from vqvae.core import dist

    tr, writes = _train(Path(out) / "run", restart_after, quantizer)
    assert tr.distributed and dist.world_size() == world
    save_file({k: v.contiguous() for k, v in tr.model.state_dict().items()}, str(Path(out) / f"rank{rank}.safetensors"))
    (Path(out) / f"rank{rank}.json").write_text(json.dumps({"writes": writes, "step": tr.step}))
    dist.shutdown()


def _spawn(tmp_path: Path, restart_after: int, quantizer: str = "ema") -> list[dict]:
    mp.spawn(_worker, args=(2, free_port(), str(tmp_path), restart_after, quantizer), nprocs=2, join=True)
    return [load_file(str(tmp_path / f"rank{r}.safetensors")) for r in range(2)], [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]


@pytest.mark.slow
@pytest.mark.parametrize("quantizer", ["ema", "vq"])
def test_two_ranks_stay_identical_through_kmeans_and_restarts(tmp_path, quantizer):
    states, info = _spawn(tmp_path, restart_after=2, quantizer=quantizer)
    assert info[0]["step"] == info[1]["step"] == STEPS
    assert info[0]["writes"] == info[1]["writes"] > 1  # k-means, then restarts, on both ranks alike
    for k in states[0]:
        assert torch.equal(states[0][k], states[1][k]), k
    assert (tmp_path / "run" / "model.safetensors").is_file() and (tmp_path / "run" / "metrics.jsonl").is_file()


@pytest.mark.slow
def test_two_ranks_train_like_one_process_on_the_same_global_batch(tmp_path):
    states, _ = _spawn(tmp_path / "ddp", restart_after=0)
    single, _ = _train(tmp_path / "single", restart_after=0, quantizer="ema")
    ref = single.model.state_dict()
    for k, v in states[0].items():
        assert torch.allclose(v.float(), ref[k].float(), atol=1e-5, rtol=1e-4), k


@pytest.mark.slow
def test_torchrun_cli_two_processes(tmp_path):
    """``torchrun --nproc_per_node=2 -m vqvae train ...`` end to end: one run directory, written by rank 0."""
    import subprocess
    import sys

    from tests.helpers import write_npy_data

    data = write_npy_data(tmp_path / "data")
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port", str(free_port()), "-m", "vqvae", "train",
           "--config", "tiny", "--data", data, "--out", str(run), "--steps", "4", "--no-progress", "--train.eval_images=8",
           "--train.powersgd_rank=1"]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("training vqvae") == 1 and "x 2 processes" in r.stdout  # rank 0 speaks once
    assert json.loads((run / "eval.json").read_text())["step"] == 4


def _powersgd_worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    from tests.helpers import image_set, tiny_config
    from vqvae.core import dist
    from vqvae.core.train import Trainer

    torch.set_num_threads(1)
    cfg = tiny_config(steps=40, eval_every=0, batch_size=16, ckpt_every=1000, powersgd_rank=1, lr=3e-3)
    tr = Trainer(cfg, Path(out) / "run", image_set(64), image_set(16, seed=1), progress=False)
    before = tr.evaluate()["loss"]
    after = tr.fit()["loss"]
    st, r = tr.powersgd, cfg.train.powersgd_rank
    # oracle: PowerSGD factors each gradient matrix (n, m) with n * m > 2 (n + m) r as P (n, r) Q (m, r); vectors go uncompressed
    mats = [(p.shape[0], p.numel() // p.shape[0]) for p in tr.model.parameters() if p.requires_grad and p.ndim > 1]
    expected = sum(r * (n + m) for n, m in mats if 2 * (n + m) * r < n * m)
    held = sum(t.numel() for t in [*st.p_memory_dict.values(), *st.q_memory_dict.values()])
    (Path(out) / f"psgd{rank}.json").write_text(json.dumps({"before": before, "after": after, "iter": st.iter, "factor_elements": held,
                                                            "expected": expected, "uncompressed": sum(n * m for n, m in mats)}))
    dist.shutdown()


@pytest.mark.slow
def test_powersgd_compresses_the_gradients_and_training_still_learns(tmp_path):
    """The PowerSGD hook's state holds the rank-1 factors of the gradients (they went through them), and the test loss falls."""
    mp.spawn(_powersgd_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    for r in range(2):
        info = json.loads((tmp_path / f"psgd{r}.json").read_text())
        assert info["factor_elements"] == info["expected"] > 0, info  # rank-1 factors of every compressible gradient matrix
        assert info["factor_elements"] < info["uncompressed"] / 4, info
        assert info["iter"] > 2  # past start_powerSGD_iter: the compressed all-reduce ran
        assert info["after"] < 0.8 * info["before"], info
