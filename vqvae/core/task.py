"""What the Trainer and the run lifecycle need from a model family: the :class:`Task` interface.

The :class:`~vqvae.core.train.Trainer` owns the loop, the optimizer, the
schedule, logging, checkpoints and resuming; a task says, for the archs it is
registered with (:mod:`vqvae.registry`):

* which data the run reads (:meth:`Task.load_split`) and what it checks or
  fills in from that data before the model is built (:meth:`Task.prepare`);
* how a batch ``(x, y)`` becomes a loss and progress logs (:meth:`Task.step`);
* how the model is evaluated (:meth:`Task.evaluate`), what a finished run
  draws and says (:meth:`Task.report`), which modules ``train.compile``
  compiles (:meth:`Task.compile_targets`).

Tokenizers (:class:`TokenizerTask`) also turn data into codes and back, which
is all the priors, DALL-E and the reconstruction-reading classifiers need to
know of them: :meth:`TokenizerTask.encode`, :meth:`TokenizerTask.reconstruct_inputs`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from vqvae import registry
from vqvae.core import checkpoint
from vqvae.core.errors import DataError, VQVAEError
from vqvae.core.progress import batches
from vqvae.data.sets import TensorSet
from vqvae.data.splits import image_split


def raw(model):
    """The model under a DistributedDataParallel wrapper (or the model itself)."""
    return getattr(model, "module", model)


class Task:
    bar = ("loss",)  # logs shown on the progress bar
    curves = (("loss", "loss", "loss"),)  # (train key, test key, title) panels of loss_curves.png
    images = False  # inputs are images (random flips, crops and channels_last apply)
    show_progress = False  # set by the Trainer for its final evaluation: long loops show a bar

    def batches(self, n: int, batch_size: int, desc: str = "evaluating"):
        """Batch starts for :meth:`evaluate`'s loop, behind a bar when :attr:`show_progress` is set."""
        return batches(n, batch_size, desc if self.show_progress else None)

    def load_split(self, cfg, split: str, root: str | None = None, progress: bool = True) -> TensorSet:
        """The ``split`` of the run's data (``root`` overrides ``data.root``; ``progress``: bars on long preparation)."""
        return image_split(cfg.data, split, root)

    def prepare(self, cfg, train_set) -> None:
        """Fill in / check the model config against the training data (before the model exists)."""

    def step(self, model, x, y, detail: bool) -> tuple[torch.Tensor, dict]:
        raise NotImplementedError

    def evaluate(self, model, x, y, batch_size: int) -> dict:
        raise NotImplementedError

    def compile_targets(self, model: nn.Module) -> list[nn.Module]:
        """The modules ``train.compile`` compiles in place: the whole model unless the family says otherwise."""
        return [model]

    def grad_scaler(self, model: nn.Module, device: torch.device, enabled: bool):
        """The gradient scaler of fp16 training (``enabled``): one dynamic loss scale unless the family keeps more
        (DALL-E: one per resblock, :class:`vqvae.core.amp.BlockGradScaler`)."""
        return torch.amp.GradScaler(device.type, enabled=enabled)

    def report(self, run_dir: Path, model, test_set, final: dict) -> str:
        """Write a finished run's pictures into ``run_dir``; return its one-line summary."""
        return f"step {final['step']}: " + ", ".join(f"test {k} {v:.4g}" for k, v in final.items() if k in ("accuracy", "loss"))


class TokenizerTask(Task):
    """A task whose model turns data into codes (image and audio VQ-VAEs, the dVAE)."""

    preview = ("samples.png", 64)  # where a finished prior over these codes renders its samples, and how many

    def encode(self, model, x: torch.Tensor) -> np.ndarray:
        """Codes of inputs ``x`` as int64 numpy: maps ``(N, h, w)`` or ``(N, G, h, w)`` for images, rows ``(N, t)`` for
        audio (the priors model a row as a ``1 x t`` map: :func:`vqvae.priors.codes.dataset_codes`)."""
        raise NotImplementedError

    def reconstruct_inputs(self, model, ds: TensorSet, progress: bool = True, batch_size: int | None = None) -> torch.Tensor:
        """``ds.images`` passed through the tokenizer (encoded, decoded), same shape: what a classifier or CLIP
        that reads decoded samples trains on beside the real data (``data.reconstructions_from``)."""
        raise NotImplementedError

    def decode(self, model, codes) -> torch.Tensor:
        """Code maps (as :meth:`encode` gives them) -> data on the CPU."""
        raise NotImplementedError

    def codes_per_second(self, model_config) -> float | None:
        """For tokenizers of signals in time, the code rate (priors report bits/s under it); ``None`` for images."""
        return None

    def render(self, model, codes: torch.Tensor, out, labels: torch.Tensor | None = None, nrow: int = 8, voice: int | None = None) -> None:
        """Decode sampled code maps and write them where people look at them: an image grid, or wav files."""
        raise NotImplementedError

    def voice(self, cfg, name: str) -> int:
        """The id of speaker ``name`` (``--speaker``) in the tokenizer run ``cfg``, for tokenizers that have voices."""
        raise VQVAEError("--speaker is for priors over audio codes; use --label for image classes")

    def compile_targets(self, model: nn.Module) -> list[nn.Module]:
        return [model.encoder, model.decoder]  # the quantizer's k-means, bincounts and restarts stay eager


def with_reconstructions(run: str, ds: TensorSet, progress: bool = True) -> TensorSet:
    """``ds`` followed by the reconstructions of it by the tokenizer in ``run`` (same labels)."""
    cfg, model = checkpoint.load_run(run)
    task = tokenizer_task(cfg.arch, f"data.reconstructions_from={run}")
    return ds.followed_by(task.reconstruct_inputs(model, ds, progress))


def tokenizer_task(arch: str, what: str) -> TokenizerTask:
    """The task of tokenizer arch ``arch``, or a one-line error saying that ``what`` is not a tokenizer run."""
    task = registry.task_for(arch)
    if not isinstance(task, TokenizerTask):
        raise DataError(f"{what} is a {arch} run, not a tokenizer (an image or audio VQ-VAE or a dVAE: {', '.join(registry.names('tokenizer'))})")
    return task


def load_split(cfg, split: str, root: str | None = None, progress: bool = True) -> TensorSet:
    """The ``split`` of a run's data, as the task of its arch reads it."""
    return registry.task_for(cfg.arch).load_split(cfg, split, root, progress)


def check_ids(ids: torch.Tensor, high: int, what: str) -> None:
    """A one-line error unless every id of a training set lies in ``[0, high)``: checked once when a task prepares
    its data, so that the models skip the check in their training steps (it reads the data back to the host)."""
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= high):
        raise VQVAEError(f"{what} must lie in [0, {high}), got [{int(ids.min())}, {int(ids.max())}]")
