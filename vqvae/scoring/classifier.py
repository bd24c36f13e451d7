"""A small classifier, trained by the project, to score generated samples (images or audio).

Standard Inception FID needs pretrained weights that are not available
offline, so samples are scored with a classifier trained on the same dataset:

* class-conditional **accuracy**: the fraction of samples drawn for label c
  that the classifier assigns to c;
* a **Fréchet distance on this classifier's features** (the penultimate
  layer, ``feature_dim`` wide) between test images and samples: the FID
  formula (Heusel et al. 2017) on other features, so comparable only with
  itself (same classifier run), never with published FIDs.

Net: three stages of two 3x3 conv + BatchNorm + ReLU (width w, 2w, 4w), max-pool
between stages, global average pool, a ``feature_dim`` ReLU layer (the
features), dropout and the class layer. Inputs are uint8 ``(B, C, H, W)``, or
with ``input: logmel`` float waveforms ``(B, 1, T)`` turned into a one-channel
log-mel spectrogram (40 bands; speaker and digit classifiers for audio).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from vqvae.core.errors import ConfigError, require
from vqvae.image.likelihoods import to_input
from vqvae.nets.dsp import log_mel


@dataclass
class ClassifierConfig:
    in_channels: int = 0  # 0: from the data
    num_classes: int = 0  # 0: from the data's labels
    width: int = 32
    feature_dim: int = 128
    dropout: float = 0.3
    input: str = "image"  # "image" (uint8 images) or "logmel" (waveforms -> log-mel spectrogram)
    sample_rate: int = 8000  # logmel input only

    def validate(self) -> None:
        checks = [
            (self.in_channels in (0, 1, 3), "model.in_channels must be 0 (from data), 1 or 3"),
            (self.num_classes >= 0, "model.num_classes must be >= 0 (0: from the data)"),
            (self.width >= 1 and self.feature_dim >= 1, "model.width and model.feature_dim must be >= 1"),
            (0.0 <= self.dropout < 1.0, "model.dropout must be in [0, 1)"),
            (self.input in ("image", "logmel"), "model.input must be 'image' or 'logmel'"),
        ]
        require(checks)


def conv_stage(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


class Classifier(nn.Module):
    config_cls = ClassifierConfig

    def __init__(self, config: ClassifierConfig):
        super().__init__()
        config.validate()
        if config.in_channels == 0 or config.num_classes < 2:
            raise ConfigError("model.in_channels and model.num_classes must be set (training fills them in from the data)")
        self.config = config
        w = config.width
        self.body = nn.Sequential(*conv_stage(config.in_channels, w), nn.MaxPool2d(2), *conv_stage(w, 2 * w), nn.MaxPool2d(2),
                                  *conv_stage(2 * w, 4 * w), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  nn.Linear(4 * w, config.feature_dim), nn.ReLU())
        self.head = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(config.feature_dim, config.num_classes))

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 images, or float waveforms ``(B, 1, T)`` (``input: logmel``) -> the net's input."""
        if self.config.input == "logmel":
            if x.ndim != 3 or x.shape[1] != 1 or not x.dtype.is_floating_point:
                raise ValueError(f"expected float waveforms (B, 1, T), got {x.dtype} {tuple(x.shape)}")
            return (log_mel(x[:, 0].float(), self.config.sample_rate)[:, None] + 6.0) / 4.0  # roughly zero-mean, unit scale
        if x.ndim != 4 or x.shape[1] != self.config.in_channels:
            raise ValueError(f"expected uint8 images (B, {self.config.in_channels}, H, W), got {tuple(x.shape)}")
        return to_input(x)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Inputs -> penultimate features ``(B, feature_dim)``."""
        return self.body(self._input(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 images -> class logits ``(B, num_classes)``."""
        return self.head(self.features(x))
