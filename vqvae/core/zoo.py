"""The model zoo: trained models that ship inside the package, so the commands work right after install.

``zoo:NAME`` is accepted wherever a run directory is (the CLI resolves it before a handler runs; Python's
:func:`vqvae.load` and :func:`vqvae.core.checkpoint.load_run` resolve it too). ``zoo:NAME`` names the model's main
run (a prior, a speech model, a text-to-image transformer), ``zoo:NAME/PART`` one of its other runs
(``zoo:fashion-mnist/tokenizer``, ``zoo:fashion-mnist/classifier``).

A model is one folder ``vqvae/zoo/NAME/``:

* ``zoo.json``: its summary, data, main part, parts (part -> run folder), headline figures, optional ``sampling``
  (the settings its card measured, which ``vqvae generate`` uses unless told otherwise), and the SHA-256 of every
  file it ships;
* ``MODEL_CARD.md``: data, exact commands, training time and figures (documentation: not hashed, so it can be
  corrected without touching the weights);
* one run directory per part (``config.json`` and ``model.safetensors``, as any run; a prior's recorded tokenizer
  path is relative, ``../tokenizer``).

Every file is checked against its SHA-256 the first time a process resolves the model, and a file the manifest
does not list is refused: a corrupt, truncated or foreign file is a one-line error, never a silently wrong model.
Weights may be stored in fp16 (the manifest's ``fp16`` parts) where the card's figures stay the same; loading
casts them back to the model's fp32.

:func:`vqvae.core.zoo_build.export` builds such a folder from run directories (``vqvae zoo export``), which is how
the shipped models were made (their cards give the commands).
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

from vqvae.core.errors import VQVAEError

ZOO = Path(__file__).resolve().parents[1] / "zoo"
PREFIX = "zoo:"
MANIFEST = "zoo.json"
CARD = "MODEL_CARD.md"
RUN_FILES = ("config.json", "model.safetensors")  # what a shipped part holds (no training state, logs or pictures)


class ZooError(VQVAEError):
    """A zoo model that is unknown, incomplete, corrupt or not the shipped one."""


def is_zoo(spec) -> bool:
    return isinstance(spec, str) and spec.startswith(PREFIX)


def names(root: Path = ZOO) -> list[str]:
    """The shipped models, by name."""
    return sorted(q.parent.name for q in root.glob(f"*/{MANIFEST}"))


def manifest(name: str, root: Path = ZOO) -> dict:
    """A model's ``zoo.json`` (a one-line error naming the shipped models if there is no such model)."""
    path = root / name / MANIFEST
    if not path.is_file():
        known = ", ".join(names(root)) or "none"
        raise ZooError(f"no zoo model {name!r}; the zoo has: {known} (vqvae zoo lists them)")
    try:
        m = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ZooError(f"{path} is corrupt ({e}); reinstall vqvae") from None
    if not isinstance(m, dict) or not {"main", "parts", "files"} <= set(m):
        raise ZooError(f"{path} is not a zoo manifest (expected main, parts and files); reinstall vqvae")
    return m


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _signature(folder: Path) -> tuple:
    return tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*")) if p.is_file())


@functools.lru_cache(maxsize=32)
def _verified(folder: str, signature: tuple) -> None:
    """Check every file of a model folder against its manifest (cached per process while the files are unchanged)."""
    d = Path(folder)
    m = manifest(d.name, d.parent)
    files = m["files"]
    for rel, want in files.items():
        p = d / rel
        if not p.is_file():
            raise ZooError(f"zoo model {d.name}: {rel} is missing; reinstall vqvae")
        got = sha256(p)
        if got != want:
            raise ZooError(f"zoo model {d.name}: {rel} is corrupt or not the shipped file (SHA-256 {got[:12]}..., "
                           f"expected {want[:12]}...); reinstall vqvae")
    shipped = {str(p.relative_to(d)) for p in d.rglob("*") if p.is_file() and p.suffix in (".safetensors", ".json")}
    foreign = sorted(shipped - set(files) - {MANIFEST})
    if foreign:
        raise ZooError(f"zoo model {d.name}: {foreign[0]} is not one of its shipped files; remove it or reinstall vqvae")


def resolve(spec, root: Path = ZOO) -> Path:
    """The run directory ``spec`` names: ``zoo:NAME[/PART]`` checked and resolved, anything else as a path."""
    if not is_zoo(spec):
        return Path(spec)
    name, _, part = spec[len(PREFIX):].partition("/")
    m = manifest(name, root)
    part = part or m["main"]
    if part not in m["parts"]:
        raise ZooError(f"zoo model {name} has no part {part!r}; its parts: {', '.join(m['parts'])}")
    folder = root / name
    _verified(str(folder), _signature(folder))
    return folder / m["parts"][part]


CACHE = Path.home() / ".cache" / "vqvae" / "zoo"


def cache_dir(run_dir: str | Path, root: Path = ZOO) -> Path:
    """Where a run keeps what it derives from its data (a tokenizer's code caches): the run itself, or for a shipped
    run a folder under ``~/.cache/vqvae/zoo`` (the package stays as installed, and its checks keep passing)."""
    run_dir = Path(run_dir).resolve()
    try:
        return CACHE / run_dir.relative_to(root.resolve())
    except ValueError:
        return run_dir


def owner(run_dir: str | Path, root: Path = ZOO) -> tuple[str, dict] | None:
    """``(name, manifest)`` of the zoo model a run directory belongs to (as resolved from ``zoo:NAME[/PART]``), else
    None: how a command finds a shipped model's recommended settings (its manifest's ``sampling``)."""
    try:
        rel = Path(run_dir).resolve().relative_to(root.resolve())
    except ValueError:
        return None
    return (rel.parts[0], manifest(rel.parts[0], root)) if rel.parts else None


def size_bytes(name: str, root: Path = ZOO) -> int:
    return sum((root / name / rel).stat().st_size for rel in manifest(name, root)["files"])


def listing(root: Path = ZOO) -> list[dict]:
    """One row per shipped model: name, size, data, what it is and its headline figures."""
    rows = []
    for n in names(root):
        m = manifest(n, root)
        rows.append({"name": n, "size_mb": round(size_bytes(n, root) / 1e6, 2), "data": m.get("data", ""),
                     "summary": m.get("summary", ""), "headline": m.get("headline", {}), "use": m.get("use", [])})
    return rows
