"""The package's import graph, read with ``ast`` (nothing is imported): what tests/test_architecture.py checks.

For every module of ``vqvae/``: the vqvae modules it imports when it is imported (module level), those it imports
inside functions (deferred), the modules it names as strings to import later (lazy: ``handler("vqvae.x", "f")``,
the registry's index, a package's ``_LAZY`` table), the other modules' private names it imports, its functions
(length, whether they take an argparse Namespace) and its length.

``python -m tests.architecture`` prints the figures the restructure issue asked for: files and lines per package,
import cycles (module level, and with deferred imports), deferred imports.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "vqvae"
FAMILIES = ("image", "scoring", "priors", "audio", "text2image", "codec", "serve", "baselines")
LOWER = ("core", "quantize", "nets", "data")  # family-agnostic: import no family


@dataclass
class Function:
    name: str
    lines: int
    takes_namespace: bool


@dataclass
class Module:
    name: str
    path: Path
    lines: int
    imports: set[str] = field(default_factory=set)  # vqvae modules imported when this module is imported
    deferred: dict[str, str] = field(default_factory=dict)  # vqvae module imported inside a function -> that function
    external_deferred: dict[str, str] = field(default_factory=dict)  # other packages imported inside a function -> the function
    lazy: set[str] = field(default_factory=set)  # vqvae modules named as strings, imported on demand
    private: list[str] = field(default_factory=list)  # "other.module._name" imported here
    functions: list[Function] = field(default_factory=list)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(name: str, modules: set[str]) -> str | None:
    """The vqvae module that ``name`` (a module, or a name inside one) refers to."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _targets(node, here: str, is_pkg: bool, modules: set[str]) -> list[tuple[str | None, str, str | None]]:
    """(vqvae module or None, the module as written, the imported name or None) of an import statement."""
    if isinstance(node, ast.Import):
        return [(_resolve(a.name, modules), a.name, None) for a in node.names]
    base = node.module or ""
    if node.level:
        pkg = here if is_pkg else here.rpartition(".")[0]
        for _ in range(node.level - 1):
            pkg = pkg.rpartition(".")[0]
        base = f"{pkg}.{base}".strip(".")
    out = []
    for a in node.names:
        sub = f"{base}.{a.name}"
        out.append((sub, sub, None) if sub in modules else (_resolve(base, modules), base, a.name))
    return out


class _Visitor(ast.NodeVisitor):
    def __init__(self, mod: Module, modules: set[str], is_pkg: bool):
        self.mod, self.modules, self.is_pkg, self.scope = mod, modules, is_pkg, []

    def _import(self, node) -> None:
        func = self.scope[-1] if self.scope else None
        for target, written, name in _targets(node, self.mod.name, self.is_pkg, self.modules):
            if target is None:
                if func:
                    self.mod.external_deferred.setdefault(written, func)
                continue
            if name and name.startswith("_") and not name.startswith("__") and target != self.mod.name:
                self.mod.private.append(f"{target}.{name}")
            if target == self.mod.name:
                continue
            if func:
                self.mod.deferred.setdefault(target, func)
            else:
                self.mod.imports.add(target)

    visit_Import = visit_ImportFrom = _import

    def visit_FunctionDef(self, node) -> None:
        ann = [a.annotation for a in node.args.args + node.args.kwonlyargs if a.annotation is not None]
        takes = any("Namespace" in ast.unparse(a) for a in ann)
        self.mod.functions.append(Function(".".join(self.scope + [node.name]), node.end_lineno - node.lineno + 1, takes))
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Constant(self, node) -> None:
        """A string naming a vqvae module (a lazy handler, the registry's index, a lazy table) is a lazy edge."""
        if isinstance(node.value, str) and node.value.startswith("vqvae.") and node.value in self.modules:
            self.mod.lazy.add(node.value)


def scan() -> dict[str, Module]:
    paths = sorted(PKG.rglob("*.py"))
    names = {module_name(p) for p in paths}
    mods: dict[str, Module] = {}
    for p in paths:
        text = p.read_text()
        mod = Module(module_name(p), p, len(text.splitlines()))
        _Visitor(mod, names, p.name == "__init__.py").visit(ast.parse(text, str(p)))
        mods[mod.name] = mod
    return mods


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan), sorted."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return sorted(out)


def package_of(name: str) -> str:
    """``vqvae.image.tasks`` -> ``image``; a top-level module -> its own name (``cli``, ``registry``)."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "vqvae"


def module_edges(mods: dict[str, Module], deferred: bool = True) -> dict[str, set[str]]:
    return {m.name: m.imports | (set(m.deferred) if deferred else set()) for m in mods.values()}


def package_edges(mods: dict[str, Module]) -> dict[str, set[str]]:
    """Package -> the packages its modules import or name lazily (the families' dependency graph)."""
    out: dict[str, set[str]] = defaultdict(set)
    for m in mods.values():
        for t in m.imports | set(m.deferred) | m.lazy:
            if package_of(t) != package_of(m.name):
                out[package_of(m.name)].add(package_of(t))
    return dict(out)


def summary(mods: dict[str, Module]) -> dict:
    files: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for m in mods.values():
        key = package_of(m.name) if m.name.count(".") > 1 or m.path.name == "__init__.py" else "(top level)"
        files[key][0] += 1
        files[key][1] += m.lines
    return {"files_lines": dict(sorted(files.items())), "cycles_module_level": cycles(module_edges(mods, deferred=False)),
            "cycles_with_deferred_imports": cycles(module_edges(mods)), "package_cycles": cycles(package_edges(mods)),
            "deferred_imports": sorted(f"{m.name}.{f} -> {t}" for m in mods.values() for t, f in {**m.deferred, **m.external_deferred}.items())}


if __name__ == "__main__":
    import json

    print(json.dumps(summary(scan()), indent=1))
