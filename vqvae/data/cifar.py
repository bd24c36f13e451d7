"""CIFAR-10's official formats: the python pickles (``cifar-10-batches-py``) and the binary records
(``cifar-10-batches-bin``, or partial files such as ``data_batch_1.first1017.bin``), and lossless PNG grids
(``cifar-10-png``: ``data_batch_1.png`` ... with ``data_batch_1.labels``; see :func:`read_png_grid`).

The pickles are read by an unpickler that admits numpy arrays, lists, strings and numbers only: never code.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from vqvae.core.errors import DataError

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def cifar_files(d: Path, split: str) -> list[Path]:
    """A folder's batches of ``split`` in one format: python pickles, else binary records, else PNG grids."""
    stem = "data_batch_" if split == "train" else "test_batch"
    py = sorted(p for p in d.glob(stem + "*") if p.suffix == "" and p.is_file())
    return (py or sorted(p for p in d.glob(stem + "*.bin") if p.is_file())
            or sorted(p for p in d.glob(stem + "*.png") if p.is_file() and p.with_suffix(".labels").is_file()))


TILE, GRID = 32, 100  # a PNG grid: 100 x 100 tiles of 32 x 32


def read_png_grid(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A batch stored as one lossless RGB PNG of ``100 x 100`` tiles of ``32 x 32`` (image i, in the official record
    order, is tile row ``i // 100``, column ``i % 100``; a last row may be partial) with its labels as raw bytes in
    ``NAME.labels``: ``(N, 3, 32, 32)`` uint8 images and ``(N,)`` labels, pixel-exact."""
    labels = np.frombuffer(path.with_suffix(".labels").read_bytes(), np.uint8)
    try:
        with Image.open(path) as im:
            if im.mode != "RGB":
                raise DataError(f"{path}: a CIFAR-10 PNG grid must be RGB, got mode {im.mode}")
            grid = np.asarray(im)
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(f"{path}: not a readable PNG ({e})") from None
    rows = -(-len(labels) // GRID)
    if len(labels) == 0 or grid.shape[1] != GRID * TILE or grid.shape[0] < rows * TILE:
        raise DataError(f"{path}: {grid.shape[1]}x{grid.shape[0]} pixels cannot hold {len(labels)} tiles of {TILE}x{TILE} "
                        f"in rows of {GRID} (expected {GRID * TILE} wide, at least {rows * TILE} high)")
    tiles = grid[: rows * TILE].reshape(rows, TILE, GRID, TILE, 3).transpose(0, 2, 4, 1, 3).reshape(rows * GRID, 3, TILE, TILE)
    return np.ascontiguousarray(tiles[: len(labels)]), labels


def as_records(images: np.ndarray, labels: np.ndarray) -> bytes:
    """The official binary records of a batch: per image its label byte, then its R, G and B planes (3073 bytes)."""
    return np.concatenate([labels[:, None], images.reshape(len(images), -1)], axis=1).astype(np.uint8).tobytes()


def read_cifar(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if path.suffix == ".png":
        images, labels = read_png_grid(path)
        if labels.max() > 9:
            raise DataError(f"{path.with_suffix('.labels')}: CIFAR-10 labels must be 0-9, found {labels.max()} (wrong or corrupt file)")
        return images, labels
    raw = path.read_bytes()
    if path.suffix == ".bin":  # records: 1 label byte + 3072 pixel bytes (R, G, B planes of 32x32)
        if len(raw) == 0 or len(raw) % 3073:
            raise DataError(f"{path}: truncated CIFAR-10 binary file: {len(raw)} bytes is not a whole number of 3073-byte records")
        rec = np.frombuffer(raw, np.uint8).reshape(-1, 3073)
        labels = rec[:, 0]
        images = rec[:, 1:].reshape(-1, 3, 32, 32)
    else:
        batch = _safe_unpickle(raw, path)
        try:
            data, labels = batch[b"data"], np.asarray(batch[b"labels"], np.uint8)
            images = np.asarray(data, np.uint8).reshape(-1, 3, 32, 32)
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(f"{path}: not a CIFAR-10 python batch ({e})") from None
        if len(images) != len(labels):
            raise DataError(f"{path}: {len(images)} images but {len(labels)} labels")
    if labels.size and labels.max() > 9:
        raise DataError(f"{path}: CIFAR-10 labels must be 0-9, found {labels.max()} (wrong or corrupt file)")
    return images, labels


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles only dicts, lists, strings, numbers and numpy arrays: never code."""

    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _safe_unpickle(raw: bytes, path: Path):
    try:
        return _CifarUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as e:  # any failure here means a corrupt or foreign file
        raise DataError(f"{path}: not a CIFAR-10 python batch ({type(e).__name__}: {e})") from None


def cifar_classes(d: Path) -> list[str]:
    for meta in (d / "batches.meta", d / "batches.meta.txt"):
        if meta.is_file():
            if meta.suffix == ".txt":
                return [s for s in meta.read_text().split() if s]
            names = _safe_unpickle(meta.read_bytes(), meta).get(b"label_names")
            if names:
                return [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    return list(CLASSES)
