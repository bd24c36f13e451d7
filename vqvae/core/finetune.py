"""Fine-tuning a run: start from another run's weights (``train.init_from``), keep named parts fixed (``train.freeze``)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch

from vqvae.core import checkpoint
from vqvae.core.config import RunConfig
from vqvae.core.errors import VQVAEError


def init_weights_from(model: torch.nn.Module, cfg: RunConfig, run: str | Path) -> None:
    """Start ``model`` from the weights (and buffers: codebooks, EMA statistics) of run ``run``,
    which must have the same arch and model config: fine-tuning, e.g. a codec's decoder on fixed codes."""
    src_cfg, src = checkpoint.load_run(run)
    mine, theirs = asdict(cfg.model), asdict(src_cfg.model)
    diff = ["arch"] if src_cfg.arch != cfg.arch else [k for k, v in mine.items() if theirs.get(k) != v]
    if diff:
        raise VQVAEError(f"train.init_from={run}: that run's arch or model config differs from this one ({', '.join(diff)}); "
                         "fine-tuning needs the same model (pass the same --config and --model overrides)")
    checkpoint.load_weights(model, src.state_dict(), Path(run) / checkpoint.MODEL)


def freeze(model: torch.nn.Module, spec: str, arch: str) -> list[torch.nn.Module]:
    """Freeze the named top-level parts of ``model`` (``spec``: "encoder,quantizer"); returns the
    modules the training loop must keep in eval mode.

    A frozen part gets no gradients, and those of its modules that own state (parameters or
    buffers: codebooks with their EMA statistics, k-means flag and usage counters) or are dropout
    run in eval mode, so nothing in it changes. Stateless wrappers keep their training behaviour:
    a frozen residual quantizer still applies quantizer dropout, so a decoder fine-tuned on its
    fixed codes keeps decoding every stage prefix (every quality level of the codec).
    """
    names = [n.strip() for n in spec.split(",") if n.strip()]
    parts = dict(model.named_children())
    fixed: list[torch.nn.Module] = []
    for n in names:
        if n not in parts:
            raise VQVAEError(f"train.freeze: the {arch} model has no part {n!r}; its parts are {', '.join(parts)}")
        parts[n].requires_grad_(False)
        for m in parts[n].modules():
            owns_state = next(m.parameters(recurse=False), None) is not None or next(m.buffers(recurse=False), None) is not None
            if owns_state or isinstance(m, torch.nn.modules.dropout._DropoutNd):
                fixed.append(m)
    if names and not any(p.requires_grad for p in model.parameters()):
        raise VQVAEError(f"train.freeze={spec}: nothing is left to train")
    return fixed
