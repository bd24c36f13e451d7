"""The package's import graph, read with ``ast`` (nothing is imported): what tests/test_architecture.py checks.

``python -m tests.architecture`` prints the figures the restructure issue asks for: files and lines per package,
import cycles, function-level imports.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "vqvae"


@dataclass
class Module:
    name: str
    path: Path
    lines: int
    imports: set[str] = field(default_factory=set)  # vqvae modules imported when this module is imported
    deferred: dict[str, str] = field(default_factory=dict)  # module imported inside a function -> the function's name
    private: list[str] = field(default_factory=list)  # "other.module._name" used here
    functions: list[tuple[str, int]] = field(default_factory=list)  # (qualified name, lines)


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(name: str, modules: set[str]) -> str | None:
    """The vqvae module that ``name`` (a module or a name inside one) refers to."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _targets(node: ast.AST, here: str, is_pkg: bool, modules: set[str]) -> list[tuple[str, str | None]]:
    """(module, imported name or None) pairs of an import statement, for vqvae modules only."""
    out = []
    if isinstance(node, ast.Import):
        for a in node.names:
            m = _resolve(a.name, modules)
            if m:
                out.append((m, None))
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            pkg = here if is_pkg else here.rpartition(".")[0]
            for _ in range(node.level - 1):
                pkg = pkg.rpartition(".")[0]
            base = f"{pkg}.{base}".strip(".")
        for a in node.names:
            sub = f"{base}.{a.name}"
            if sub in modules:
                out.append((sub, None))
            elif (m := _resolve(base, modules)) is not None:
                out.append((m, a.name))
    return out


def scan() -> dict[str, Module]:
    paths = sorted(PKG.rglob("*.py"))
    names = {module_name(p) for p in paths}
    mods: dict[str, Module] = {}
    for p in paths:
        name = module_name(p)
        tree = ast.parse(p.read_text(), str(p))
        mod = Module(name, p, len(p.read_text().splitlines()))
        _walk(tree, mod, names, p.name == "__init__.py", [])
        mods[name] = mod
    return mods


def _walk(node: ast.AST, mod: Module, names: set[str], is_pkg: bool, scope: list[str]) -> None:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            for target, imported in _targets(child, mod.name, is_pkg, names):
                if imported and imported.startswith("_") and not imported.startswith("__") and target != mod.name:
                    mod.private.append(f"{target}.{imported}")
                in_function = any(s != "<class>" for s in scope)
                if in_function:
                    mod.deferred.setdefault(target, ".".join(s for s in scope if s != "<class>"))
                elif target != mod.name and not _type_checking(child):
                    mod.imports.add(target)
            continue
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
            qual = ".".join([s for s in scope if s != "<class>"] + [child.name])
            mod.functions.append((qual, child.end_lineno - child.lineno + 1))
            _walk(child, mod, names, is_pkg, scope + [child.name])
        elif isinstance(child, ast.ClassDef):
            _walk(child, mod, names, is_pkg, scope + ["<class>"])
        else:
            _walk(child, mod, names, is_pkg, scope)


def _type_checking(node: ast.AST) -> bool:
    return False


def cycles(mods: dict[str, Module]) -> list[list[str]]:
    """Strongly connected components of more than one module in the import-time graph (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(mods[v].imports):
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

    for v in sorted(mods):
        if v not in index:
            visit(v)
    return out


def package_of(name: str) -> str:
    """``vqvae.image.models`` -> ``image``; top-level modules -> their own name."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "vqvae"


def summary(mods: dict[str, Module]) -> dict:
    files: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for m in mods.values():
        key = package_of(m.name) if m.path.name == "__init__.py" or m.name.count(".") > 1 else "(top level)"
        files[key][0] += 1
        files[key][1] += m.lines
    return {"files_lines": dict(sorted(files.items())), "cycles": cycles(mods),
            "deferred_imports": sum(len(m.deferred) for m in mods.values()),
            "private_imports": sum(len(m.private) for m in mods.values())}


if __name__ == "__main__":
    import json

    print(json.dumps(summary(scan()), indent=1))
