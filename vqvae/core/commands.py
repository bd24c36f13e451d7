"""What the command layer shares: lazy handlers, the train-like commands' arguments, and the commands on a run
directory whose work depends on the run's model (``eval``, ``reconstruct``, ``encode``, ``decode``).

Each family's ``commands.py`` adds its subcommands with argparse alone and names
each handler by module and function (:func:`handler`); the handler's module is
imported when its command runs, so ``vqvae --help`` imports no model code and
``vqvae compress`` only the codec's path. Handlers are the only functions that
take an argparse Namespace.

A :class:`RunCommand` is one subcommand over a run directory. Families register
a handler for their archs and the options those archs read
(:meth:`RunCommand.option`); the command reads the run's arch from its
``config.json`` and refuses, with one line naming the runs it applies to, an
option that this run would not use. No flag is accepted and silently ignored.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from dataclasses import dataclass

from vqvae.core.config import read_run_config
from vqvae.core.errors import VQVAEError
from vqvae.data.roots import ROOTS_HELP


def handler(module: str, name: str) -> Callable[[argparse.Namespace], object]:
    """A command handler imported from ``module`` when the command runs."""

    def run(args: argparse.Namespace):
        return getattr(importlib.import_module(module), name)(args)

    run.target = (module, name)  # for the architecture test
    return run


def add_run_options(p: argparse.ArgumentParser) -> None:
    """The options every train-like command takes (what :class:`vqvae.core.runs.RunArgs` holds)."""
    p.add_argument("--data-root", help=ROOTS_HELP)
    p.add_argument("--config", help="YAML config or preset name (default: the dataset's or the model's preset)")
    p.add_argument("--out", help="run directory (default: runs/<name>-<time>)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--steps", type=int, help="training steps")
    g.add_argument("--minutes", type=float, help="wall-clock budget in minutes")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(takes_overrides=True)


def train_command(sub, name: str, help_: str, train_help: str, epilog: str | None = None) -> argparse.ArgumentParser:
    """``vqvae NAME train``: the command, its one subcommand, and that subcommand's parser (with the run options)."""
    cmd = sub.add_parser(name, help=help_).add_subparsers(dest=f"{name}_command", required=True)
    p = cmd.add_parser("train", help=train_help, epilog=epilog)
    add_run_options(p)
    return p


@dataclass
class _Option:
    flags: tuple[str, ...]
    archs: tuple[str, ...]
    default: object


class RunCommand:
    """A subcommand on a run directory (``RUN`` first), dispatched on the run's arch."""

    def __init__(self, sub, name: str, help_: str):
        self.name = name
        self.parser = sub.add_parser(name, help=help_)
        self.parser.add_argument("run", help="the run directory")
        self.parser.set_defaults(func=self)
        self.handlers: dict[str, tuple[Callable, str]] = {}
        self.options: dict[str, _Option] = {}

    def handle(self, archs: tuple[str, ...], fn: Callable, runs: str) -> None:
        """``fn`` handles runs of ``archs``; ``runs`` names them in words (for the errors)."""
        for a in archs:
            self.handlers[a] = (fn, runs)

    def common(self, *flags: str, **kw) -> None:
        """An option every run of this command reads."""
        self.parser.add_argument(*flags, **kw)

    def option(self, archs: tuple[str, ...], *flags: str, default=None, **kw) -> None:
        """An option that only runs of ``archs`` read; given for another run, it is refused."""
        action = self.parser.add_argument(*flags, default=argparse.SUPPRESS, **kw)
        self.options[action.dest] = _Option(tuple(flags), tuple(archs), default)

    def also(self, archs: tuple[str, ...], *flags: str) -> None:
        """Runs of ``archs`` read a shared option (one the CLI defines for several families, with no runs of its own)."""
        known = next((o for o in self.options.values() if o.flags == tuple(flags)), None)
        if known is None:
            raise KeyError(f"{self.name} has no option {'/'.join(flags)}: define it in vqvae.cli.RunCommands")
        known.archs += tuple(archs)

    def __call__(self, args: argparse.Namespace):
        arch = str(read_run_config(args.run).get("arch", "vqvae"))
        if arch not in self.handlers:
            raise VQVAEError(f"vqvae {self.name} applies to {self._runs(tuple(self.handlers))} runs; {args.run} is a {arch} run")
        fn, _ = self.handlers[arch]
        args.given = {dest for dest in self.options if dest in vars(args)}  # for options that only matter with another one
        for dest, opt in self.options.items():
            if dest in vars(args) and arch not in opt.archs:
                raise VQVAEError(f"{'/'.join(opt.flags)} applies to {self._runs(opt.archs)} runs; {args.run} is a {arch} run")
            if dest not in vars(args):
                setattr(args, dest, opt.default)
        return fn(args)

    def _runs(self, archs: tuple[str, ...]) -> str:
        names = []
        for a in archs:
            runs = self.handlers.get(a, (None, a))[1]
            if runs not in names:
                names.append(runs)
        return " and ".join(names)


def register(sub, shared=None) -> None:
    """The family-agnostic command: ``vqvae train`` (whatever model the preset or config names)."""
    t = sub.add_parser("train", help="train a model on a dataset (a tokenizer by default); extra --section.key=value flags override the config",
                       epilog="Overrides: --train.lr=3e-4 --model.codebook_size=1024 --data.image_size=64 ...")
    t.add_argument("--data", help="dataset name (mnist, fashion-mnist, cifar10, scenes[:N], doom[:N], fsdd), a folder of images or wavs, or a .npy file")
    t.add_argument("--tokenizer", help="a tokenizer's run directory, for a model trained on its codes (--config doom-stage2)")
    add_run_options(t)
    t.set_defaults(func=handler("vqvae.core.handlers", "train"))

    z = sub.add_parser("zoo", help="the trained models that ship with vqvae (zoo:NAME works wherever a run directory does)")
    z.add_argument("--json", action="store_true", help="print JSON")
    z.set_defaults(func=handler("vqvae.core.handlers", "zoo_list"))
    zs = z.add_subparsers(dest="zoo_command")
    ze = zs.add_parser("export", help="(maintainers) make a zoo model from run directories, with each file's SHA-256")
    ze.add_argument("name")
    ze.add_argument("parts", nargs="+", metavar="PART=RUN", help="its runs by part name, e.g. prior=runs/p tokenizer=runs/t")
    ze.add_argument("--main", required=True, help="the part zoo:NAME names")
    ze.add_argument("--summary", required=True, help="what it is, in a line")
    ze.add_argument("--data", required=True, help="what it was trained on")
    ze.add_argument("--card", required=True, help="its MODEL_CARD.md")
    ze.add_argument("--headline", default="{}", help="its headline figures, as a JSON object")
    ze.add_argument("--use", action="append", default=[], help="an example command (repeatable)")
    ze.add_argument("--fp16", default="", help="parts stored in half precision (comma-separated)")
    ze.add_argument("--sampling", default="{}", help='generation settings its card measured, as a JSON object '
                    '(vqvae generate\'s defaults for it), e.g. \'{"guidance": 3, "temperature": 0.8, "candidates": 4, "clip": "clip"}\'')
    ze.set_defaults(func=handler("vqvae.core.handlers", "zoo_export"))
