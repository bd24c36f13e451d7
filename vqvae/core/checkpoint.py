"""Run directories: config, weights and resumable training state.

A run directory holds::

    config.json              the RunConfig (arch, data, model, train) + format tag
    model.safetensors        the model's state_dict (weights and buffers)
    train_state.safetensors  model + optimizer + RNG + step: all that resuming needs
    metrics.jsonl, tb/       logs (see vqvae.core.train)

Every file is written atomically (:func:`vqvae.core.files.atomic_write`), so a kill at any moment leaves the previous version readable. Resume
reads only ``train_state.safetensors``, which holds the model too, so the
three files never need to agree with each other. Nothing is unpickled:
tensors are safetensors, everything else JSON.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from vqvae import registry
from vqvae.core import config as config_mod
from vqvae.core import zoo
from vqvae.core.errors import CheckpointError, ConfigError
from vqvae.core.files import atomic_write

FORMAT, CONFIG = config_mod.RUN_FORMAT, config_mod.RUN_CONFIG
MODEL = "model.safetensors"
STATE = "train_state.safetensors"


def save_config(run_dir: Path, cfg: config_mod.RunConfig) -> None:
    atomic_write(Path(run_dir) / CONFIG, json.dumps({"format": FORMAT, **cfg.to_dict()}, indent=2).encode())


def load_config(run_dir: str | Path) -> config_mod.RunConfig:
    """The validated :class:`~vqvae.core.config.RunConfig` of a run directory (a one-line error if it is not one);
    ``zoo:NAME`` names a shipped one."""
    run_dir = zoo.resolve(run_dir)
    raw = config_mod.read_run_config(run_dir)
    try:
        return config_mod.build(raw)
    except ConfigError as e:
        raise CheckpointError(f"{Path(run_dir) / CONFIG}: {e}") from None


def _state_dict_bytes(tensors: dict[str, torch.Tensor], meta: dict) -> bytes:
    """safetensors bytes; tensors that are one tensor under several names (tied weights)
    are stored once and listed in the metadata's ``aliases`` (safetensors refuses shared memory)."""
    out: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    seen: dict[tuple, str] = {}
    for k, v in tensors.items():
        key = (v.device, v.data_ptr(), v.dtype, tuple(v.shape), v.stride()) if v.numel() else None
        if key in seen:
            aliases[k] = seen[key]
            continue
        if key is not None:
            seen[key] = k
        out[k] = v.detach().contiguous().cpu()
    if aliases:
        meta = {**meta, "aliases": aliases}
    return st_save(out, metadata={"vqvae": json.dumps(meta)})


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Tensors and our JSON metadata from one read of a safetensors file (no pickle involved)."""
    if not path.is_file():
        raise CheckpointError(f"{path} is missing")
    try:
        raw = path.read_bytes()
        tensors = st_load(raw)
        n = int.from_bytes(raw[:8], "little")
        header = json.loads(raw[8 : 8 + n])
        meta = json.loads((header.get("__metadata__") or {}).get("vqvae", "{}"))
        for alias, target in meta.get("aliases", {}).items():
            tensors[alias] = tensors[target]
    except (SafetensorError, json.JSONDecodeError, UnicodeDecodeError, ValueError, OSError, KeyError, AttributeError) as e:
        raise CheckpointError(f"{path} is truncated or not a safetensors file ({e})") from None
    return tensors, meta


def save_model(run_dir: Path, model: torch.nn.Module, step: int) -> None:
    atomic_write(Path(run_dir) / MODEL, _state_dict_bytes(model.state_dict(), {"step": step}))


def load_weights(model: torch.nn.Module, tensors: dict[str, torch.Tensor], source: Path) -> None:
    """Strict load with a one-line error naming what does not match."""
    own = model.state_dict()
    missing = sorted(set(own) - set(tensors))
    extra = sorted(set(tensors) - set(own))
    if missing or extra:
        what = f"missing {missing[:3]}" if missing else f"unexpected {extra[:3]}"
        raise CheckpointError(f"{source} does not match the model in config.json: {what}")
    for k, v in tensors.items():
        if v.shape != own[k].shape:
            raise CheckpointError(f"{source} does not match config.json: {k} has shape {tuple(v.shape)}, expected {tuple(own[k].shape)}")
    model.load_state_dict(tensors, strict=True)


def load_run(run_dir: str | Path, device: str | torch.device = "cpu"):
    """``(RunConfig, model in eval mode)`` from a run directory (or ``zoo:NAME``, a shipped one)."""
    run_dir = zoo.resolve(run_dir)
    cfg = load_config(run_dir)
    try:
        model = registry.create_model(cfg.arch, cfg.model)
    except ConfigError as e:
        raise CheckpointError(f"{run_dir / CONFIG}: {e}") from None
    tensors, _ = _read_safetensors(run_dir / MODEL)
    load_weights(model, tensors, run_dir / MODEL)
    return cfg, model.to(device).eval()


# --- resumable training state ---------------------------------------------


def save_train_state(run_dir: Path, model, optimizer, step: int, extra: dict | None = None) -> None:
    """Model, optimizer and RNG at ``step``, in one atomic safetensors file."""
    tensors = {f"model/{k}": v for k, v in model.state_dict().items()}
    opt = optimizer.state_dict()
    scalars: dict = {}
    for pid, st in opt["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"optim/{pid}/{k}"] = v
            else:
                scalars[f"{pid}/{k}"] = v
    tensors["rng/torch"] = torch.get_rng_state()
    groups = [{k: float(v) if torch.is_tensor(v) else v for k, v in g.items()} for g in opt["param_groups"]]  # a tensor lr
    meta = {"step": step, "param_groups": groups, "optim_scalars": scalars, "extra": extra or {}}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng/cuda{i}"] = s
    atomic_write(Path(run_dir) / STATE, _state_dict_bytes(tensors, meta))


def load_train_state(run_dir: Path, model, optimizer) -> tuple[int, dict]:
    """Restore model, optimizer and RNG; returns ``(step, extra)``."""
    path = Path(run_dir) / STATE
    tensors, meta = _read_safetensors(path)
    if "step" not in meta or "param_groups" not in meta:
        raise CheckpointError(f"{path} is not a vqvae training state")
    load_weights(model, {k[6:]: v for k, v in tensors.items() if k.startswith("model/")}, path)
    state: dict = {}
    for k, v in tensors.items():
        if k.startswith("optim/"):
            _, pid, name = k.split("/", 2)
            state.setdefault(int(pid), {})[name] = v
    for k, v in meta.get("optim_scalars", {}).items():
        pid, name = k.split("/", 1)
        state.setdefault(int(pid), {})[name] = v
    try:
        optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    except (ValueError, KeyError) as e:
        raise CheckpointError(f"{path}: optimizer state does not match the model ({e})") from None
    torch.set_rng_state(tensors["rng/torch"])
    if torch.cuda.is_available():
        cuda = [tensors[k] for k in sorted(t for t in tensors if t.startswith("rng/cuda"))]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
    return int(meta["step"]), meta.get("extra", {})


def resolve_tokenizer(prior_dir: Path, path: str, override: str | Path | None = None) -> Path:
    """The tokenizer run a prior refers to: ``override`` when given (checked by the caller's
    fingerprint test), its stored path, else the same path relative to the prior."""
    if override:
        return Path(override)
    p = Path(path)
    for cand in (prior_dir / p, p, prior_dir.parent / p.name):  # a relative path is the prior's own (the zoo's ../tokenizer)
        if (cand / CONFIG).is_file():
            return cand
    raise CheckpointError(f"the tokenizer of prior {prior_dir} is not at {path}; restore it there (the prior is useless without it)")
