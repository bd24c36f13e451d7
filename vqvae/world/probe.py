"""A probe that reads where the player stands and faces from one first-person frame: the issue's regressor.

Trained on real frames of the doom episodes (``vqvae train --config doom-probe``) against the game variables the
episodes record (POSITION_X, POSITION_Y, ANGLE), it then reads frames that models made: a second stage's
reconstructions, or a world model's generated rollouts. How well it reads them says what they preserve.

The net: four stride-2 convolutions (84 -> 42 -> 21 -> 11 -> 6), a linear layer and four outputs: the position
normalised by the training frames' mean and spread (stored in the config), and the heading as ``(cos, sin)`` (so
359 degrees and 1 degree are neighbours). The loss is the squared error of both.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from vqvae.core.errors import ConfigError, require


@dataclass
class ProbeConfig:
    in_channels: int = 3
    input_size: int = 0  # the frames' side (filled in from the data: 84, or data.image_size)
    channels: int = 32  # the first convolution's; the next ones double it, up to 4x
    hidden: int = 256
    x_mean: float = 0.0  # the training frames' positions (filled in from the data)
    y_mean: float = 0.0
    scale: float = 1.0  # their spread (one for both axes, so distances keep their meaning)

    def validate(self) -> None:
        require([(self.in_channels in (1, 3), "model.in_channels must be 1 or 3"),
                 (self.input_size == 0 or self.input_size >= 8, "model.input_size must be 0 (from the data) or >= 8"),
                 (self.channels >= 1 and self.hidden >= 1, "model.channels and model.hidden must be >= 1"),
                 (self.scale > 0, "model.scale must be > 0")])


class Probe(nn.Module):
    """uint8 frames ``(B, C, 84, 84)`` -> ``(B, 4)``: normalised x, y and the heading's cos, sin."""

    config_cls = ProbeConfig

    def __init__(self, config: ProbeConfig):
        super().__init__()
        config.validate()
        if config.input_size == 0:
            raise ConfigError("model.input_size is 0: set it (training fills it in from the frames)")
        self.config = c = config
        w = [c.in_channels, c.channels, 2 * c.channels, 4 * c.channels, 4 * c.channels]
        layers = []
        for cin, cout in zip(w[:-1], w[1:]):
            layers += [nn.Conv2d(cin, cout, 3, 2, 1), nn.ReLU()]
        self.net = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(6), nn.Flatten(), nn.Linear(w[-1] * 36, c.hidden), nn.ReLU(),
                                 nn.Linear(c.hidden, 4))

    @property
    def input_size(self) -> int:
        return self.config.input_size

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        c = self.config
        if frames.ndim != 4 or tuple(frames.shape[1:]) != (c.in_channels, c.input_size, c.input_size):
            raise ValueError(f"expected frames (B, {c.in_channels}, {c.input_size}, {c.input_size}), got {tuple(frames.shape)}")
        return self.net(frames.float() / 127.5 - 1)

    def targets(self, variables: torch.Tensor) -> torch.Tensor:
        """Game variables ``(B, 3)`` (x, y, angle in degrees) -> the outputs' targets ``(B, 4)``."""
        c = self.config
        a = torch.deg2rad(variables[:, 2])
        return torch.stack([(variables[:, 0] - c.x_mean) / c.scale, (variables[:, 1] - c.y_mean) / c.scale, a.cos(), a.sin()], 1)

    def loss(self, frames: torch.Tensor, variables: torch.Tensor) -> torch.Tensor:
        return (self(frames) - self.targets(variables)).pow(2).sum(1).mean()

    @torch.no_grad()
    def read(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames -> ``(B, 3)``: x, y in map units and the heading in degrees ``[0, 360)``."""
        c, out = self.config, self(frames)
        angle = torch.rad2deg(torch.atan2(out[:, 3], out[:, 2])) % 360
        return torch.stack([out[:, 0] * c.scale + c.x_mean, out[:, 1] * c.scale + c.y_mean, angle], 1)


def heading_error(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The absolute difference of headings in degrees, ``[0, 180]``."""
    d = (a - b) % 360
    return torch.minimum(d, 360 - d)


@torch.no_grad()
def read_errors(probe: Probe, frames: torch.Tensor, variables: torch.Tensor, batch_size: int = 256) -> dict:
    """How well the probe reads ``frames`` against the true ``variables``: position error (map units, mean and
    median), heading error (degrees, mean) and the share of frames read within 15 degrees."""
    was = probe.training
    probe.eval()
    dev = next(probe.parameters()).device
    read = torch.cat([probe.read(frames[s : s + batch_size].to(dev)).cpu() for s in range(0, frames.shape[0], batch_size)])
    probe.train(was)
    pos = (read[:, :2] - variables[:, :2]).norm(dim=1)
    head = heading_error(read[:, 2], variables[:, 2])
    return {"position_error": float(pos.mean()), "position_error_median": float(pos.median()),
            "heading_error_deg": float(head.mean()), "heading_within_15": float((head <= 15).float().mean()),
            "frames": int(frames.shape[0])}


def spread(variables: torch.Tensor) -> dict:
    """The normalisation of positions ``(N, 3)`` stored in the config: mean x, y and one spread."""
    return {"x_mean": float(variables[:, 0].mean()), "y_mean": float(variables[:, 1].mean()),
            "scale": float(max(variables[:, :2].std(0).mean(), 1e-3))}


