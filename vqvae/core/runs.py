"""The run lifecycle every train-like command shares: open or resume a run directory, train, finish it.

:func:`train` is the one lifecycle. It opens a new run (refusing a ``--out``
that already holds one) or resumes one, trains with the
:class:`~vqvae.core.train.Trainer`, and finishes: ``eval.json``, the loss
curves and the run's own pictures and summary line. Under torchrun every rank
trains and only rank 0 writes or prints; the others wait at a barrier where
rank 0 writes something they read.

What differs between commands is a :class:`Recipe`: how a new run's config is
made, what may change on ``--resume``, which data it trains on, how it is
described and what its report draws. :class:`DatasetRecipe` is ``vqvae
train``'s (a preset, ``--data`` and overrides: tokenizers, classifiers);
priors and the text-to-image models bring their own
(:mod:`vqvae.priors.recipe`, :mod:`vqvae.text2image.recipes`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from vqvae import registry
from vqvae.core import checkpoint, dist, plots
from vqvae.core.config import DataConfig, RunConfig, build, load_config, merge, parse_overrides, preset_for, read_yaml
from vqvae.core.errors import VQVAEError
from vqvae.core.files import atomic_write
from vqvae.core.train import Trainer


@dataclass
class RunArgs:
    """What every train-like command takes besides its own arguments."""

    out: str | None = None  # the run directory (default: runs/<name>-<time>)
    resume: bool = False  # continue the run in ``out``
    steps: int | None = None
    minutes: float | None = None
    data_root: str | None = None
    overrides: list[str] = field(default_factory=list)  # --section.key=value
    progress: bool = True

    def override_dict(self) -> dict:
        """The dotted overrides with ``--steps``/``--minutes`` folded into ``train``."""
        budget = {k: v for k, v in (("steps", self.steps), ("minutes", self.minutes)) if v is not None}
        over = parse_overrides(self.overrides)
        return merge(over, {"train": budget}) if budget else over


class Recipe:
    """What one train-like command brings to :func:`train`."""

    name = "run"  # default run directory: runs/<name>-<time>
    resumable = ("train",)  # config sections that --resume may change

    def __init__(self, args: RunArgs):
        self.args = args
        self.over = args.override_dict()

    def default_name(self) -> str:
        return self.name

    def new_config(self, run_dir: Path) -> RunConfig:
        """The config of a new run (rank 0 may write files into ``run_dir`` here that every rank reads after a barrier)."""
        raise NotImplementedError

    def resume_config(self, base: RunConfig) -> RunConfig:
        """The config of a resumed run: its own, with only the :attr:`resumable` sections changed."""
        if set(self.over) - set(self.resumable):
            raise VQVAEError(f"when resuming only {', '.join(s + '.*' for s in self.resumable)} settings can change")
        return build(merge(base.to_dict(), self.over))

    def data(self, cfg: RunConfig, run_dir: Path):
        """``(train_set, test_set)``: what the Trainer trains and evaluates on."""
        raise NotImplementedError

    def describe(self, cfg: RunConfig, train_set, test_set) -> str:
        """What is trained on what, for the opening line."""
        return f"{cfg.arch} on {train_set.name} ({len(train_set)} train / {len(test_set)} test)"

    def report(self, run_dir: Path, cfg: RunConfig, model, test_set, final: dict) -> str:
        """Draw the finished run's pictures; return its summary line."""
        return registry.task_for(cfg.arch).report(run_dir, model, test_set, final)


def train(recipe: Recipe) -> dict:
    """Open (or resume) a run, train it and finish it; returns the final test metrics."""
    a = recipe.args
    dist.init_from_env()
    if a.resume and not a.out:
        raise VQVAEError("--resume needs --out RUN (the run directory to continue)")
    if a.resume:
        run_dir = Path(a.out)
        cfg = recipe.resume_config(checkpoint.load_config(run_dir))
    else:
        stamp = dist.broadcast_object(time.strftime("%Y%m%d-%H%M%S"))  # one name on every rank
        run_dir = Path(a.out or f"runs/{recipe.default_name()}-{stamp}")
        if (run_dir / checkpoint.STATE).exists():
            raise VQVAEError(f"{run_dir} already holds a run: pass --resume to continue it or choose another --out")
        cfg = recipe.new_config(run_dir)
    train_set, test_set = recipe.data(cfg, run_dir)
    trainer = Trainer(cfg, run_dir, train_set, test_set, resume=a.resume, progress=a.progress)
    main = dist.is_main()
    if main:
        n_par = sum(p.numel() for p in trainer.model.parameters())
        procs = f" x {dist.world_size()} processes" if trainer.distributed else ""
        print(f"training {recipe.describe(cfg, train_set, test_set)} ({n_par / 1e6:.2f}M parameters) on {trainer.device}{procs} -> {run_dir}")
    final = trainer.fit()
    if main:
        atomic_write(run_dir / "eval.json", json.dumps(final, indent=2).encode())
        save_curves(run_dir, cfg.arch)
        print(recipe.report(run_dir, cfg, trainer.model.eval(), test_set, final))
    dist.shutdown()
    return final


def save_curves(run_dir: Path, arch: str) -> None:
    """``loss_curves.png`` of a run, with the panels of its task."""
    metrics = Path(run_dir) / "metrics.jsonl"
    if metrics.is_file():
        plots.save_loss_curves(metrics, Path(run_dir) / "loss_curves.png", registry.task_for(arch).curves)


def code_recipe(args: RunArgs, tokenizer: str, config: str | None, data: str | None) -> Recipe:
    """``vqvae train --tokenizer RUN --config PRESET``: the recipe of the preset's arch, a model trained on the
    tokenizer's codes (:attr:`vqvae.registry.Arch.code_recipe`), or a one-line error."""
    ours = [a for a in registry.INDEX if registry.get(a).code_recipe is not None]
    if data:
        raise VQVAEError("--data and --tokenizer: a model over codes trains on its tokenizer's data (leave out --data)")
    if not config:
        raise VQVAEError(f"--tokenizer needs --config naming a model trained on codes (arch {', '.join(ours)}), e.g. doom-stage2")
    arch = registry.get(str(read_yaml(config).get("arch", "vqvae")))
    if arch.code_recipe is None:
        raise VQVAEError(f"--tokenizer is for models trained on a tokenizer's codes (arch {', '.join(ours)}); {config} is a "
                         f"{arch.name} config" + ("" if arch.trained_by == "vqvae train" else f" (trained by `{arch.trained_by}`)"))
    return arch.code_recipe(args, tokenizer, config)


class DatasetRecipe(Recipe):
    """``vqvae train`` (and ``dvae train``, ``classifier train``): a preset or YAML file, ``--data`` and dotted overrides;
    the data is what the arch's task loads. ``--data-root`` is stored in the run (``data.root``) and may change on resume."""

    resumable = ("train", "data.root")

    def __init__(self, args: RunArgs, data: str | None, config: str | None):
        super().__init__(args)
        self.data_name, self.config = data, config
        if args.data_root:
            self.over = merge(self.over, {"data": {"root": args.data_root}})
        self._cfg = None

    def _config(self) -> RunConfig:
        if self._cfg is None:
            raw = merge(read_yaml(self.config or preset_for(self.data_name or DataConfig.name)), self.over)
            arch = registry.get(str(raw.get("arch", "vqvae")))
            if arch.code_recipe is not None:  # a model over a tokenizer's codes: the tokenizer gives its data
                raise VQVAEError(f"a {arch.name} model trains on a tokenizer's codes: `{arch.trained_by}`")
            if arch.trained_by != "vqvae train":  # before the config is checked: its model is not one this command can fill in
                raise VQVAEError(f"a {arch.name} model is trained by `{arch.trained_by}`, not `vqvae train`")
            self._cfg = load_config(self.config, self.data_name, self.over)
        return self._cfg

    def default_name(self) -> str:
        return Path(self._config().data.name).stem

    def new_config(self, run_dir: Path) -> RunConfig:
        return self._config()

    def resume_config(self, base: RunConfig) -> RunConfig:
        if set(self.over) - {"train", "data"} or set(self.over.get("data", {})) - {"root"}:
            raise VQVAEError("when resuming only train.* settings and --data-root can change")
        return build(merge(base.to_dict(), self.over))

    def data(self, cfg: RunConfig, run_dir: Path):
        task = registry.task_for(cfg.arch)
        return task.load_split(cfg, "train", progress=self.args.progress), task.load_split(cfg, "test", progress=self.args.progress)
