"""One place that loads a run's data split, images or audio, from its config.

A run's data is audio when its model is an audio model (``audio-vqvae``) or a
classifier over log-mel spectrograms; everything else is images. Audio labels
are speakers, or spoken digits with ``data.label=digit`` (FSDD). The captioned
scenes with ``data.label=attributes`` carry the scene reader's labels
(:func:`vqvae.scenes.slot_labels`).
"""

from __future__ import annotations

import torch

from vqvae.data import ImageSet, TensorSet, load_images
from vqvae.errors import DataError
from vqvae.models import AUDIO_ARCHS


def reconstructed(run: str, images: torch.Tensor, progress: bool = True) -> torch.Tensor:
    """``images`` passed through the tokenizer in ``run`` (encode, decode), for the scene reader and CLIP."""
    from vqvae import checkpoint, inference

    _, tok = checkpoint.load_run(run)
    if getattr(tok.config, "in_channels", images.shape[1]) != images.shape[1]:
        raise DataError(f"data.reconstructions_from={run} is a tokenizer for {tok.config.in_channels}-channel images; the scenes are RGB")
    return inference.reconstruct(tok, images, batch_size=256, desc="reconstructing the training images" if progress else None)


def _with_audio_reconstructions(run: str, ds):
    """``ds`` followed by the audio VQ-VAE in ``run``'s reconstructions of it (each clip decoded with its own speaker),
    for a classifier that must read decoded and converted speech, not only recordings."""
    from dataclasses import replace

    from vqvae import audio_inference, checkpoint

    cfg, model = checkpoint.load_run(run)
    if cfg.arch != "audio-vqvae":
        raise DataError(f"data.reconstructions_from={run} is a {cfg.arch} run; an audio classifier needs an audio VQ-VAE run")
    known = {name: i for i, name in enumerate(model.config.speakers)}
    missing = sorted(set(ds.speakers) - set(known))
    if missing:
        raise DataError(f"data.reconstructions_from={run} does not know the speakers {missing}; it knows {sorted(known)}")
    speakers = torch.tensor([known[ds.speakers[i]] for i in ds.labels.tolist()], dtype=torch.int64)
    rec = audio_inference.convert(model, ds.images, speakers)
    twice = lambda t: None if t is None else torch.cat([t, t])  # noqa: E731
    return replace(ds, images=torch.cat([ds.images, rec]), labels=twice(ds.labels), digits=twice(ds.digits),
                   lengths=twice(ds.lengths), files=ds.files + [f"{f} (reconstructed)" for f in ds.files])


def is_audio(cfg) -> bool:
    return cfg.arch in AUDIO_ARCHS or (cfg.arch == "classifier" and getattr(cfg.model, "input", "image") == "logmel")


def load_split(cfg, split: str, data_root: str | None = None, progress: bool = True) -> TensorSet:
    """The ``split`` of the run's dataset (``data_root`` overrides ``data.root``; ``progress``: bars on long preparation)."""
    d = cfg.data
    root = data_root or d.root
    if d.label == "attributes":
        from vqvae import scenes

        n = scenes.parse_name(d.name)
        if n is None:
            raise DataError(f"data.label=attributes is for the captioned scenes (scenes, scenes:N), not {d.name!r}")
        sc = scenes.scene_split(n, "reader" if split == "train" else split, root)  # the reader trains on every colour-class pair
        images, labels = sc.images.clone(), scenes.slot_labels(sc.attrs)
        if split == "train" and d.reconstructions_from:
            images = torch.cat([images, reconstructed(d.reconstructions_from, images, progress)])
            labels = torch.cat([labels, labels])
        return ImageSet(images, labels, [name for name, _ in scenes.HEADS], d.name)
    if not is_audio(cfg):
        return load_images(d.name, split, root=root, image_size=d.image_size or None, channels=d.channels or None, download=d.download)
    from vqvae.audio_data import load_audio

    ds = load_audio(d.name, split, root=root, sample_rate=d.sample_rate, length=d.clip_length, trim=d.trim)
    if split == "train" and d.reconstructions_from:
        ds = _with_audio_reconstructions(d.reconstructions_from, ds)
    if d.label == "digit":
        if ds.digits is None:
            raise DataError(f"data.label=digit needs spoken-digit labels, and {ds.name} has none (FSDD has)")
        ds.labels, ds.classes = ds.digits.clone(), [str(i) for i in range(10)]
    return ds
