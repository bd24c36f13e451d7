"""Run configuration: dataclasses, YAML presets and dotted overrides.

A run is described by :class:`RunConfig` with three sections, ``data``,
``model`` (the model's own config dataclass, chosen by ``arch``) and
``train``. Presets in ``vqvae/configs/*.yaml`` hold values only. Overrides
use dotted keys, e.g. ``--train.lr=3e-4 --model.codebook_size=1024``; an
unknown key is an error that lists the valid ones, and each section validates
its ranges.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from vqvae import registry
from vqvae.core.errors import CheckpointError, ConfigError, require

PRESET_DIR = Path(__file__).resolve().parents[1] / "configs"
RUN_FORMAT = "vqvae-run/1"  # the format tag of a run directory's config.json
RUN_CONFIG = "config.json"


@dataclass
class DataConfig:
    name: str = "fashion-mnist"  # a known set, a folder of images, or a .npy file
    root: str | None = None  # data root; None: --data-root, $VQVAE_DATA, ./data, ../shared/data
    image_size: int = 0  # 0: native size (folders need it unless all images share a size)
    channels: int = 0  # 0: native; 1 or 3 converts
    download: bool = False  # fetch the official files when missing (needs internet)
    hflip: bool = False  # random horizontal flips in training
    crop: int = 0  # train on random crops: windows of this many samples (audio) or crop x crop patches (images); 0: off
    augment: str = "crop"  # images: "crop" (random crops of data.crop, flips with data.hflip) or "dalle" (DALL-E's stage-1
    #                        preprocessing to data.crop: random square crop, area resize to 9/8..12/8, random crop, flip)
    # audio (fsdd, folders of .wav):
    sample_rate: int = 8000  # clips are resampled to this rate
    clip_length: int = 8192  # samples per clip (centre-cropped or zero-padded)
    trim: bool = True  # trim leading/trailing silence
    scenario: str = "my_way_home"  # doom: the ViZDoom scenario the episodes are played in
    label: str = "speaker"  # what labels are: "speaker" or "digit" (FSDD); "attributes" for the scenes (the scene reader's)
    reconstructions_from: str = ""  # classifiers (scene reader, audio), CLIP: a tokenizer run; train on its reconstructions of the
    #                                 training split too, so the classifier reads decoded (generated, converted) data

    def validate(self) -> None:
        if self.image_size < 0 or self.channels not in (0, 1, 3):
            raise ConfigError("data.image_size must be >= 0 and data.channels one of 0, 1, 3")
        if not (1000 <= self.sample_rate <= 192000 and self.clip_length >= 64):
            raise ConfigError("data.sample_rate must be in 1000..192000 and data.clip_length >= 64")
        if self.crop < 0:
            raise ConfigError(f"data.crop must be >= 0 (0: no random crops), got {self.crop}")
        if self.augment not in ("crop", "dalle") or (self.augment == "dalle" and self.crop < 1):
            raise ConfigError(f"data.augment must be 'crop' or 'dalle' (which needs data.crop, the target side), got {self.augment!r}")
        if self.label not in ("speaker", "digit", "attributes"):
            raise ConfigError(f"data.label must be 'speaker', 'digit' or 'attributes' (scenes), got {self.label!r}")


@dataclass
class TrainConfig:
    steps: int = 250_000  # the paper's budget
    minutes: float = 0.0  # wall-clock budget; 0 = none. Training stops at whichever comes first
    batch_size: int = 128
    lr: float = 2e-4
    lr_schedule: str = "constant"  # "constant" (paper) or "cosine"
    warmup_steps: int = 0
    weight_decay: float = 0.0
    grad_clip: float = 0.0  # 0 = off
    eval_every: int = 1000  # steps between test evaluations (0 = only at the end)
    eval_images: int = 2000  # test images per periodic evaluation (0 = all); the final one: final_eval_images
    final_eval_images: int = 0  # the final evaluation's first test items (0: the whole test set)
    log_every: int = 25
    ckpt_every: int = 1000  # steps between checkpoints
    ckpt_minutes: float = 2.0  # and at least this often in wall-clock time
    seed: int = 0
    device: str = "auto"  # auto, cpu, cuda, cuda:N, mps
    amp: str = "none"  # "none", "bf16" or "fp16" (with dynamic loss scaling); the quantizer stays in fp32
    compile: str = "none"  # torch.compile the whole training step: none, default, reduce-overhead (CUDA graphs), max-autotune
    channels_last: bool = False  # images: NHWC memory layout (faster convolutions under bf16 on GPUs)
    powersgd_rank: int = 0  # multi-process: PowerSGD gradient compression of this rank (0: off; DALL-E used it)
    threads: int = 0  # torch CPU threads; 0 = torch's default; -1 = the fastest, timed on the first steps (busy machines)
    init_from: str = ""  # a run directory of the same arch and model config whose weights start this run (fine-tuning)
    freeze: str = ""  # comma-separated model parts kept fixed, e.g. "encoder,quantizer": no gradients, no EMA, k-means or restarts

    def validate(self) -> None:
        checks = [
            (self.steps >= 1, "train.steps must be >= 1"),
            (self.minutes >= 0, "train.minutes must be >= 0"),
            (self.batch_size >= 1, "train.batch_size must be >= 1"),
            (0 < self.lr < 1, "train.lr must be in (0, 1)"),
            (self.lr_schedule in ("constant", "cosine"), "train.lr_schedule must be 'constant' or 'cosine'"),
            (self.warmup_steps >= 0 and self.weight_decay >= 0 and self.grad_clip >= 0, "train.warmup_steps, weight_decay, grad_clip must be >= 0"),
            (self.eval_every >= 0 and self.eval_images >= 0 and self.final_eval_images >= 0,
             "train.eval_every, train.eval_images and train.final_eval_images must be >= 0"),
            (self.log_every >= 1 and self.ckpt_every >= 1 and self.ckpt_minutes > 0, "train.log_every, ckpt_every, ckpt_minutes must be > 0"),
            (self.amp in ("none", "bf16", "fp16"), "train.amp must be 'none', 'bf16' or 'fp16'"),
            (self.powersgd_rank >= 0, "train.powersgd_rank must be >= 0"),
            (self.compile in ("none", "default", "reduce-overhead", "max-autotune"),
             "train.compile must be none, default, reduce-overhead or max-autotune"),
            (self.threads >= -1, "train.threads must be >= 0 (or -1: timed on the first steps)"),
            (not self.freeze or all(n.strip() for n in self.freeze.split(",")), "train.freeze must be comma-separated part names, e.g. encoder,quantizer"),
            (self.device == "auto" or self.device.split(":")[0] in ("cpu", "cuda", "mps"), "train.device must be auto, cpu, cuda[:N] or mps"),
        ]
        require(checks)


@dataclass
class TokenizerRef:
    """A prior's tokenizer: its run directory and the fingerprint of its config and codebook."""

    path: str = ""  # as given when the prior was trained (absolute)
    fingerprint: str = ""

    def validate(self) -> None:
        pass


@dataclass
class RunConfig:
    arch: str = "vqvae"
    data: DataConfig = field(default_factory=DataConfig)
    model: typing.Any = None  # the arch's config dataclass
    train: TrainConfig = field(default_factory=TrainConfig)
    tokenizer: TokenizerRef = field(default_factory=TokenizerRef)  # priors only

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def validate(self) -> None:
        self.data.validate()
        self.model.validate()
        self.train.validate()
        if self.data.reconstructions_from and not registry.get(self.arch).reads_reconstructions:
            readers = ", ".join(n for n in registry.names() if registry.get(n).reads_reconstructions)
            raise ConfigError(f"data.reconstructions_from is for the models that read decoded data ({readers}), not arch {self.arch}")


def _convert(value, tp, key: str):
    """Coerce a YAML value to the field type ``tp`` or raise ConfigError."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        tp = next(a for a in args if a is not type(None))
    if typing.get_origin(tp) is list:
        (item,) = typing.get_args(tp)
        if isinstance(value, (list, tuple)):
            return [_convert(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
        raise ConfigError(f"{key} expects a list, got {value!r}")
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            if abs(value) >= 2**40:  # no setting means that; torch would overflow deep inside
                raise ConfigError(f"{key} expects an integer below 2^40, got {value}")
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "3e-4" as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
    raise ConfigError(f"{key} expects {getattr(tp, '__name__', tp)}, got {value!r}")


def from_dict(cls, data: dict | None, prefix: str = ""):
    """Build dataclass ``cls`` from ``data``, rejecting unknown keys."""
    data = data or {}
    if not isinstance(data, dict):
        raise ConfigError(f"section {prefix.rstrip('.') or 'config'} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(f"unknown config key {prefix}{unknown[0]}; valid keys: {', '.join(prefix + n for n in names)}")
    return cls(**{k: _convert(v, hints[k], prefix + k) for k, v in data.items()})


def build(raw: dict) -> RunConfig:
    """RunConfig from a nested dict (a preset, config.json, or both merged)."""
    raw = dict(raw or {})
    unknown = sorted(set(raw) - {"arch", "data", "model", "train", "tokenizer"})
    if unknown:
        raise ConfigError(f"unknown config section {unknown[0]}; valid: arch, data, model, train, tokenizer")
    arch = raw.get("arch", "vqvae")
    cfg = RunConfig(
        arch=arch,
        data=from_dict(DataConfig, raw.get("data"), "data."),
        model=from_dict(registry.config_class(arch), raw.get("model"), "model."),
        train=from_dict(TrainConfig, raw.get("train"), "train."),
        tokenizer=from_dict(TokenizerRef, raw.get("tokenizer"), "tokenizer."),
    )
    cfg.validate()
    return cfg


def parse_overrides(items: list[str]) -> dict:
    """``["train.lr=3e-4", "--model.K=8"]`` -> nested dict; values parsed as YAML scalars."""
    out: dict = {}
    for item in items:
        s = item[2:] if item.startswith("--") else item
        if "=" not in s or "." not in s.split("=", 1)[0]:
            raise ConfigError(f"override {item!r} must look like --section.key=value (sections: data, model, train)")
        key, value = s.split("=", 1)
        parts = key.split(".")
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        try:
            node[parts[-1]] = yaml.safe_load(value) if value != "" else ""
        except yaml.YAMLError:
            node[parts[-1]] = value
    return out


def merge(base: dict, over: dict) -> dict:
    """Recursive dict merge; ``over`` wins."""
    out = dict(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def read_yaml(path: str | Path) -> dict:
    p = Path(path)
    if not p.is_file():
        p2 = PRESET_DIR / f"{path}.yaml"
        if not p2.is_file():
            raise ConfigError(f"config {path} not found: expected a YAML file or a preset name ({', '.join(presets())})")
        p = p2
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ConfigError(f"config {p} is not valid YAML: {str(e).splitlines()[0]}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"config {p} is not UTF-8 text ({e.reason} at byte {e.start}): expected a YAML file") from None
    except OSError as e:
        raise ConfigError(f"config {p} cannot be read ({e.strerror})") from None
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"config {p} must be a mapping of sections (data, model, train)")
    return data or {}


def preset_for(dataset: str) -> str:
    """The preset used by ``vqvae train --data NAME`` without ``--config``."""
    key = dataset.lower().replace("_", "-")
    key = {"fmnist": "fashion-mnist", "cifar-10": "cifar10", "cifar10-subset": "cifar10", "cifar-10-subset": "cifar10"}.get(key, key)
    if key.startswith("scenes:"):
        key = "scenes"  # scenes:N uses the scenes preset
    if (PRESET_DIR / f"{key}.yaml").is_file():
        return key
    p = Path(dataset).expanduser()
    if p.is_dir() and next(p.rglob("*.wav"), None) is not None:
        return "fsdd"  # the audio preset, for any folder of wav files
    return "default"


def load_config(config: str | None, dataset: str | None, overrides: list[str] | dict | None = None) -> RunConfig:
    """Preset (or ``config`` file) + ``--data`` + dotted overrides -> validated RunConfig."""
    raw = read_yaml(config or preset_for(dataset or DataConfig.name))
    if dataset:
        raw = merge(raw, {"data": {"name": dataset}})
    over = overrides if isinstance(overrides, dict) else parse_overrides(overrides or [])
    return build(merge(raw, over))


def read_run_config(run_dir: str | Path) -> dict:
    """A run directory's ``config.json`` as a dict (format tag checked, not yet built): cheap, no model code."""
    run_dir = Path(run_dir)
    path = run_dir / RUN_CONFIG
    if not run_dir.is_dir():
        raise CheckpointError(f"run directory {run_dir} does not exist")
    if not path.is_file():
        raise CheckpointError(f"{run_dir} is not a run directory: {RUN_CONFIG} is missing")
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path} is not valid JSON ({e.msg if hasattr(e, 'msg') else e})") from None
    if not isinstance(raw, dict) or raw.pop("format", None) != RUN_FORMAT:
        raise CheckpointError(f"{path} is not a vqvae run config (expected format {RUN_FORMAT!r})")
    return raw
