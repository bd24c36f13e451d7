"""Datasets: every format against files written here byte by byte, and the real sets when present."""

from __future__ import annotations

import gzip
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vqvae.data.roots import DATA_ENV, data_roots
from vqvae.data.images import load_images, read_idx, read_image, write_image
from vqvae.core.errors import DataError

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


def _idx(path: Path, arr: np.ndarray) -> None:
    head = bytes([0, 0, 8, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(head + arr.astype(np.uint8).tobytes())


def _fake_mnist(root: Path, name: str = "mnist", n: int = (7, 3)) -> tuple[np.ndarray, np.ndarray]:
    d = root / name
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    out = {}
    for (split, count), (imgs, labs) in zip(zip(("train", "t10k"), n), [(0, 0), (0, 0)]):
        x = rng.integers(0, 256, (count, 28, 28), dtype=np.uint8)
        y = rng.integers(0, 10, count, dtype=np.uint8)
        _idx(d / f"{split}-images-idx3-ubyte.gz", x)
        _idx(d / f"{split}-labels-idx1-ubyte.gz", y)
        out[split] = (x, y)
    return out


def test_idx_round_trip_and_labels(tmp_path):
    ref = _fake_mnist(tmp_path)
    for split, key in (("train", "train"), ("test", "t10k")):
        ds = load_images("mnist", split, root=str(tmp_path))
        assert ds.images.dtype == torch.uint8 and ds.images.shape == (len(ref[key][0]), 1, 28, 28)
        np.testing.assert_array_equal(ds.images[:, 0].numpy(), ref[key][0])
        np.testing.assert_array_equal(ds.labels.numpy(), ref[key][1])
        assert ds.name == "mnist" and ds.channels == 1 and ds.image_size == (28, 28)


def test_fmnist_alias_and_env_root(tmp_path, monkeypatch):
    _fake_mnist(tmp_path, "fashion-mnist")
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    assert data_roots()[0] == tmp_path
    ds = load_images("fmnist", "test")
    assert ds.name == "fashion-mnist" and ds.classes[0] == "T-shirt/top" and len(ds) == 3


def test_truncated_idx_is_a_clear_error(tmp_path):
    _fake_mnist(tmp_path)
    p = tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz"
    raw = gzip.decompress(p.read_bytes())
    p.write_bytes(gzip.compress(raw[:-100]))
    with pytest.raises(DataError, match="truncated"):
        read_idx(p)
    p.write_bytes(p.read_bytes()[:50])  # a cut gzip stream
    with pytest.raises(DataError, match="not a readable IDX"):
        load_images("mnist", "test", root=str(tmp_path))
    p.write_bytes(gzip.compress(b"\x01\x02\x03\x04" + raw[4:]))
    with pytest.raises(DataError, match="magic"):
        read_idx(p)


def test_missing_set_names_where_it_looked(tmp_path):
    with pytest.raises(DataError) as e:
        load_images("cifar10", "train", root=str(tmp_path / "nowhere"))
    msg = str(e.value)
    assert str(tmp_path / "nowhere") in msg and "--data-root" in msg and "download" in msg
    with pytest.raises(DataError, match="unknown dataset"):
        load_images("no-such-set", "train", root=str(tmp_path))
    with pytest.raises(DataError, match="split"):
        load_images("mnist", "val", root=str(tmp_path))


def _cifar_records(n: int, seed: int) -> tuple[bytes, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    y = rng.integers(0, 10, n, dtype=np.uint8)
    raw = b"".join(bytes([y[i]]) + x[i].tobytes() for i in range(n))
    return raw, x, y


def test_cifar_binary_partial_files(tmp_path):
    d = tmp_path / "cifar-10-subset"
    d.mkdir()
    xs, ys = [], []
    for b in range(1, 3):
        raw, x, y = _cifar_records(4, b)
        (d / f"data_batch_{b}.first4.bin").write_bytes(raw)
        xs.append(x), ys.append(y)
    raw, xt, yt = _cifar_records(3, 9)
    (d / "test_batch.first3.bin").write_bytes(raw)
    tr = load_images("cifar10", "train", root=str(tmp_path))
    np.testing.assert_array_equal(tr.images.numpy(), np.concatenate(xs))
    np.testing.assert_array_equal(tr.labels.numpy(), np.concatenate(ys))
    te = load_images("cifar-10", "test", root=str(tmp_path))
    np.testing.assert_array_equal(te.images.numpy(), xt)
    assert te.classes[0] == "airplane"
    (d / "test_batch.first3.bin").write_bytes(raw[:-7])
    with pytest.raises(DataError, match="3073-byte records"):
        load_images("cifar10", "test", root=str(tmp_path))


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_cifar_python_pickles_and_refuses_code(tmp_path):
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (5, 3072), dtype=np.uint8)
    y = [1, 2, 3, 4, 5]
    for name in ("data_batch_1", "test_batch"):
        (d / name).write_bytes(pickle.dumps({b"data": x, b"labels": y, b"batch_label": b"x"}, protocol=2))
    (d / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"a", b"b"]}, protocol=2))
    ds = load_images("cifar10", "train", root=str(tmp_path))
    np.testing.assert_array_equal(ds.images.numpy().reshape(5, -1), x)
    assert ds.labels.tolist() == y and ds.classes == ["a", "b"]
    (d / "test_batch").write_bytes(pickle.dumps({b"data": _Evil(), b"labels": y}))
    with pytest.raises(DataError, match="refusing to load"):
        load_images("cifar10", "test", root=str(tmp_path))


def test_image_folder_classes_resize_and_bad_image(tmp_path):
    d = tmp_path / "pets"
    rng = np.random.default_rng(2)
    for split in ("train", "test"):
        for cls in ("cat", "dog"):
            (d / split / cls).mkdir(parents=True)
            for i in range(2):
                Image.fromarray(rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)).save(d / split / cls / f"{i}.png")
    ds = load_images("pets", "train", root=str(tmp_path), image_size=16)
    assert ds.images.shape == (4, 3, 16, 16) and ds.classes == ["cat", "dog"] and ds.labels.tolist() == [0, 0, 1, 1]
    grey = load_images(str(d), "test", image_size=8, channels=1)
    assert grey.images.shape == (4, 1, 8, 8)
    (d / "train" / "cat" / "bad.jpg").write_bytes(b"not a jpeg at all")
    with pytest.raises(DataError, match="bad.jpg"):
        load_images(str(d), "train", image_size=16)


def test_flat_folder_hash_split_is_disjoint_and_stable(tmp_path):
    d = tmp_path / "flat"
    d.mkdir()
    for i in range(60):
        Image.fromarray(np.full((8, 8), i, np.uint8)).save(d / f"{i:03d}.png")
    tr, te = load_images(str(d), "train"), load_images(str(d), "test")
    assert len(tr) + len(te) == 60 and 0 < len(te) < 20 and tr.channels == 1
    vals = set(tr.images[:, 0, 0, 0].tolist()) | set(te.images[:, 0, 0, 0].tolist())
    assert vals == set(range(60)) and tr.labels is None


def test_npy_layouts_labels_and_split(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (50, 12, 12, 3), dtype=np.uint8)
    np.save(tmp_path / "imgs.npy", x)
    np.save(tmp_path / "imgs.labels.npy", np.arange(50))
    tr, te = load_images(str(tmp_path / "imgs.npy"), "train"), load_images(str(tmp_path / "imgs.npy"), "test")
    assert tr.images.shape[1:] == (3, 12, 12) and len(tr) + len(te) == 50
    for ds in (tr, te):  # labels follow their images through the split
        np.testing.assert_array_equal(ds.images.numpy().transpose(0, 2, 3, 1), x[ds.labels.numpy()])
    for split in ("train", "test"):
        np.save(tmp_path / f"g_{split}.npy", rng.integers(0, 256, (4, 8, 8), dtype=np.uint8))
    assert load_images(str(tmp_path / "g_{split}.npy"), "test").images.shape == (4, 1, 8, 8)
    np.save(tmp_path / "bad.npy", np.zeros((3, 8, 8), np.int32))
    with pytest.raises(DataError, match="uint8"):
        load_images(str(tmp_path / "bad.npy"), "train")
    (tmp_path / "junk.npy").write_bytes(b"garbage")
    with pytest.raises(DataError, match="not a readable"):
        load_images(str(tmp_path / "junk.npy"), "train")


def test_read_write_image_round_trip(tmp_path):
    rng = np.random.default_rng(4)
    for c in (1, 3):
        x = torch.from_numpy(rng.integers(0, 256, (c, 9, 13), dtype=np.uint8))
        p = write_image(tmp_path / "sub" / f"x{c}.png", x)
        assert torch.equal(read_image(p), x)
    assert read_image(tmp_path / "sub" / "x3.png", channels=1).shape == (1, 9, 13)
    with pytest.raises(DataError, match="not found"):
        read_image(tmp_path / "missing.png")
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    with pytest.raises(DataError, match="not a readable image"):
        read_image(tmp_path / "corrupt.png")


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data not present")
def test_real_sets_match_their_published_first_labels():
    root = str(SHARED)
    assert load_images("mnist", "train", root=root).labels[:5].tolist() == [5, 0, 4, 1, 9]
    fm = load_images("fashion-mnist", "test", root=root)
    assert fm.images.shape == (10000, 1, 28, 28) and fm.labels[:3].tolist() == [9, 2, 1]
    c = load_images("cifar10", "train", root=root)
    assert c.images.shape[1:] == (3, 32, 32) and c.labels[:5].tolist() == [6, 9, 9, 4, 1] and c.classes[-1] == "truck"


def _png_grid(d, name: str, x: np.ndarray, y: np.ndarray) -> None:
    from PIL import Image

    rows = -(-len(x) // 100)
    grid = np.zeros((rows * 32, 3200, 3), np.uint8)
    for i, im in enumerate(x):  # image i at tile row i // 100, column i % 100 (the shared data's layout)
        grid[(i // 100) * 32 : (i // 100 + 1) * 32, (i % 100) * 32 : (i % 100 + 1) * 32] = im.transpose(1, 2, 0)
    Image.fromarray(grid).save(d / f"{name}.png")
    (d / f"{name}.labels").write_bytes(y.tobytes())


def test_cifar_png_grids_read_pixel_exact_and_win_over_the_subset(tmp_path):
    from vqvae.data.cifar import as_records

    d, sub = tmp_path / "cifar-10-png", tmp_path / "cifar-10-subset"
    d.mkdir(), sub.mkdir()
    raw, x, y = _cifar_records(103, 1)  # a partial second row of tiles
    _png_grid(d, "data_batch_1", x, y)
    _, xt, yt = _cifar_records(5, 2)
    _png_grid(d, "test_batch", xt, yt)
    (sub / "data_batch_1.first4.bin").write_bytes(raw[: 4 * 3073])
    (sub / "test_batch.first4.bin").write_bytes(raw[: 4 * 3073])
    tr = load_images("cifar10", "train", root=str(tmp_path))  # the full set wins over the subset
    np.testing.assert_array_equal(tr.images.numpy(), x)
    np.testing.assert_array_equal(tr.labels.numpy(), y)
    assert as_records(tr.images.numpy(), tr.labels.numpy()) == raw  # the official records, byte for byte
    np.testing.assert_array_equal(load_images("cifar10", "test", root=str(tmp_path)).images.numpy(), xt)
    assert len(load_images("cifar10-subset", "train", root=str(tmp_path))) == 4
    (d / "test_batch.labels").write_bytes(bytes([3, 12, 0, 0, 0]))
    with pytest.raises(DataError, match="labels must be 0-9"):
        load_images("cifar10", "test", root=str(tmp_path))


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED / "cifar-10-png").is_dir(), reason="../shared/data/cifar-10-png not present")
def test_the_full_cifar10_rebuilds_the_official_records():
    """The first batch and the test batch, rebuilt as official binary records, have the MD5s in the data's README;
    ``cifar10`` finds the full set (50 000 / 10 000) and ``cifar10-subset`` the subset."""
    import hashlib
    import re

    from vqvae.data.cifar import as_records, read_cifar

    md5 = dict(re.findall(r"\| (data_batch_\d|test_batch) \| ([0-9a-f]{32}) \|", (SHARED / "README.md").read_text()))
    for name in ("data_batch_1", "test_batch"):
        x, y = read_cifar(SHARED / "cifar-10-png" / f"{name}.png")
        assert hashlib.md5(as_records(x, y)).hexdigest() == md5[name], name
    assert len(load_images("cifar10", "test", root=str(SHARED))) == 10000
    assert len(load_images("cifar10-subset", "test", root=str(SHARED))) == 1017


def test_images_over_the_pixel_limit_are_refused_from_their_header(tmp_path, monkeypatch):
    """A PNG of 15 000 x 15 000 is 27 kB and 225 megapixels (Pillow's own check was a 26-line traceback): refused in
    one line from its header, before anything is decoded; --max-pixels raises the limit, past Pillow's too."""
    from PIL import Image

    from vqvae.data import images
    from vqvae.data.images import read_image

    Image.new("L", (300, 300)).save(tmp_path / "big.png")
    decoded = []
    monkeypatch.setattr(Image.Image, "load", lambda self: decoded.append(1))
    with pytest.raises(DataError, match=r"big.png: 300 x 300 = 90,000 pixels, over the limit of 20,000 .*--max-pixels N raises"):
        read_image(tmp_path / "big.png", max_pixels=20_000)
    assert decoded == []  # the header only
    monkeypatch.undo()
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 20_000)  # Pillow's limit, far below: a DecompressionBombError in Pillow
    assert read_image(tmp_path / "big.png", max_pixels=100_000).shape == (1, 300, 300)
    assert Image.MAX_IMAGE_PIXELS == 20_000  # lifted for that call only
    assert images.MAX_PIXELS >= 100_000_000  # the documented default reads a 100-megapixel image


def test_written_images_appear_whole_or_not_at_all(tmp_path, monkeypatch):
    from PIL import Image as PILImage

    from vqvae.data.images import write_image

    x = torch.randint(0, 256, (3, 20, 30), dtype=torch.uint8)
    write_image(tmp_path / "a.png", x)
    write_image(tmp_path / "b.jpg", x)
    assert PILImage.open(tmp_path / "a.png").format == "PNG" and PILImage.open(tmp_path / "b.jpg").format == "JPEG"
    assert torch.equal(read_image(tmp_path / "a.png"), x)

    def broken(self, fp, format=None, **kw):  # killed half way through encoding
        fp.write(b"\x89PNG half")
        raise KeyboardInterrupt

    monkeypatch.setattr(PILImage.Image, "save", broken)
    with pytest.raises(KeyboardInterrupt):
        write_image(tmp_path / "a.png", torch.zeros(3, 4, 4, dtype=torch.uint8))
    monkeypatch.undo()
    assert torch.equal(read_image(tmp_path / "a.png"), x) and sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.jpg"]
