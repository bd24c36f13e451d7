"""What the Trainer trains: one task per model family.

The :class:`~vqvae.train.Trainer` owns the loop, the optimizer, the schedule,
logging, checkpoints and resuming; a task says how its model family turns a
batch ``(x, y)`` into a loss and progress logs, how it is evaluated, and what
it checks or fills in from the data before the model is built:

* ``tokenizer`` (``vqvae``): uint8 images -> reconstruction + quantizer loss;
  evaluated with :func:`vqvae.inference.evaluate` (PSNR, usage, bits/dim).
* ``prior`` (``pixelcnn``, ``transformer``): code maps (+ labels) -> NLL in
  nats per code; evaluated as test NLL in bits per code.
* ``classifier``: uint8 images (or waveforms) + labels -> cross-entropy; evaluated as accuracy.
* ``scene-reader``: scenes + attribute labels -> seven heads' cross-entropies.
* ``clip``: uint8 images + caption ids -> the symmetric InfoNCE; evaluated as in-batch retrieval.
* ``audio`` (``audio-vqvae``): waveforms + speaker ids -> mu-law cross-entropy +
  quantizer loss; evaluated with :func:`vqvae.audio_inference.evaluate_audio`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from vqvae import inference, losses
from vqvae.errors import VQVAEError


def raw(model):
    """The model under a DistributedDataParallel wrapper (or the model itself)."""
    return getattr(model, "module", model)


class Task:
    bar = ("loss",)  # logs shown on the progress bar
    curves = (("loss", "loss", "loss"),)  # (train key, test key, title) panels of loss_curves.png
    images = False  # inputs are images (random flips allowed)

    def prepare(self, cfg, train_set) -> None:
        """Fill in / check the model config against the training data (before the model exists)."""

    def step(self, model, x, y, detail: bool) -> tuple[torch.Tensor, dict]:
        raise NotImplementedError

    def evaluate(self, model, x, y, batch_size: int) -> dict:
        raise NotImplementedError


class TokenizerTask(Task):
    bar = ("loss", "psnr", "perplexity")
    curves = (("loss", "loss", "loss"), ("psnr", "psnr", "PSNR (dB)"), ("perplexity", "perplexity", "codebook perplexity"))
    images = True

    def prepare(self, cfg, train_set) -> None:
        if cfg.model.in_channels == 0:
            cfg.model.in_channels = train_set.channels
        if cfg.model.in_channels != train_set.channels:
            raise VQVAEError(f"model.in_channels={cfg.model.in_channels} but {train_set.name} images have {train_set.channels} channels")
        f = cfg.model.downsampling
        h, w = train_set.image_size
        if cfg.data.crop and (cfg.data.crop % f or cfg.data.crop > min(h, w)):
            raise VQVAEError(f"data.crop={cfg.data.crop} must divide by the downsampling {f} and fit the {h}x{w} images")
        if h % f or w % f:
            raise VQVAEError(f"{train_set.name} images are {h}x{w}, not divisible by the downsampling {f}: set data.image_size or model.num_downsamples")

    def step(self, model, x, y, detail):
        out = model(x)
        logs = {"recon_loss": out.recon_loss, "commitment": out.vq.commitment_loss, "perplexity": out.vq.perplexity}
        q = raw(model).quantizer
        if hasattr(q, "tau"):  # the dVAE's schedules
            logs.update(kl=out.vq.codebook_loss.detach(), tau=q.tau, kl_weight=q.beta)
        if detail:  # the categorical mean needs a softmax over 256 bins: only on logging steps
            with torch.no_grad():
                rec = losses.reconstruct(raw(model).config.likelihood, out.out.detach())
                mse = (((rec.float() - x.float()) / 255.0) ** 2).mean().item()
            logs["psnr"] = 10 * math.log10(1 / max(mse, 1e-12))
        return out.loss, logs

    def evaluate(self, model, x, y, batch_size):
        return inference.evaluate(model, x, batch_size)


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
        for s in range(0, x.shape[0], batch_size):
            xb = x[s : s + batch_size].to(dev)
            yb = None if y is None else y[s : s + batch_size].to(dev)
            bits += model(xb, self._labels(model, yb)).nll_bits.sum().item()
        model.train(was)
        per_map = bits / x.shape[0]
        return {"nll_bits_per_map": per_map, "bits_per_code": per_map / model.config.seq_len, "maps": x.shape[0]}


class ClassifierTask(Task):
    bar = ("loss", "acc")
    curves = (("loss", "loss", "loss"), ("acc", "accuracy", "accuracy"))
    images = True

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
        for s in range(0, x.shape[0], batch_size):
            logits = model(x[s : s + batch_size].to(dev))
            yb = y[s : s + batch_size].to(dev)
            correct += int((logits.argmax(1) == yb).sum())
            nll += F.cross_entropy(logits, yb, reduction="sum").item()
        model.train(was)
        return {"accuracy": correct / x.shape[0], "loss": nll / x.shape[0], "images": x.shape[0]}


class SceneReaderTask(Task):
    """The scene reader: uint8 scenes + reader labels ``(B, 7)`` -> the sum of the seven heads' cross-entropies;
    evaluated as ``accuracy`` (every attribute of a scene right) and one accuracy per head."""

    bar = ("loss", "acc")
    curves = (("loss", "loss", "loss"), ("acc", "accuracy", "all attributes right"))
    images = True

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
        from vqvae.scenes import HEADS

        was = model.training
        model.eval()
        dev = next(model.parameters()).device
        loss, oks = 0.0, []
        for s in range(0, x.shape[0], batch_size):
            l, ok = self._heads(model, x[s : s + batch_size].to(dev), y[s : s + batch_size].to(dev))
            loss += l.item() * ok.shape[0]
            oks.append(ok.cpu())
        model.train(was)
        ok = torch.cat(oks).float()
        heads = {f"acc_{n}": float(ok[:, i].mean()) for i, (n, _) in enumerate(HEADS)}
        return {"accuracy": float(ok.all(1).float().mean()), "loss": loss / x.shape[0], **heads, "images": x.shape[0]}


class AudioTask(Task):
    """The audio VQ-VAE: waveforms ``(B, 1, T)`` and speaker ids -> mu-law cross-entropy + quantizer loss."""

    bar = ("loss", "bits_per_sample", "stft_loss", "perplexity")
    curves = (("loss", "loss", "loss"), ("bits_per_sample", "bits_per_sample", "mu-law NLL (bits/sample)"),
              ("stft_loss", "stft_loss", "multi-resolution STFT loss"), ("perplexity", "perplexity", "codebook perplexity"))

    def prepare(self, cfg, train_set) -> None:
        m = cfg.model
        if m.num_speakers == 0:
            m.num_speakers = len(train_set.classes)
        if m.num_speakers < len(train_set.classes):
            raise VQVAEError(f"model.num_speakers={m.num_speakers} but {train_set.name} has {len(train_set.classes)} speakers")
        m.sample_rate = cfg.data.sample_rate
        if not m.speakers:
            m.speakers = list(train_set.classes)
        for key in ("clip_length", "crop"):
            if getattr(cfg.data, key) % m.downsampling:
                raise VQVAEError(f"data.{key}={getattr(cfg.data, key)} is not divisible by the downsampling {m.downsampling}")

    def step(self, model, x, y, detail):
        out = model(x, y)
        rec = out.recon_loss.detach()
        rec = {"stft_loss": rec} if raw(model).config.output == "waveform" else {"bits_per_sample": rec / math.log(2)}
        return out.loss, {**rec, "perplexity": out.vq.perplexity,
                          "commitment": out.vq.commitment_loss}

    def evaluate(self, model, x, y, batch_size):
        from vqvae.audio_inference import evaluate_audio

        return evaluate_audio(model, x, y, batch_size)


class DalleTask(Task):
    """DALL-E's transformer: code maps ``x (B, h, w)`` and text ids ``y (B, text_len)`` -> the weighted text + image loss."""

    bar = ("loss", "image_loss")
    curves = (("loss", "loss", "loss"), ("image_loss", "image_loss", "image NLL (nats/code)"), ("text_loss", "text_loss", "text NLL (nats/token)"))

    def step(self, model, x, y, detail):
        out = model(y, x)
        return out.loss, {"text_loss": out.text_loss.detach(), "image_loss": out.image_loss.detach()}

    @torch.no_grad()
    def evaluate(self, model, x, y, batch_size):
        was = model.training
        model.eval()
        dev = next(model.parameters()).device
        tot = {"loss": 0.0, "text_loss": 0.0, "image_loss": 0.0}
        for s in range(0, x.shape[0], batch_size):
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
        for s in range(0, x.shape[0] - 1, batch_size):  # a batch of one has nothing to tell apart
            out = model(x[s : s + batch_size].to(dev), y[s : s + batch_size].to(dev))
            k = min(batch_size, x.shape[0] - s)
            loss, acc, n = loss + out.loss.item() * k, acc + out.accuracy.item() * k, n + k
        model.train(was)
        return {"loss": loss / n, "accuracy": acc / n, "batch": batch_size, "pairs": int(n)}


TASKS = {"dalle": DalleTask, "clip": ClipTask, "vqvae": TokenizerTask, "dvae": TokenizerTask, "pixelcnn": PriorTask, "transformer": PriorTask,
         "classifier": ClassifierTask, "scene-reader": SceneReaderTask, "audio-vqvae": AudioTask}


def task_for(arch: str) -> Task:
    try:
        return TASKS[arch]()
    except KeyError:
        raise VQVAEError(f"no training task for model {arch!r}; known: {', '.join(sorted(TASKS))}") from None
