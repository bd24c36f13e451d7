"""The scene reader: the classifier that scores DALL-E's samples (issue 5) by reading every object's attributes.

A generated 64 x 64 scene is correct when everything its caption says is in
it: the layout (one object above the other, or side by side), and for each of
the two slots (top / left, then bottom / right) the object's class (20: ten
digits, ten Fashion-MNIST items), colour (6) and size (2). The reader predicts
exactly these seven heads (:data:`vqvae.scenes.HEADS`) from one conv net.

Unlike the sample classifier (:mod:`vqvae.models.classifier`) it keeps the
spatial layout: three conv stages take 64 x 64 down to an 8 x 8 map that is
flattened (no global pooling, which would forget where objects are) into a
feature vector and the heads' logits, concatenated ``(B, sum(head sizes))``.
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

from vqvae import losses
from vqvae.errors import ConfigError
from vqvae.models.classifier import _stage


@dataclass
class SceneReaderConfig:
    width: int = 32
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
        from vqvae.scenes import HEADS

        self.config = c = config
        self.head_sizes = [n for _, n in HEADS]
        w = c.width
        self.body = nn.Sequential(*_stage(3, w), nn.MaxPool2d(2), *_stage(w, 2 * w), nn.MaxPool2d(2), *_stage(2 * w, 4 * w), nn.MaxPool2d(2),
                                  nn.Conv2d(4 * w, 32, 1), nn.ReLU(), nn.Flatten(), nn.Linear(32 * 8 * 8, c.feature_dim), nn.ReLU())
        self.head = nn.Sequential(nn.Dropout(c.dropout), nn.Linear(c.feature_dim, sum(self.head_sizes)))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1:] != (3, 64, 64):
            raise ValueError(f"expected uint8 scenes (B, 3, 64, 64), got {tuple(x.shape)}")
        return self.body(losses.to_input(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 scenes ``(B, 3, 64, 64)`` -> the heads' logits, concatenated ``(B, sum(head_sizes))``."""
        return self.head(self.features(x))

    def split(self, logits: torch.Tensor) -> list[torch.Tensor]:
        return list(logits.split(self.head_sizes, dim=1))

    @torch.no_grad()
    def read(self, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
        """The predicted labels ``(B, len(HEADS))`` (the layout of :func:`vqvae.scenes.slot_labels`)."""
        was = self.training
        self.eval()
        dev = next(self.parameters()).device
        out = [torch.stack([h.argmax(1) for h in self.split(self(x[s : s + batch_size].to(dev)))], 1).cpu()
               for s in range(0, x.shape[0], batch_size)]
        self.train(was)
        return torch.cat(out)
