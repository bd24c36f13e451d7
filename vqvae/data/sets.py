"""Splits held in memory: the tensors every Task trains on."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch


@dataclass
class TensorSet:
    """A split held in memory: inputs ``images`` (N, ...), optional int64 ``labels`` ``(N,)``, class names."""

    images: torch.Tensor
    labels: torch.Tensor | None
    classes: list[str] | None
    name: str

    def __len__(self) -> int:
        return self.images.shape[0]

    def followed_by(self, images: torch.Tensor) -> "TensorSet":
        """This set and, after it, ``images`` with the same labels (e.g. a tokenizer's reconstructions of it)."""
        twice = None if self.labels is None else torch.cat([self.labels, self.labels])
        return replace(self, images=torch.cat([self.images, images]), labels=twice)


@dataclass
class ImageSet(TensorSet):
    """A split of an image dataset: ``images`` uint8 ``(N, C, H, W)``."""

    @property
    def channels(self) -> int:
        return self.images.shape[1]

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(self.images.shape[-2:])
