"""Image datasets found by name under a data root, held in memory as uint8 tensors.

A dataset is named by one of

* a known set: ``mnist``, ``fashion-mnist`` (alias ``fmnist``) as the original
  IDX ``.gz`` files, ``cifar10`` as the python pickles (``cifar-10-batches-py``),
  the binary records (``cifar-10-batches-bin``) or lossless PNG grids
  (``cifar-10-png``), else the partial record files of ``cifar-10-subset``
  (``data_batch_1.first1017.bin`` ...); ``cifar10-subset`` names that subset
  alone (5085 train / 1017 test: fast experiments);
* a folder of images (PNG/JPEG, searched recursively), given as a path or as a
  folder name under a data root; ``train/`` and ``test/`` subfolders give the
  split, otherwise a fixed hash of each file's relative path puts 10 % in test;
  class subfolders give labels;
* a ``.npy`` array of uint8 images ``(N, H, W)``, ``(N, H, W, C)`` or
  ``(N, C, H, W)`` (a ``{split}`` in the name picks one file per split,
  otherwise a fixed 90/10 split by index; ``<stem>.labels.npy`` beside it gives labels).

Data roots are searched in order: ``root`` (the ``--data-root`` flag) if given,
else ``$VQVAE_DATA``, ``./data``, ``../shared/data``, the repository's
``../shared/data`` and ``~/.cache/vqvae/data``. With ``download=True`` a known
set missing everywhere is fetched from its official URL into the first root and
checked against its published MD5.

Small sets stay in memory as ``uint8`` ``(N, C, H, W)`` tensors so that training
on two cores is never input-bound.
"""

from __future__ import annotations

import functools
import gzip
import os
import struct
import sys
import threading
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from vqvae.core.errors import DataError
from vqvae.core.files import atomic_write_with
from vqvae.data.download import download as fetch
from vqvae.data.cifar import CLASSES as CIFAR_CLASSES
from vqvae.data.cifar import cifar_classes, cifar_files, read_cifar
from vqvae.data.roots import DATA_ENV, DATASET_NAMES, SPLITS, data_roots, in_test, signature
from vqvae.data.sets import ImageSet

IMAGE_EXTS = {".png", ".jpg", ".jpeg"}

_IDX_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
              "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
_FMNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
_ALIASES = {"fmnist": "fashion-mnist", "fashion_mnist": "fashion-mnist", "cifar-10": "cifar10", "cifar": "cifar10",
            "cifar-10-subset": "cifar10-subset"}
# Folder names a known set may have under a root, in order of preference.
_DIRS = {"mnist": ["mnist", "MNIST/raw", "MNIST"], "fashion-mnist": ["fashion-mnist", "FashionMNIST/raw", "fashion_mnist"],
         "cifar10": ["cifar10", "cifar-10-batches-py", "cifar-10-batches-bin", "cifar10/cifar-10-batches-py", "cifar-10-png",
                     "cifar-10-subset"],
         "cifar10-subset": ["cifar-10-subset"]}


def known_datasets() -> list[str]:
    return sorted(_DIRS)


def known_classes(name: str) -> list[str] | None:
    """The class names of a known image set, without reading its files (``None`` for any other name)."""
    key = _ALIASES.get(name.lower(), name.lower())
    return {"fashion-mnist": list(_FMNIST_CLASSES), "mnist": [str(i) for i in range(10)], "cifar10": list(CIFAR_CLASSES),
            "cifar10-subset": list(CIFAR_CLASSES)}.get(key)


def load_images(name: str, split: str = "train", root: str | None = None, image_size: int | None = None,
                channels: int | None = None, download: bool = False) -> ImageSet:
    """Load ``split`` of dataset ``name`` (see the module docstring), optionally resized to
    ``image_size`` (square) and converted to ``channels`` (1 or 3)."""
    if split not in SPLITS:
        raise DataError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if channels not in (None, 1, 3):
        raise DataError(f"channels must be 1 or 3, got {channels}")
    key = _ALIASES.get(name.lower(), name.lower())
    path = Path(name).expanduser()
    if key in _DIRS:
        folder = _find_known(key, root, download)
        images, labels, classes = _load_known(key, str(folder), split, signature(folder))
        label = key
    elif path.suffix.lower() in (".npy", ".npz") or "{split}" in name:
        images, labels = _load_npy(name, split)
        classes, label = None, path.name.replace("{split}", split)
    else:
        folder = path if path.is_dir() else next((r / name for r in data_roots(root) if (r / name).is_dir()), None)
        if folder is None:
            looked = ", ".join(str(r / name) for r in data_roots(root))
            raise DataError(f"unknown dataset {name!r}: not one of {', '.join(DATASET_NAMES)}, not a .npy file and no image folder "
                            f"at {name} or {looked}; set --data-root or ${DATA_ENV}")
        images, labels, classes = _load_folder(str(folder.resolve()), split, image_size or 0, channels or 0, signature(folder))
        label = folder.name
    x = torch.from_numpy(np.array(images))  # a copy: the cached arrays stay read-only
    if channels and x.shape[1] != channels:
        x = _convert_channels(x, channels)
    if image_size and tuple(x.shape[-2:]) != (image_size, image_size):
        x = resize(x, image_size)
    return ImageSet(x, None if labels is None else torch.from_numpy(labels.astype(np.int64)), classes, label)


def _find_known(key: str, root: str | None, download: bool) -> Path:
    roots = data_roots(root)
    for r in roots:
        for d in _DIRS[key]:
            if _looks_complete(key, r / d):
                return r / d
    if download and key != "cifar10-subset":  # the subset is a slice of the shared data, with no download of its own
        return fetch(key, roots[0])
    looked = ", ".join(str(r / _DIRS[key][0]) for r in roots)
    raise DataError(f"dataset {key!r} not found; looked in {looked}. Pass --data-root DIR (or set ${DATA_ENV}) to a folder "
                    f"holding {_DIRS[key][0]}/, or add --data.download=true to fetch it from the official site")


def _looks_complete(key: str, d: Path) -> bool:
    if not d.is_dir():
        return False
    if key in ("mnist", "fashion-mnist"):
        return all((d / f).is_file() for pair in _IDX_FILES.values() for f in pair)
    return bool(cifar_files(d, "train")) and bool(cifar_files(d, "test"))


@functools.lru_cache(maxsize=8)
def _load_known(key: str, folder: str, split: str, signature: tuple):
    d = Path(folder)
    if key in ("mnist", "fashion-mnist"):
        img_file, lab_file = _IDX_FILES[split]
        images = read_idx(d / img_file)
        labels = read_idx(d / lab_file)
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DataError(f"{d}: IDX images {images.shape} and labels {labels.shape} do not match")
        classes = _FMNIST_CLASSES if key == "fashion-mnist" else [str(i) for i in range(10)]
        return images[:, None], labels, classes
    parts = [read_cifar(p) for p in cifar_files(d, split)]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return images, labels, cifar_classes(d)


def read_idx(path: Path) -> np.ndarray:
    """Read a (gzipped) IDX file as written by LeCun et al., checking its header against its length."""
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path} is not a readable IDX file ({e}); delete it and download it again") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08 or raw[3] not in (1, 2, 3):
        raise DataError(f"{path}: not an IDX file of unsigned bytes (bad magic {raw[:4].hex()})")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise DataError(f"{path}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    need = 4 + 4 * ndim + int(np.prod(shape))
    if len(raw) != need:
        raise DataError(f"{path}: truncated or padded IDX file: header says {shape} ({need} bytes), file holds {len(raw)} bytes")
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(shape)


# -- folders and arrays -----------------------------------------------------
@functools.lru_cache(maxsize=4)
def _load_folder(folder: str, split: str, size: int, channels: int, signature: tuple):
    d = Path(folder)
    files = sorted(p for p in d.rglob("*") if p.suffix.lower() in IMAGE_EXTS and p.is_file())
    if not files:
        raise DataError(f"no PNG or JPEG images found under {d}")
    if (d / "train").is_dir() and (d / "test").is_dir():
        base = d / split
        files = [p for p in files if base in p.parents]
    else:
        base = d
        files = [p for p in files if in_test(str(p.relative_to(d))) == (split == "test")]
    if not files:
        raise DataError(f"{d}: no images in the {split} split")
    groups = [p.relative_to(base).parts[0] if len(p.relative_to(base).parts) > 1 else None for p in files]
    classes = sorted({g for g in groups if g is not None}) if all(g is not None for g in groups) else None
    imgs = [open_image(p) for p in files]
    if not channels:
        channels = 1 if all(im.mode in ("1", "L", "I", "I;16", "F") for im in imgs) else 3
    if not size:
        sizes = {im.size for im in imgs}
        if len(sizes) > 1:
            raise DataError(f"{d}: images have {len(sizes)} different sizes; set --data.image_size=N to resize and crop them")
    arr = np.stack([to_array(_fit(im, size) if size else im, channels) for im in imgs])
    labels = np.array([classes.index(g) for g in groups]) if classes else None
    return arr, labels, classes


def _fit(im: Image.Image, size: int) -> Image.Image:
    """Resize the shorter side to ``size`` then crop the centre square."""
    w, h = im.size
    s = size / min(w, h)
    im = im.resize((max(size, round(w * s)), max(size, round(h * s))), Image.BICUBIC)
    w, h = im.size
    left, top = (w - size) // 2, (h - size) // 2
    return im.crop((left, top, left + size, top + size))


MAX_PIXELS = 120_000_000  # the largest image a command reads unless told otherwise (--max-pixels): 120 megapixels
_BOMB_LOCK = threading.Lock()


def open_image(path: Path, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """A decoded image, or a one-line error: unreadable, or over ``max_pixels`` pixels (checked from the header,
    before anything is decoded). Pillow's own decompression-bomb limit gives way to ``max_pixels`` (set for the
    call only)."""
    try:
        with _BOMB_LOCK:  # Pillow's limit is a module global: lifted for this open only, under a lock
            limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
            try:
                im = Image.open(path)
            finally:
                Image.MAX_IMAGE_PIXELS = limit
        with im:
            w, h = im.size
            if w * h > max_pixels:
                raise DataError(f"{path}: {w} x {h} = {w * h:,} pixels, over the limit of {max_pixels:,} "
                                f"(a possible decompression bomb; --max-pixels N raises the limit)")
            im.load()
            return im
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(f"{path}: not a readable image ({e})") from None


def to_array(im: Image.Image, channels: int) -> np.ndarray:
    a = np.asarray(im.convert("L" if channels == 1 else "RGB"), np.uint8)
    return a[None] if channels == 1 else a.transpose(2, 0, 1)


def _load_npy(name: str, split: str) -> tuple[np.ndarray, np.ndarray | None]:
    path = Path(name.replace("{split}", split)).expanduser()
    if not path.is_file():
        raise DataError(f"array file {path} not found")
    try:
        arr = np.load(path, allow_pickle=False)
        if isinstance(arr, np.lib.npyio.NpzFile):
            keys = [k for k in (split, f"x_{split}") if k in arr.files]
            if not keys:
                raise DataError(f"{path}: expected an array named {split!r} or 'x_{split}', found {arr.files}")
            lab = next((arr[k] for k in (f"y_{split}", f"{split}_labels") if k in arr.files), None)
            arr, split_done = arr[keys[0]], True
        else:
            lab_path = path.with_name(path.stem + ".labels.npy")
            lab = np.load(lab_path, allow_pickle=False) if lab_path.is_file() else None
            split_done = "{split}" in name
    except (ValueError, OSError, EOFError) as e:
        raise DataError(f"{path}: not a readable .npy/.npz array ({e})") from None
    arr = _as_nchw(arr, path)
    if lab is not None and len(lab) != len(arr):
        raise DataError(f"{path}: {len(arr)} images but {len(lab)} labels")
    if not split_done:
        keep = np.array([in_test(str(i)) == (split == "test") for i in range(len(arr))], bool)
        arr, lab = arr[keep], None if lab is None else lab[keep]
    return np.ascontiguousarray(arr), lab


def _as_nchw(arr: np.ndarray, path: Path) -> np.ndarray:
    if arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.floating) and arr.size and 0 <= arr.min() and arr.max() <= 1:
            arr = np.round(arr * 255).astype(np.uint8)
        else:
            raise DataError(f"{path}: expected uint8 images (or floats in [0, 1]), got {arr.dtype}")
    if arr.ndim == 3:
        return arr[:, None]
    if arr.ndim == 4 and arr.shape[1] in (1, 3):
        return arr
    if arr.ndim == 4 and arr.shape[3] in (1, 3):
        return arr.transpose(0, 3, 1, 2)
    raise DataError(f"{path}: expected images shaped (N, H, W), (N, H, W, C) or (N, C, H, W) with C = 1 or 3, got {arr.shape}")


def _convert_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    if channels == 3:
        return x.expand(-1, 3, -1, -1).contiguous()
    w = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)  # ITU-R 601 luma, as PIL's "L"
    return (x.float() * w).sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)


def resize(x: torch.Tensor, size: int, chunk: int = 2048) -> torch.Tensor:
    """uint8 images ``(N, C, H, W)`` -> ``(N, C, size, size)``, antialiased bilinear, ``chunk`` images at a time (the
    float copy of a whole set would be four times its size)."""
    out = []
    for s in range(0, x.shape[0], chunk):
        y = torch.nn.functional.interpolate(x[s : s + chunk].float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out.append(y.round().clamp(0, 255).to(torch.uint8))
    return torch.cat(out) if out else x.new_zeros(0, x.shape[1], size, size)


# -- single files -----------------------------------------------------------
def read_image(path: str | os.PathLike, channels: int | None = None, max_pixels: int = MAX_PIXELS) -> torch.Tensor:
    """Read one image file as uint8 ``(C, H, W)`` (``channels`` 1 or 3 converts it; over ``max_pixels`` pixels, a
    one-line error)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"image file {p} not found")
    im = open_image(p, max_pixels)
    own = 1 if im.mode in ("1", "L", "LA", "I", "I;16", "F") else 3
    if channels and channels != own:  # said, not silent: a colour photo through a grey model loses its colour
        how = "grey (ITU-R 601 luma)" if channels == 1 else "RGB (its grey level in each channel)"
        print(f"note: {p} is {'grey' if own == 1 else 'colour'}; converted to {how} for this {channels}-channel model", file=sys.stderr)
    return torch.from_numpy(np.array(to_array(im, channels or own)))


def write_image(path: str | os.PathLike, image: torch.Tensor | np.ndarray) -> Path:
    """Write uint8 ``(C, H, W)`` (C = 1 or 3) as an image file (PNG unless the suffix names another format),
    atomically (:func:`vqvae.core.files.atomic_write_with`)."""
    a = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[0] not in (1, 3):
        raise ValueError(f"write_image expects uint8 (C, H, W) with C in (1, 3), got {a.dtype} {a.shape}")
    p = Path(path)
    fmt = Image.registered_extensions().get(p.suffix.lower(), "PNG")
    im = Image.fromarray(a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0))
    atomic_write_with(p, lambda f: im.save(f, format=fmt))  # never a half-written image, even if killed
    return p
