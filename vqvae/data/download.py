"""Official downloads of the known datasets, checked against their published MD5s."""

from __future__ import annotations

import hashlib
import os
import tarfile
import urllib.request
from pathlib import Path

from vqvae.core.errors import DataError

# Official locations and the MD5s their publishers list.
_MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
_FMNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
_MD5 = {
    "mnist": {"train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873", "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
              "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3", "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c"},
    "fashion-mnist": {"train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d", "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
                      "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79", "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310"},
}
_CIFAR_URL, _CIFAR_MD5 = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a"


def download(key: str, root: Path) -> Path:
    """Fetch a known set from its official URL into ``root``, checking MD5s."""
    root.mkdir(parents=True, exist_ok=True)
    if key in _MD5:
        d = root / key
        d.mkdir(exist_ok=True)
        base = _MNIST_URL if key == "mnist" else _FMNIST_URL
        for fname, md5 in _MD5[key].items():
            _fetch(base + fname, d / fname, md5)
        return d
    tar = root / "cifar-10-python.tar.gz"
    _fetch(_CIFAR_URL, tar, _CIFAR_MD5)
    with tarfile.open(tar) as t:
        t.extractall(root, filter="data")
    return root / "cifar-10-batches-py"


def _fetch(url: str, dest: Path, md5: str) -> None:
    if dest.is_file() and _md5(dest) == md5:
        return
    tmp = dest.with_name(dest.name + ".part")
    print(f"downloading {url} -> {dest}")
    try:
        with urllib.request.urlopen(url, timeout=60) as r, open(tmp, "wb") as f:
            while chunk := r.read(1 << 20):
                f.write(chunk)
    except OSError as e:
        raise DataError(f"could not download {url} ({e}); fetch it by hand into {dest.parent}") from None
    if _md5(tmp) != md5:
        tmp.unlink()
        raise DataError(f"{url}: MD5 mismatch (expected {md5}); the download is corrupt, try again")
    os.replace(tmp, dest)


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()
