"""Codes of a dataset under a tokenizer, and the binding of a prior to its tokenizer.

A prior is only meaningful with the tokenizer whose codes it was trained on,
so a prior's run directory stores the tokenizer's path and a **fingerprint**:
SHA-256 of the tokenizer's model config (canonical JSON) and of its codebook
tensors. :func:`load_prior` refuses a tokenizer whose fingerprint differs
(retrained, edited, or another run), with a one-line error.

Audio tokenizers' content codes ``(N, t)`` are stored as ``(N, 1, t)`` maps,
so the same priors model them (one row of ``t`` codes; labels are speakers).

Encoding a dataset is done once: :func:`dataset_codes` caches the code maps
and labels of a split in ``<tokenizer run>/codes/<data>-<split>-<fp>.npz``
(written atomically), keyed by the fingerprint so a changed tokenizer never
reuses stale codes.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from vqvae import registry
from vqvae.core import checkpoint, zoo
from vqvae.core.errors import CheckpointError, VQVAEError
from vqvae.core.files import atomic_write
from vqvae.core.task import tokenizer_task
from vqvae.data.sets import ImageSet, TensorSet


class CodeSet(TensorSet):
    """A split's code maps: ``images`` int64 ``(N, *code_shape)`` (named so the
    Trainer treats codes and images alike), optional ``labels`` and class names."""


def fingerprint(cfg, model) -> str:
    """SHA-256 (hex, 16 chars) of a tokenizer's model config and codebook(s)."""
    h = hashlib.sha256(json.dumps(asdict(cfg.model), sort_keys=True).encode())
    for name, t in sorted(model.state_dict().items()):
        if name.startswith("quantizer.") and name.endswith("embedding"):
            h.update(name.encode())
            h.update(t.detach().cpu().float().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def load_tokenizer(run: str | Path, device: str | torch.device = "cpu"):
    """``(cfg, model, fingerprint)`` of a tokenizer run; a clear error if it is a prior or classifier."""
    cfg, model = checkpoint.load_run(run, device=device)
    tokenizer_task(cfg.arch, str(run))
    return cfg, model, fingerprint(cfg, model)


def encode_data(cfg, model, x: torch.Tensor) -> np.ndarray:
    """A tokenizer's codes of inputs ``x``: image code maps ``(N, h, w)`` / ``(N, G, h, w)``, or audio
    content codes ``(N, T / f)``, as int64 numpy."""
    return tokenizer_task(cfg.arch, "the tokenizer").encode(model, x)


def dataset_codes(tok_run: str | Path, tok_cfg, tok_model, fp: str, split: str, data: str | None = None,
                  data_root: str | None = None, write: bool = True) -> CodeSet:
    """Code maps of ``split`` of the tokenizer's dataset (or ``data``), cached in the tokenizer run (a shipped one's
    under ``~/.cache/vqvae/zoo``: :func:`vqvae.core.zoo.cache_dir`; ``write``: store a new cache; under torchrun only
    rank 0 does)."""
    name = data or tok_cfg.data.name
    cache = zoo.cache_dir(tok_run) / "codes" / f"{Path(name).stem.replace('{split}', '')}-{split}-{fp}.npz"
    if cache.is_file():
        try:
            with np.load(cache, allow_pickle=False) as z:
                codes, labels = z["codes"], (z["labels"] if "labels" in z.files else None)
                classes = [str(c) for c in z["classes"]] if "classes" in z.files else None
            return CodeSet(torch.from_numpy(codes.astype(np.int64)), None if labels is None else torch.from_numpy(labels.astype(np.int64)),
                           classes, f"{name} codes")
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache is rebuilt
    if data:
        tok_cfg = copy.deepcopy(tok_cfg)
        tok_cfg.data.name = data
    task = tokenizer_task(tok_cfg.arch, str(tok_run))
    ds = task.load_split(tok_cfg, split, data_root)
    if isinstance(ds, ImageSet) and ds.channels != tok_cfg.model.in_channels:
        raise VQVAEError(f"{ds.name} has {ds.channels} channels but the tokenizer expects {tok_cfg.model.in_channels}")
    codes = task.encode(tok_model, ds.images)
    if codes.ndim == 2:  # audio: (N, t) content codes -> (N, 1, t) maps, so the priors see a 1 x t "image"; labels: speakers
        codes = codes[:, None]
    if write:
        _save_cache(cache, codes, ds, tok_cfg.model.codebook_size)
    return CodeSet(torch.from_numpy(codes), ds.labels, ds.classes, f"{ds.name} codes")


def _save_cache(cache: Path, codes: np.ndarray, ds, codebook_size: int) -> None:
    arrays = {"codes": codes.astype(np.int16 if codebook_size <= 2**15 else np.int32)}
    if ds.labels is not None:
        arrays["labels"] = ds.labels.numpy()
    if ds.classes:
        arrays["classes"] = np.array(ds.classes)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write(cache, buf.getvalue())


def load_prior(run: str | Path, device: str | torch.device = "cpu", tokenizer: str | Path | None = None):
    """``(prior_cfg, prior, tok_cfg, tokenizer)`` with the tokenizer checked against the stored fingerprint.

    ``tokenizer``: another tokenizer run to pair with the prior instead of the stored one. Its
    fingerprint (model config and codebooks) must match, so its codes are the prior's: for example
    a run whose decoder was fine-tuned with ``--train.freeze=encoder,quantizer``."""
    run = Path(run)
    cfg, prior = checkpoint.load_run(run, device=device)
    if registry.is_kind(cfg.arch, "tokenizer") or not cfg.tokenizer.path:
        raise VQVAEError(f"{run} is a {cfg.arch} run, not a prior (train one with: vqvae prior train --tokenizer RUN)")
    where = checkpoint.resolve_tokenizer(run, cfg.tokenizer.path, tokenizer)
    tok_cfg, tok, fp = load_tokenizer(where, device=device)
    if fp != cfg.tokenizer.fingerprint:
        raise CheckpointError(f"the tokenizer at {where} (fingerprint {fp}) is not the one prior {run} was trained on "
                              f"(fingerprint {cfg.tokenizer.fingerprint}): it was retrained or replaced")
    return cfg, prior, tok_cfg, tok
