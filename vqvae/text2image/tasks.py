"""How the text-to-image models train: DALL-E's transformer, the CLIP that reranks its samples, and the scene
reader that scores them; and their registration.

* ``dalle``: code maps ``x (B, h, w)`` and text ids ``y (B, text_len)`` -> 1/8 text + 7/8 image cross-entropy;
* ``clip``: uint8 images and caption ids -> the symmetric InfoNCE over the batch;
* ``scene-reader``: scenes + attribute labels ``(B, 7)`` -> the seven heads' cross-entropies.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vqvae.core.amp import BlockGradScaler
from vqvae.core.errors import DataError, VQVAEError
from vqvae.core.task import Task, check_ids, raw, with_reconstructions
from vqvae.data import scenes
from vqvae.data.scenes import HEADS
from vqvae.data.sets import ImageSet
from vqvae.registry import Arch, register
from vqvae.text2image.clip import Clip
from vqvae.text2image.dalle import Dalle
from vqvae.text2image.scene_reader import SceneReader


class SceneReaderTask(Task):
    """The scene reader: uint8 scenes + reader labels ``(B, 7)`` -> the sum of the seven heads' cross-entropies;
    evaluated as ``accuracy`` (every attribute of a scene right) and one accuracy per head."""

    bar = ("loss", "acc")
    curves = (("loss", "loss", "loss"), ("acc", "accuracy", "all attributes right"))
    images = True

    def load_split(self, cfg, split, root=None, progress=True):
        """The reader trains on every colour-class pair (the ``reader`` split), and with ``data.reconstructions_from``
        on that tokenizer's reconstructions of it too; it is evaluated on real scenes."""
        d = cfg.data
        n = scenes.parse_name(d.name)
        if d.label != "attributes" or n is None:
            raise DataError(f"the scene reader reads the captioned scenes' attributes (--data scenes, data.label=attributes), not {d.name!r}")
        sc = scenes.scene_split(n, "reader" if split == "train" else split, root or d.root)
        ds = ImageSet(sc.images.clone(), scenes.slot_labels(sc.attrs), [name for name, _ in HEADS], d.name)
        if split == "train" and d.reconstructions_from:
            ds = with_reconstructions(d.reconstructions_from, ds, progress)
        return ds

    def prepare(self, cfg, train_set) -> None:
        if train_set.labels is None or train_set.labels.ndim != 2:
            raise VQVAEError(f"the scene reader trains on the scenes' attributes (--data scenes --data.label=attributes), not {train_set.name}")

    @staticmethod
    def _heads(model, x, y):
        heads = raw(model).split(model(x))
        loss = sum(F.cross_entropy(h, y[:, i]) for i, h in enumerate(heads))
        return loss, torch.stack([h.argmax(1) for h in heads], 1) == y

    def step(self, model, x, y, detail):
        loss, ok = self._heads(model, x, y)
        return loss, {"acc": ok.all(1).float().mean()}

    @torch.no_grad()
    def evaluate(self, model, x, y, batch_size):
        was = model.training
        model.eval()
        dev = next(model.parameters()).device
        loss, oks = 0.0, []
        for s in self.batches(x.shape[0], batch_size):
            l, ok = self._heads(model, x[s : s + batch_size].to(dev), y[s : s + batch_size].to(dev))
            loss += l.item() * ok.shape[0]
            oks.append(ok.cpu())
        model.train(was)
        ok = torch.cat(oks).float()
        heads = {f"acc_{n}": float(ok[:, i].mean()) for i, (n, _) in enumerate(HEADS)}
        return {"accuracy": float(ok.all(1).float().mean()), "loss": loss / x.shape[0], **heads, "images": x.shape[0]}


class DalleTask(Task):
    """DALL-E's transformer: code maps ``x (B, h, w)`` and text ids ``y (B, text_len)`` -> the weighted text + image loss."""

    bar = ("loss", "image_loss")
    curves = (("loss", "loss", "loss"), ("image_loss", "image_loss", "image NLL (nats/code)"), ("text_loss", "text_loss", "text NLL (nats/token)"))

    def prepare(self, cfg, train_set) -> None:
        """The ids' range, checked once here so that the training steps need not (see ``Dalle._check``)."""
        m, codes, text = cfg.model, train_set.images, train_set.labels
        check_ids(codes, m.image_vocab, f"image codes of {train_set.name}")
        if text is None or text.ndim != 2:
            raise VQVAEError(f"text ids of {train_set.name} must be (N, {m.text_len}) in [0, {m.text_vocab})")
        check_ids(text, m.text_vocab, f"text ids of {train_set.name}")

    def grad_scaler(self, model, device, enabled):
        """DALL-E's per-resblock gradient scaling for fp16 (its section 2.4): one scale per transformer block."""
        pre = [p for m in (model.text_emb, model.text_pos, model.image_emb, model.row_emb, model.col_emb) for p in m.parameters()]
        return BlockGradScaler(model, model.blocks, pre, device, enabled=enabled)

    def step(self, model, x, y, detail):
        out = model(y, x)
        return out.loss, {"text_loss": out.text_loss.detach(), "image_loss": out.image_loss.detach()}

    @torch.no_grad()
    def evaluate(self, model, x, y, batch_size):
        was = model.training
        model.eval()
        dev = next(model.parameters()).device
        tot = {"loss": 0.0, "text_loss": 0.0, "image_loss": 0.0}
        for s in self.batches(x.shape[0], batch_size):
            out = model(y[s : s + batch_size].to(dev), x[s : s + batch_size].to(dev))
            for k in tot:
                tot[k] += getattr(out, k).item() * min(batch_size, x.shape[0] - s)
        model.train(was)
        return {**{k: v / x.shape[0] for k, v in tot.items()}, "pairs": x.shape[0]}


class ClipTask(Task):
    """CLIP: uint8 images ``x`` and their captions' ids ``y (B, text_len)`` -> the symmetric InfoNCE over the batch;
    evaluated in batches of ``batch_size`` as the loss and image -> caption top-1 accuracy among them."""

    bar = ("loss", "acc")
    curves = (("loss", "loss", "InfoNCE"), ("acc", "accuracy", "image -> caption top-1 in the batch"))
    images = True

    def step(self, model, x, y, detail):
        out = model(x, y)
        return out.loss, {"acc": out.accuracy.detach()}

    @torch.no_grad()
    def evaluate(self, model, x, y, batch_size):
        was = model.training
        model.eval()
        dev = next(model.parameters()).device
        loss = acc = n = 0.0
        for s in self.batches(x.shape[0] - 1, batch_size):  # a batch of one has nothing to tell apart
            out = model(x[s : s + batch_size].to(dev), y[s : s + batch_size].to(dev))
            k = min(batch_size, x.shape[0] - s)
            loss, acc, n = loss + out.loss.item() * k, acc + out.accuracy.item() * k, n + k
        model.train(was)
        return {"loss": loss / n, "accuracy": acc / n, "batch": batch_size, "pairs": int(n)}


register(Arch("dalle", Dalle, DalleTask, "text2image", trained_by="vqvae dalle train --tokenizer RUN"))
register(Arch("clip", Clip, ClipTask, "text2image", trained_by="vqvae clip train", reads_reconstructions=True))
register(Arch("scene-reader", SceneReader, SceneReaderTask, "classifier", reads_reconstructions=True))
