"""The scene reader: the classifier that scores DALL-E's samples (issue 5) by reading every object's attributes.

A generated 64 x 64 scene is correct when everything its caption says is in
it: the layout (one object above the other, or side by side), and for each of
the two slots (top / left, then bottom / right) the object's class (20: ten
digits, ten Fashion-MNIST items), colour (6) and size (2). The reader predicts
exactly these seven heads (:data:`vqvae.data.scenes.HEADS`).

It reads object by object, as the captions are built: a small net reads the
layout from the whole scene; the scene is then cut into the two halves that
layout names (top and bottom, or left and right: every object of a scene lies
in its own half, :func:`vqvae.data.scenes._place`), and one shared object net, fully
convolutional with global average and max pooling, reads each half's class,
colour and size. Every scene so trains the object net twice, and the object
net never sees the other object: a whole-scene net (the first version, three
conv stages flattened at 8 x 8) had to learn every class at every place and
read 83 % of the objects' classes on real held-out scenes, which put its
ceiling (67.7 % of scenes fully right) below the 70 % goal it scores; the
per-half reader reads 90-92 % of them (82-84 % of scenes, BENCHMARKS.md). The halves
are chosen by the predicted layout (argmax, no gradient), in training too, so
the object net trains on the right halves once the layout head is right.

Trained on the ``reader`` split of the scenes (every colour-class pair,
MNIST / Fashion-MNIST training glyphs: an instrument must not share the
generator's held-out gaps) and, with ``data.reconstructions_from``, on a
tokenizer's reconstructions of them, so it reads decoded scenes; its accuracy
on real ``test`` and ``heldout`` scenes and on their reconstructions is the
ceiling for any faithfulness figure read through it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from vqvae.core.errors import ConfigError
from vqvae.data.scenes import HEADS
from vqvae.image.likelihoods import to_input
from vqvae.scoring.classifier import conv_stage


@dataclass
class SceneReaderConfig:
    width: int = 16
    feature_dim: int = 256
    dropout: float = 0.2

    def validate(self) -> None:
        if self.width < 1 or self.feature_dim < 1 or not 0.0 <= self.dropout < 1.0:
            raise ConfigError("model.width and model.feature_dim must be >= 1 and model.dropout in [0, 1)")


class SceneReader(nn.Module):
    config_cls = SceneReaderConfig

    def __init__(self, config: SceneReaderConfig):
        super().__init__()
        config.validate()
        self.config = c = config
        self.head_sizes = [n for _, n in HEADS]
        self.object_size = sum(self.head_sizes[1:4])  # one object's class, colour and size logits
        w = c.width
        # the layout from the whole scene, at 1/4 then 1/8 resolution: where the ink is
        self.layout = nn.Sequential(nn.Conv2d(3, 16, 5, stride=4, padding=2), nn.ReLU(), nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
                                    nn.Flatten(), nn.Linear(32 * 8 * 8, self.head_sizes[0]))
        # one object from a half-scene (32 x 64 or 64 x 32): four stages, then global average and max pooling
        self.body = nn.Sequential(nn.Conv2d(3, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(), nn.MaxPool2d(2),
                                  *conv_stage(w, 2 * w), nn.MaxPool2d(2), *conv_stage(2 * w, 4 * w), nn.MaxPool2d(2), *conv_stage(4 * w, 8 * w))
        self.head = nn.Sequential(nn.Linear(16 * w, c.feature_dim), nn.ReLU(), nn.Dropout(c.dropout),
                                  nn.Linear(c.feature_dim, self.object_size))

    def read_object(self, half: torch.Tensor) -> torch.Tensor:
        """Half-scenes ``(B, 3, h, w)`` in the nets' input scale -> one object's class, colour and size logits ``(B, 20 + 6 + 2)``."""
        f = self.body(half)
        return self.head(torch.cat([f.mean((2, 3)), f.amax((2, 3))], 1))

    @staticmethod
    def _input(x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1:] != (3, 64, 64):
            raise ValueError(f"expected uint8 scenes (B, 3, 64, 64), got {tuple(x.shape)}")
        return to_input(x)

    def read_layout(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 scenes ``(B, 3, 64, 64)`` -> the layout logits ``(B, 2)`` (0: one object above the other, 1: side by side)."""
        return self.layout(self._input(x))

    def forward(self, x: torch.Tensor, side: torch.Tensor | None = None) -> torch.Tensor:
        """uint8 scenes ``(B, 3, 64, 64)`` -> the heads' logits, concatenated ``(B, sum(head_sizes))``.

        ``side`` ``(B,)``: the layout whose halves the objects are read from (default: this reader's own argmax; an
        ensemble passes its joint layout, so every member reads the same halves).
        """
        x = self._input(x)
        layout = self.layout(x)
        side = layout.argmax(1) if side is None else side.to(layout.device)
        objects = x.new_zeros(x.shape[0], 2 * self.object_size)
        for s in (0, 1):
            idx = (side == s).nonzero().squeeze(1)
            if idx.numel() == 0:
                continue
            xs = x[idx]
            first, second = (xs[:, :, :32], xs[:, :, 32:]) if s == 0 else (xs[..., :32], xs[..., 32:])
            both = self.read_object(torch.cat([first, second]))  # slot 0 (top / left) then slot 1 (bottom / right)
            objects = objects.index_copy(0, idx, torch.cat(both.chunk(2), 1))
        return torch.cat([layout, objects], 1)

    def split(self, logits: torch.Tensor) -> list[torch.Tensor]:
        return list(logits.split(self.head_sizes, dim=1))

    @torch.no_grad()
    def read(self, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
        """The predicted labels ``(B, len(HEADS))`` (the layout of :func:`vqvae.data.scenes.slot_labels`)."""
        return ReaderEnsemble([self]).read(x, batch_size)


class ReaderEnsemble:
    """Several scene readers read as one: per head, the sum of their log-probabilities (the product of their
    distributions), so one reader's confident mistake on an ambiguous look-alike (shirt, pullover, coat) is outvoted.

    The layout is read first, jointly; every member then reads the objects from the halves of that joint layout, so
    the slots they add up are the same objects. A faithfulness figure read by one small reader moves by a few points
    with the reader's training run; an ensemble of runs is the steadier instrument.
    """

    def __init__(self, readers: list[SceneReader]):
        if not readers:
            raise ValueError("a reader ensemble needs at least one reader")
        self.readers = list(readers)

    @torch.no_grad()
    def read(self, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
        """The predicted labels ``(B, len(HEADS))``, each head the argmax of the members' summed log-probabilities."""
        was = [r.training for r in self.readers]
        for r in self.readers:
            r.eval()
        dev = next(self.readers[0].parameters()).device
        out = []
        try:
            for s in range(0, x.shape[0], batch_size):
                xs = x[s : s + batch_size].to(dev)
                layout = sum(r.read_layout(xs).log_softmax(1) for r in self.readers)
                side = layout.argmax(1)
                heads = [sum(h.log_softmax(1) for h in hs) for hs in zip(*(r.split(r(xs, side=side)) for r in self.readers))]
                out.append(torch.stack([side] + [h.argmax(1) for h in heads[1:]], 1).cpu())
        finally:
            for r, w in zip(self.readers, was):
                r.train(w)
        return torch.cat(out)
