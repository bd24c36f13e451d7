"""How the priors over codes train: code maps (+ labels) -> NLL in nats per code; evaluated as test NLL in bits per code.

A tiled prior (``data.crop`` = the tile) trains on random windows of larger
code maps and is evaluated on the maps cut into whole tiles (the codec's prior).
"""

from __future__ import annotations

import math

import torch

from vqvae.core.errors import VQVAEError
from vqvae.core.task import Task, check_ids, raw
from vqvae.priors.pixelcnn import PixelCNNPrior
from vqvae.priors.transformer import TransformerPrior
from vqvae.registry import Arch, register


class PriorTask(Task):
    bar = ("loss", "bits_per_code")
    curves = (("bits_per_code", "bits_per_code", "NLL (bits per code)"),)

    def prepare(self, cfg, train_set) -> None:
        m = cfg.model
        if cfg.data.crop:  # a tiled prior: windows of larger maps
            shape = tuple(train_set.images.shape[1:])
            if cfg.data.crop != m.height or m.height != m.width or shape[:-2] != m.code_shape[:-2] or min(shape[-2:]) < m.height:
                raise VQVAEError(f"a tiled prior needs data.crop == model.height == model.width and maps at least that large; "
                                 f"got crop {cfg.data.crop}, {m.height}x{m.width}, maps {shape}")
        elif tuple(train_set.images.shape[1:]) != m.code_shape:
            raise VQVAEError(f"codes of {train_set.name} have shape {tuple(train_set.images.shape[1:])}, the prior expects {m.code_shape}")
        if m.num_classes and train_set.labels is None:
            raise VQVAEError(f"a class-conditional prior needs labels, and {train_set.name} has none")
        codes, labels = train_set.images, train_set.labels
        check_ids(codes, m.codebook_size, f"codes of {train_set.name}")  # once, so the steps need not
        if m.num_classes:
            check_ids(labels, m.num_classes, f"labels of {train_set.name}")

    @staticmethod
    def _labels(model, y):
        return y if raw(model).config.num_classes else None

    def step(self, model, x, y, detail):
        out = model(x, self._labels(model, y))
        return out.loss, {"bits_per_code": out.loss.detach() / math.log(2)}

    @staticmethod
    def tiles(x: torch.Tensor, cfg, y: torch.Tensor | None = None):
        """Code maps larger than the prior's ``H x W`` cut into whole, non-overlapping tiles (the rest dropped)."""
        t_h, t_w = cfg.height, cfg.width
        h, w = x.shape[-2:]
        if (h, w) == (t_h, t_w):
            return x, y
        nh, nw = h // t_h, w // t_w
        lead = tuple(x.shape[1:-2])
        x = x[..., : nh * t_h, : nw * t_w].reshape(x.shape[0], -1, nh, t_h, nw, t_w)  # (B, G, nh, th, nw, tw)
        x = x.permute(0, 2, 4, 1, 3, 5).reshape(-1, *lead, t_h, t_w)  # (B * nh * nw, *lead, th, tw)
        return x.contiguous(), None if y is None else y.repeat_interleave(nh * nw)

    @torch.no_grad()
    def evaluate(self, model, x, y, batch_size):
        was = model.training
        model.eval()
        x, y = self.tiles(x, raw(model).config, y)
        bits = 0.0
        dev = next(model.parameters()).device
        for s in self.batches(x.shape[0], batch_size):
            xb = x[s : s + batch_size].to(dev)
            yb = None if y is None else y[s : s + batch_size].to(dev)
            bits += model(xb, self._labels(model, yb)).nll_bits.sum().item()
        model.train(was)
        per_map = bits / x.shape[0]
        return {"nll_bits_per_map": per_map, "bits_per_code": per_map / model.config.seq_len, "maps": x.shape[0]}


TRAINED_BY = "vqvae prior train --tokenizer RUN --arch {}"
register(Arch("pixelcnn", PixelCNNPrior, PriorTask, "prior", trained_by=TRAINED_BY.format("pixelcnn")))
register(Arch("transformer", TransformerPrior, PriorTask, "prior", trained_by=TRAINED_BY.format("transformer")))
