"""The architecture's rules, checked on the source with ``ast`` (tests/architecture.py) and on the built parser.

ARCHITECTURE.md states them; each test names the rule it checks.
"""

from __future__ import annotations

import argparse
import importlib

import pytest

from tests.architecture import FAMILIES, LOWER, cycles, module_edges, package_edges, package_of, scan

# Function-level imports are allowed for these optional or slow-to-import dependencies only.
DEFERRED_ALLOWED = {
    "matplotlib": "pictures only; slow to import",
    "matplotlib.pyplot": "pictures only; slow to import",
    "torch.utils.tensorboard": "logging only; imports TensorBoard",
    "vqvae.quantize.nearest_triton": "imports Triton: only for CUDA tensors",
}
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 60
ARGPARSE_TABLES = ("register",)  # a commands module's register() is an argparse table
NAMESPACE_MODULES = ("commands", "handlers", "cli")  # only command handlers take an argparse Namespace


@pytest.fixture(scope="module")
def mods():
    return scan()


def test_the_import_graph_has_no_cycle(mods):
    assert cycles(module_edges(mods)) == []


def test_families_depend_on_each_other_one_way(mods):
    """A family may use another (text2image and codec use image tokenizers and priors), never both ways."""
    fam = {p: {q for q in qs if q in FAMILIES} for p, qs in package_edges(mods).items() if p in FAMILIES}
    assert cycles(fam) == []


def test_the_lower_layers_import_no_family(mods):
    """core/, quantize/, nets/ and data/ (and the registry, but for the index it resolves lazily) import no family."""
    bad = []
    for m in mods.values():
        pkg = package_of(m.name)
        if pkg in LOWER or m.name == "vqvae.registry":
            named = m.imports | set(m.deferred) | (set() if m.name == "vqvae.registry" else m.lazy)
            bad += [f"{m.name} -> {t}" for t in sorted(named) if package_of(t) in FAMILIES or t == "vqvae.cli"]
    assert bad == []


def test_nothing_but_the_entry_points_imports_the_cli(mods):
    assert [m.name for m in mods.values() if "vqvae.cli" in m.imports | set(m.deferred) and m.name != "vqvae.__main__"] == []


def test_no_module_imports_another_modules_private_name(mods):
    assert [f"{m.name}: {p}" for m in mods.values() for p in m.private] == []


def test_function_level_imports_only_for_the_allowed_heavy_dependencies(mods):
    found = {t: f"{m.name}.{f}" for m in mods.values() for t, f in {**m.deferred, **m.external_deferred}.items()}
    assert {t: where for t, where in found.items() if t not in DEFERRED_ALLOWED} == {}


def test_only_command_handlers_take_a_namespace(mods):
    bad = [f"{m.name}.{f.name}" for m in mods.values() for f in m.functions
           if f.takes_namespace and m.name.rsplit(".", 1)[-1] not in NAMESPACE_MODULES]
    assert bad == []


def test_files_and_functions_are_small(mods):
    big_files = [f"{m.name}: {m.lines}" for m in mods.values() if m.lines > MAX_FILE_LINES]
    long_functions = [f"{m.name}.{f.name}: {f.lines}" for m in mods.values() for f in m.functions
                      if f.lines > MAX_FUNCTION_LINES and not (m.name.endswith(".commands") and f.name in ARGPARSE_TABLES)]
    assert (big_files, long_functions) == ([], [])


def test_the_registry_index_names_what_each_family_registers():
    from vqvae import registry

    for arch, module in registry.INDEX.items():
        importlib.import_module(module)
        a = registry.get(arch)
        assert a.name == arch and a.model.__module__.split(".")[1] == module.split(".")[1] and a.model.config_cls is a.config_cls
    assert sorted(registry._ARCHS) == sorted(registry.INDEX)  # noqa: SLF001  (the registry's own table)


def _subcommand_parsers(p: argparse.ArgumentParser):
    for action in p._actions:  # noqa: SLF001  (argparse keeps its subparsers here)
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            for sub in action.choices.values():
                yield sub
                yield from _subcommand_parsers(sub)


def test_every_command_dispatches_to_a_handler_that_exists():
    """Each family registers its own subcommands; every handler named by a string imports and is callable."""
    from vqvae.cli import parser
    from vqvae.core.commands import RunCommand

    targets = []
    for sub in _subcommand_parsers(parser()):
        func = sub.get_default("func")
        if isinstance(func, RunCommand):
            targets += [fn.target for fn, _ in func.handlers.values()]
        elif func is not None:
            targets.append(func.target)
    assert len(targets) > 20
    for module, name in targets:
        assert callable(getattr(importlib.import_module(module), name)), (module, name)


def test_each_family_registers_its_own_subcommands_and_the_cli_knows_which():
    """cli.py holds no per-family branching: each part's register() adds its commands, and the table that lets a
    command be parsed by its family alone says exactly what each registers."""
    from vqvae import cli

    shared = {"eval", "reconstruct", "encode", "decode"}
    for part, module in cli.REGISTRARS.items():
        p = argparse.ArgumentParser()
        sub = p.add_subparsers()
        importlib.import_module(module).register(sub, cli.RunCommands(sub))
        owned = set(sub.choices) - shared
        assert owned == {c for c, owner in cli.COMMANDS.items() if owner == part}, part


def test_the_refiner_uses_the_codecs_public_methods_only():
    """The refiner reads no private field of the codec (or of anything but itself)."""
    import ast

    from tests.architecture import PKG

    tree = ast.parse((PKG / "codec" / "refine.py").read_text())
    private = [ast.unparse(n) for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr.startswith("_")
               and not n.attr.startswith("__") and not (isinstance(n.value, ast.Name) and n.value.id == "self")]
    assert private == []
