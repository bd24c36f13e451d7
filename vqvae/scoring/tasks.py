"""The classifier that scores samples: how it trains on images or speech, and its registration."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vqvae.core.errors import VQVAEError
from vqvae.core.task import Task, with_reconstructions
from vqvae.data.audio import audio_split, labelled
from vqvae.data.splits import image_split
from vqvae.registry import Arch, register
from vqvae.scoring.classifier import Classifier


class ClassifierTask(Task):
    """uint8 images (or, with ``model.input=logmel``, waveforms) + labels -> cross-entropy; evaluated as accuracy.
    With ``data.reconstructions_from`` the training split is followed by that tokenizer's reconstructions of it."""

    bar = ("loss", "acc")
    curves = (("loss", "loss", "loss"), ("acc", "accuracy", "accuracy"))
    images = True

    def load_split(self, cfg, split, root=None, progress=True):
        d = cfg.data
        audio = cfg.model.input == "logmel"
        ds = audio_split(d, split, root) if audio else image_split(d, split, root)
        if split == "train" and d.reconstructions_from:
            ds = with_reconstructions(d.reconstructions_from, ds, progress)
        return labelled(ds, d.label) if audio else ds

    def prepare(self, cfg, train_set) -> None:
        if train_set.labels is None:
            raise VQVAEError(f"{train_set.name} has no labels to train a classifier on")
        if cfg.model.in_channels == 0:
            cfg.model.in_channels = getattr(train_set, "channels", 1) if cfg.model.input == "image" else 1
        if cfg.model.input == "logmel":
            cfg.model.sample_rate = cfg.data.sample_rate
        if cfg.model.num_classes == 0:
            cfg.model.num_classes = int(train_set.labels.max()) + 1

    def step(self, model, x, y, detail):
        logits = model(x)
        return F.cross_entropy(logits, y), {"acc": (logits.argmax(1) == y).float().mean()}

    @torch.no_grad()
    def evaluate(self, model, x, y, batch_size):
        was = model.training
        model.eval()
        dev = next(model.parameters()).device
        correct, nll = 0, 0.0
        for s in self.batches(x.shape[0], batch_size):
            logits = model(x[s : s + batch_size].to(dev))
            yb = y[s : s + batch_size].to(dev)
            correct += int((logits.argmax(1) == yb).sum())
            nll += F.cross_entropy(logits, yb, reduction="sum").item()
        model.train(was)
        return {"accuracy": correct / x.shape[0], "loss": nll / x.shape[0], "images": x.shape[0]}


register(Arch("classifier", Classifier, ClassifierTask, "classifier", reads_reconstructions=True))
