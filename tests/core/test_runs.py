"""The one run lifecycle (vqvae.core.runs) under torchrun's environment: 2 gloo processes train a prior and a CLIP.

Oracles: an audit hook in each process records every file it opens for writing, renames, creates or deletes under
the run directory; rank 1 does none of it and rank 0 writes the whole run. Both ranks end with bit-identical
parameters (gradients all-reduced; the CLIP's BPE learnt by rank 0 and read back by both).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from tests.helpers import write_npy_data
from vqvae.core.dist import free_port

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "runs"
Q = ["--no-progress", "--train.eval_images=8", "--train.batch_size=8", "--train.log_every=1", "--train.eval_every=2"]
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def _writes_under(run: Path, log: list[str]):
    """An audit hook that appends to ``log`` each path under ``run`` this process writes, renames, creates or deletes."""
    root = str(run.resolve())

    def hook(event: str, args) -> None:
        if event == "open":
            path, mode, flags = args
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (isinstance(flags, int) and flags & WRITE_FLAGS)
            paths = [path] if writing else []
        elif event in ("os.rename", "os.replace"):
            paths = [args[1]]
        elif event in ("os.mkdir", "os.remove", "os.rmdir", "os.unlink"):
            paths = [args[0]]
        else:
            return
        for p in paths:
            if isinstance(p, (str, os.PathLike)) and os.path.abspath(os.fspath(p)).startswith(root):
                log.append(f"{event} {os.fspath(p)}")

    return hook


def _worker(rank: int, world: int, port: int, work: str, argv: list[str], run: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    os.chdir(work)
    torch.set_num_threads(1)
    from vqvae.cli import main
    from vqvae.core import runs
    from vqvae.core import train as train_mod

    runs.time.strftime = lambda fmt: f"clock{rank}"  # each rank's clock says another time: the run's name must be rank 0's

    digests, fit = [], train_mod.Trainer.fit

    def fit_and_digest(self):
        final = fit(self)
        h = hashlib.sha256()
        for name, p in sorted(self.model.named_parameters()):
            h.update(name.encode() + p.detach().cpu().contiguous().numpy().tobytes())
        digests.append(h.hexdigest())
        return final

    train_mod.Trainer.fit = fit_and_digest
    writes: list[str] = []
    sys.addaudithook(_writes_under(Path(work) / run, writes))
    code = main(argv)
    (Path(work) / f"rank{rank}.json").write_text(json.dumps({"code": code, "writes": writes, "digests": digests}))


def _spawn(work: Path, argv: list[str], run: str) -> list[dict]:
    mp.spawn(_worker, args=(2, free_port(), str(work), argv, run), nprocs=2, join=True)
    return [json.loads((work / f"rank{r}.json").read_text()) for r in range(2)]


def _check(ranks: list[dict], run: Path) -> None:
    assert ranks[0]["code"] == ranks[1]["code"] == 0
    assert ranks[1]["writes"] == []  # rank 1 writes nothing of the run directory
    assert any(w.endswith("config.json") for w in ranks[0]["writes"]) and (run / "eval.json").is_file() and (run / "loss_curves.png").is_file()
    assert len(ranks[0]["digests"]) == len(ranks[1]["digests"]) == 1
    assert ranks[0]["digests"] == ranks[1]["digests"]  # the same parameters on both ranks


@pytest.mark.slow
def test_a_prior_trains_on_two_ranks_and_only_rank_0_writes(tmp_path):
    write_npy_data(tmp_path / "data", size=16, channels=1)  # the data the fixture tokenizer was trained on
    shutil.copytree(FIXTURES / "tok", tmp_path / "tok")
    argv = ["prior", "train", "--tokenizer", "tok", "--arch", "transformer", "--conditional", "--out", "prior", "--steps", "4",
            "--model.n_layer=1", "--model.n_embd=16", "--model.n_head=2", *Q]
    ranks = _spawn(tmp_path, argv, "prior")
    _check(ranks, tmp_path / "prior")
    assert (tmp_path / "prior" / "samples.png").is_file()


@pytest.mark.slow
def test_a_clip_trains_on_two_ranks_with_one_bpe_and_only_rank_0_writes(tmp_path):
    from vqvae.core.errors import DataError
    from vqvae.data.scenes import scene_split

    try:
        scene_split(40, "train")
    except DataError as e:
        pytest.skip(f"the scenes need MNIST and Fashion-MNIST: {e}")
    argv = ["clip", "train", "--data", "scenes:40", "--steps", "3", "--model.width=4", "--model.n_layer=1",  # no --out: runs/clip-<time>
            "--model.n_embd=16", "--model.n_head=2", "--model.embed_dim=8", "--model.bpe_vocab=300", *Q]
    ranks = _spawn(tmp_path, argv, "runs")
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["clip-clock0"]  # one name, rank 0's time stamp, on both ranks
    run = tmp_path / "runs" / "clip-clock0"
    _check(ranks, run)
    assert any("text.json" in w for w in ranks[0]["writes"])
