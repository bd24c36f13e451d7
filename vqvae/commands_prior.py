"""CLI commands for priors over codes: train, sample, evaluate (``vqvae.cli`` only parses).

* ``prior train``: encode the tokenizer's dataset once (cached), then train a
  PixelCNN or transformer prior with the same Trainer and run-directory contract
  as the tokenizer; the run records the tokenizer's path and fingerprint.
* ``sample``: ancestral sampling -> tokenizer decode -> a PNG grid (+ codes).
* ``eval`` on a prior: the paper's bound in bits/dim under the learned prior next
  to the uniform one, and, given a classifier run, the accuracy of
  class-conditional samples and a classifier Fréchet distance of samples and of
  reconstructions to the test set.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from vqvae import checkpoint, codes, commands, inference, plots, scoring
from vqvae.config import build, merge, parse_overrides, read_yaml
from vqvae.models import AUDIO_ARCHS, AudioVQVAE
from vqvae.splits import load_split
from vqvae.errors import VQVAEError
from vqvae.tasks import PriorTask
from vqvae.train import pick_device

PRIOR_ARCHS = ("pixelcnn", "transformer")


def train_prior(tokenizer: str, arch: str, conditional: bool, config: str | None, out: str | None, steps: int | None,
                minutes: float | None, resume: bool, data_root: str | None, overrides: list[str], progress: bool = True,
                tile: int | None = None) -> dict:
    """Train a prior on a tokenizer's codes. ``tile``: model ``tile x tile`` windows of the code maps
    (random crops in training, the maps cut into whole tiles for evaluation): the codec's prior, which
    codes any image size tile by tile."""
    from vqvae.train import Trainer

    if arch not in PRIOR_ARCHS:
        raise VQVAEError(f"--arch must be one of {', '.join(PRIOR_ARCHS)}, got {arch!r}")
    tok_dir = Path(tokenizer).resolve()
    tok_cfg, tok, fp = codes.load_tokenizer(tok_dir)
    over = parse_overrides(overrides)
    budget = {k: v for k, v in (("steps", steps), ("minutes", minutes)) if v is not None}
    over = merge(over, {"train": budget})
    train_set = codes.dataset_codes(tok_dir, tok_cfg, tok, fp, "train", data_root=data_root)
    test_set = codes.dataset_codes(tok_dir, tok_cfg, tok, fp, "test", data_root=data_root)
    if resume:
        if not out:
            raise VQVAEError("--resume needs --out RUN (the prior run to continue)")
        run_dir = Path(out)
        base = checkpoint.load_config(run_dir)
        if base.tokenizer.fingerprint != fp:
            raise VQVAEError(f"{run_dir} was trained on another tokenizer (fingerprint {base.tokenizer.fingerprint}, {tokenizer} has {fp})")
        if set(over) - {"train"}:
            raise VQVAEError("when resuming only train.* settings can change")
        cfg = build(merge(base.to_dict(), over))
    else:
        raw = read_yaml(config or f"prior-{arch}")
        code_shape = tuple(train_set.images.shape[1:])
        g, h, w = (1, *code_shape) if len(code_shape) == 2 else code_shape
        if tile is not None:
            if not 1 <= tile <= min(h, w):
                raise VQVAEError(f"--tile must be in 1..{min(h, w)} (the {h}x{w} code maps), got {tile}")
            h = w = tile
        n_classes = 0
        if conditional:
            if train_set.labels is None:
                raise VQVAEError(f"--conditional needs labels, and {tok_cfg.data.name} has none")
            n_classes = len(train_set.classes) if train_set.classes else int(train_set.labels.max()) + 1
        fixed = {"arch": arch, "data": {**asdict(tok_cfg.data), "crop": tile or 0},
                 "model": {"codebook_size": tok_cfg.model.codebook_size, "num_codebooks": g, "height": h, "width": w, "num_classes": n_classes},
                 "tokenizer": {"path": str(tok_dir), "fingerprint": fp}}
        bad = set(over.get("model", {})) & set(fixed["model"])
        if bad or set(over) - {"train", "model"}:
            raise VQVAEError(f"{sorted(bad)[0] if bad else 'that section'} is set by the tokenizer (and --conditional); only model.* sizes and train.* can change")
        cfg = build(merge(merge(raw, over), fixed))
        run_dir = Path(out or f"runs/{tok_dir.name}-{arch}-{time.strftime('%Y%m%d-%H%M%S')}")
        if (run_dir / checkpoint.STATE).exists():
            raise VQVAEError(f"{run_dir} already holds a run: pass --resume to continue it or choose another --out")
    trainer = Trainer(cfg, run_dir, train_set, test_set, resume=resume, progress=progress)
    n_par = sum(p.numel() for p in trainer.model.parameters())
    print(f"training a {arch} prior ({n_par / 1e6:.2f}M parameters) on {len(train_set)} code maps {tuple(train_set.images.shape[1:])} "
          f"of {tok_dir} on {trainer.device} -> {run_dir}")
    final = trainer.fit()
    audio = tok_cfg.arch in AUDIO_ARCHS
    samples = run_dir / ("samples" if audio else "samples.png")
    _sample_grid(trainer.model.eval(), tok.to(trainer.device), cfg, 8 if audio else 64, None, samples, torch.Generator().manual_seed(0))
    checkpoint.atomic_write(run_dir / "eval.json", json.dumps(final, indent=2).encode())
    commands.save_curves(run_dir, arch)
    print(f"step {final['step']}: test NLL {final['bits_per_code']:.4f} bits/code (uniform prior: {math.log2(cfg.model.codebook_size):.4f}); "
          f"samples -> {samples}")
    return final


def _sample_labels(cfg, n: int, label: int | None) -> tuple[torch.Tensor | None, int]:
    """Labels of ``n`` samples and the grid's row length: one class (``label``), or for a
    conditional prior rows of classes 0, 1, 2, ..., or ``None`` (unconditional)."""
    c = cfg.model.num_classes
    if label is None:
        if not c:
            return None, 8
        per = -(-n // c)
        return (torch.arange(n) // per).clamp(max=c - 1), per
    if not c:
        raise VQVAEError("--label given, but this prior is unconditional (train it with --conditional)")
    if not 0 <= label < c:
        raise VQVAEError(f"--label must be in [0, {c}) for this prior, got {label}")
    return torch.full((n,), label, dtype=torch.long), 8


def _sample_grid(model, tok, cfg, n: int, label: int | None, out, gen: torch.Generator, voice: int | None = None, **filters) -> torch.Tensor:
    """Sample ``n`` code maps and decode them: images -> a PNG grid (a row per class); audio -> wav
    files (``out`` a .wav for one sample, else a folder, with spectrograms.png) in the voice of the
    class labels (a speaker-conditional prior) or ``voice``. Returns the codes."""
    labels, nrow = _sample_labels(cfg, n, label)
    dev = next(model.parameters()).device
    z = model.sample(n, None if labels is None else labels.to(dev), generator=gen, **filters)
    if not isinstance(tok, AudioVQVAE):
        images = inference.decode(tok, z.cpu())
        plots.save_grid(images, out, nrow=min(nrow, 16), scale=max(1, 64 // images.shape[-1]))
        return z
    from vqvae import audio_inference
    from vqvae.audio_data import write_wav

    voices = labels if labels is not None else torch.full((n,), voice or 0, dtype=torch.long)
    wav = audio_inference.decode(tok, z[:, 0].cpu(), voices)
    sr, names = tok.config.sample_rate, tok.config.speakers
    out = Path(out)
    paths = [out] if out.suffix.lower() == ".wav" and n == 1 else [out / f"sample_{i:03d}_{names[int(v)]}.wav" for i, v in enumerate(voices)]
    for p, w in zip(paths, wav):
        write_wav(p, w[0], sr)
    plots.save_spectrograms([(p.name, w[0]) for p, w in list(zip(paths, wav))[:4]], sr,
                            out.with_suffix(".png") if out.suffix.lower() == ".wav" else out / "spectrograms.png")
    return z


def sample(prior: str, n: int, label: int | None, temperature: float, top_k: int, top_p: float, seed: int, out: str,
           save_codes: str | None, device: str = "auto", speaker: str | None = None) -> Path:
    if n < 1:
        raise VQVAEError(f"-n must be >= 1, got {n}")
    if temperature <= 0:
        raise VQVAEError(f"--temperature must be > 0, got {temperature}")
    if top_k < 0 or not 0 < top_p <= 1:
        raise VQVAEError(f"--top-k must be >= 0 and --top-p in (0, 1], got {top_k}, {top_p}")
    dev = pick_device(device)
    cfg, model, tok_cfg, tok = codes.load_prior(prior, device=dev)
    voice = None
    if speaker is not None:
        if tok_cfg.arch not in AUDIO_ARCHS:
            raise VQVAEError("--speaker is for priors over audio codes; use --label for image classes")
        from vqvae.commands_audio import speaker_id

        voice = speaker_id(tok_cfg, speaker)
        if cfg.model.num_classes:
            label = voice
    z = _sample_grid(model, tok, cfg, n, label, out, torch.Generator().manual_seed(seed), voice=voice, temperature=temperature,
                     top_k=top_k, top_p=top_p)
    msg = f"{n} samples -> {out}"
    if save_codes:
        np.save(save_codes, z.cpu().numpy().astype(np.int16 if cfg.model.codebook_size <= 2**15 else np.int32))
        msg += f", codes -> {save_codes}"
    print(msg)
    return Path(out)


def evaluate_prior(run: str, data_root: str | None, split: str, classifier: str | None, n_samples: int, seed: int,
                   as_json: bool, device: str = "auto", inception: str | None = None, **filters) -> dict:
    """Bits/dim under the learned and the uniform prior; optionally sample accuracy and classifier FD."""
    dev = pick_device(device)
    cfg, model, tok_cfg, tok = codes.load_prior(run, device=dev)
    tok_dir = codes.resolve_tokenizer(Path(run), cfg.tokenizer.path)
    cs = codes.dataset_codes(tok_dir, tok_cfg, tok, cfg.tokenizer.fingerprint, split, data_root=data_root)
    pm = PriorTask().evaluate(model, cs.images, cs.labels, 256)
    if tok_cfg.arch in AUDIO_ARCHS:  # the code rate under the learned prior vs the uniform one
        per_s = tok_cfg.model.sample_rate / tok_cfg.model.downsampling
        res = {"run": str(run), "split": split, "clips": len(cs), "prior_bits_per_code": pm["bits_per_code"],
               "uniform_bits_per_code": math.log2(cfg.model.codebook_size), "bits_per_second": pm["bits_per_code"] * per_s,
               "bits_per_second_uniform_prior": math.log2(cfg.model.codebook_size) * per_s}
        print(json.dumps(res, indent=2) if as_json else f"{split}: {res['prior_bits_per_code']:.3f} bits/code under the prior, "
              f"{res['bits_per_second']:.0f} bits/s (uniform prior: {res['bits_per_second_uniform_prior']:.0f})")
        return res
    ds = load_split(tok_cfg, split, data_root)
    tm = inference.evaluate(tok, ds.images, desc="tokenizer")
    subpixels = int(np.prod(ds.images.shape[1:]))
    res = {
        "run": str(run), "data": ds.name, "split": split, "images": len(ds),
        "prior_bits_per_code": pm["bits_per_code"], "uniform_bits_per_code": math.log2(cfg.model.codebook_size),
        "recon_bits_per_dim": tm["recon_bits_per_dim"],
        # per code times codes per map: the same as the NLL per map, also for a tiled prior (measured on whole tiles)
        "bits_per_dim": tm["recon_bits_per_dim"] + pm["bits_per_code"] * int(np.prod(cs.images.shape[1:])) / subpixels,
        "bits_per_dim_uniform_prior": tm["bits_per_dim"],
        "tokenizer_psnr": tm["psnr"],
    }
    if classifier or inception:
        res.update(score_samples(model, tok, ds, classifier, n_samples, seed, dev, inception, **filters))
    if as_json:
        print(json.dumps(res, indent=2))
    else:
        print(f"{ds.name} {split}: {res['bits_per_dim']:.3f} bits/dim under the prior ({res['prior_bits_per_code']:.3f} bits/code), "
              f"{res['bits_per_dim_uniform_prior']:.3f} under the uniform prior")
        if inception:
            print(f"Inception FID: samples {res['fid_inception_samples']:.2f}, reconstructions {res['fid_inception_reconstructions']:.2f}")
        if classifier:
            print(f"samples: accuracy {res.get('sample_accuracy', float('nan')):.3f} (classifier on test: {res['classifier_test_accuracy']:.3f}), "
                  f"classifier FD samples {res['fd_samples']:.2f} vs reconstructions {res['fd_reconstructions']:.2f}")
    return res


def score_samples(model, tok, ds, classifier: str | None, n: int, seed: int, dev, inception: str | None = None, **filters) -> dict:
    """Draw ``n`` samples (balanced over classes if conditional; ``filters``: temperature, top_k, top_p)
    and score them with a classifier run and/or the Inception FID network."""
    net = scoring.load_inception(inception) if inception else None
    clf = None
    if classifier:
        ccfg, clf = checkpoint.load_run(classifier, device=dev)
        if ccfg.arch != "classifier":
            raise VQVAEError(f"{classifier} is a {ccfg.arch} run, not a classifier (train one with: vqvae classifier train --data ...)")
        if ccfg.model.in_channels != ds.channels:
            raise VQVAEError(f"classifier {classifier} expects {ccfg.model.in_channels} channels, the data has {ds.channels}")
    c = model.config.num_classes
    labels = (torch.arange(n) % c) if c else None
    gen = torch.Generator().manual_seed(seed)
    z = torch.cat([model.sample(len(chunk), None if labels is None else labels[chunk].to(dev), generator=gen, **filters).cpu()
                   for chunk in torch.arange(n).split(250)])
    samples = inference.decode(tok, z)
    recons = inference.reconstruct(tok, ds.images)
    out = {"samples": n, "sampling": {"temperature": 1.0, "top_k": 0, "top_p": 1.0, **filters}}
    if net is not None:
        out["fid_inception_samples"] = scoring.inception_fd(net, ds.images, samples)
        out["fid_inception_reconstructions"] = scoring.inception_fd(net, ds.images, recons)
    if clf is None:
        return out
    out.update({"classifier_test_accuracy": scoring.label_accuracy(clf, ds.images, ds.labels) if ds.labels is not None else None,
                "reconstruction_accuracy": scoring.label_accuracy(clf, recons, ds.labels) if ds.labels is not None else None,
                "fd_samples": scoring.fd_between(clf, ds.images, samples),
                "fd_reconstructions": scoring.fd_between(clf, ds.images, recons)})
    if c:
        out["sample_accuracy"] = scoring.label_accuracy(clf, samples, labels)
    return out
