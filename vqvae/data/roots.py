"""Where datasets are found: the data roots, and what keys the in-memory caches.

Data roots are searched in order: ``root`` (the ``--data-root`` flag) if given,
else ``$VQVAE_DATA``, ``./data``, ``../shared/data``, the repository's
``../shared/data`` and ``~/.cache/vqvae/data``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

DATA_ENV = "VQVAE_DATA"
SPLITS = ("train", "test")
# Every dataset name the CLI takes (the README's Data table), for the errors that list them.
DATASET_NAMES = ("mnist", "fashion-mnist", "cifar10", "cifar10-subset", "scenes", "scenes:N", "fsdd", "coco-mini", "doom", "doom:N")
ROOTS_HELP = ("folder holding the datasets (default: the first of $VQVAE_DATA, ./data, ../shared/data, the repository's "
              "../shared/data and ~/.cache/vqvae/data that has it)")


def data_roots(root: str | os.PathLike | None = None) -> list[Path]:
    """Where datasets are looked for, in order (an explicit ``root`` is the only place)."""
    if root:
        return [Path(root).expanduser()]
    roots = [Path(os.environ[DATA_ENV]).expanduser()] if os.environ.get(DATA_ENV) else []
    roots += [Path("data"), Path("../shared/data"), Path(__file__).resolve().parents[3] / "shared" / "data", Path.home() / ".cache" / "vqvae" / "data"]
    seen, out = set(), []
    for r in roots:
        key = str(r.resolve())
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


def signature(d: Path) -> tuple:
    """Names, sizes and mtimes of a folder's files: the in-memory cache is keyed on it, so edits reload."""
    return tuple((str(p), s.st_size, s.st_mtime_ns) for p in sorted(d.rglob("*")) if p.is_file() and (s := p.stat()))


# -- known sets -------------------------------------------------------------
def in_test(rel: str) -> bool:
    """A fixed 10 % test split by hash of the file's relative path (stable as files are added)."""
    return int(hashlib.md5(rel.encode()).hexdigest()[:8], 16) % 10 == 0
