"""Files that readers never see half-written.

:func:`atomic_write` writes a temporary file in the same folder, fsyncs it and
renames it over the target, so a reader (or a crash at any moment) sees the old
file or the new one, never a torn one. Run directories, code caches, wav files
and codec outputs all go through it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so readers see the old or the new file, never a torn one."""
    atomic_write_with(path, lambda f: f.write(data))


def atomic_write_with(path: Path, write) -> None:
    """``write(f)`` into a binary file object that becomes ``path`` only once it is whole (for large outputs written
    straight to the file, not held in memory first as :func:`atomic_write`'s bytes)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # as an ordinary open() would have made it (mkstemp makes 0600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def remove_stale_temps(run_dir: str | Path) -> list[Path]:
    """Delete temp files a killed writer left behind (``atomic_write`` never got to rename them).

    A SIGKILL between ``mkstemp`` and ``os.replace`` leaves ``.NAME.XXXX.tmp``
    beside the last good file; it holds a torn write and is never read, so a
    resumed run removes it. Call it only from the one process that writes.
    """
    stale = [p for p in Path(run_dir).glob(".*.tmp") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale
