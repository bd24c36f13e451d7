"""Inputs for the fuzz campaign (benchmarks/bench_fuzz.py): valid seeds of every format the CLI reads, and mutations
of them (bit flips, truncations, splices, header fields set to extremes, huge declared sizes), plus structure-aware
cases drawn with hypothesis (arrays of any dtype and shape, YAML values of any type, override strings)."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np


def pick(rng: np.random.Generator, values: list):
    """One of ``values`` as the Python object itself (``rng.choice`` would turn 2**64 - 1 into a rounded float)."""
    return values[int(rng.integers(0, len(values)))]


# -- seeds: one valid file of each format ------------------------------------------------------------------------
def png_seed(rng: np.random.Generator, mode: str = "L", side: int = 28) -> bytes:
    from PIL import Image

    a = rng.integers(0, 256, (side, side) if mode == "L" else (side, side, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def jpeg_seed(rng: np.random.Generator) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


def wav_seed(rng: np.random.Generator, n: int = 4000, rate: int = 8000) -> bytes:
    from scipy.io import wavfile

    buf = io.BytesIO()
    wavfile.write(buf, rate, (rng.standard_normal(n) * 3000).astype(np.int16))
    return buf.getvalue()


def npy_seed(rng: np.random.Generator, k: int = 512, shape=(2, 7, 7)) -> bytes:
    buf = io.BytesIO()
    np.save(buf, rng.integers(0, k, shape).astype(np.int16))
    return buf.getvalue()


# -- mutations ---------------------------------------------------------------------------------------------------
def flip_bits(data: bytes, rng: np.random.Generator) -> bytes:
    b = bytearray(data)
    for _ in range(int(rng.integers(1, 9))):
        i = int(rng.integers(0, len(b)))
        b[i] ^= 1 << int(rng.integers(0, 8))
    return bytes(b)


def truncate(data: bytes, rng: np.random.Generator) -> bytes:
    return data[: int(rng.integers(0, len(data)))]


def splice(data: bytes, rng: np.random.Generator) -> bytes:
    i, j = sorted(int(x) for x in rng.integers(0, len(data), 2))
    how = int(rng.integers(0, 3))
    if how == 0:  # a chunk repeated
        return data[:j] + data[i:j] + data[j:]
    if how == 1:  # random bytes inserted
        return data[:i] + rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8).tobytes() + data[i:]
    return data[:i] + data[j:]  # a chunk cut out


def png_extreme(data: bytes, rng: np.random.Generator) -> bytes:
    """IHDR width/height (and bit depth, colour type) set to extremes, the CRC fixed so the decoder reads them."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return data
    w = pick(rng, [0, 1, 65535, 2**31 - 1, 15000, 100000])
    h = pick(rng, [0, 1, 65535, 2**31 - 1, 15000, 100000])
    depth, ctype = pick(rng, [1, 8, 16, 3, 0]), pick(rng, [0, 2, 3, 4, 6, 7])
    body = b"IHDR" + struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 0)
    return data[:8] + struct.pack(">I", 13) + body + struct.pack(">I", zlib.crc32(body)) + data[33:]


def wav_extreme(data: bytes, rng: np.random.Generator) -> bytes:
    """The fmt chunk's channels, rate, bits and the data chunk's declared size set to extremes."""
    b = bytearray(data)
    i = data.find(b"fmt ")
    if i < 0:
        return data
    field = int(rng.integers(0, 5))
    if field == 0:
        struct.pack_into("<H", b, i + 10, pick(rng, [0, 1, 2, 255, 65535]))  # channels
    elif field == 1:
        struct.pack_into("<I", b, i + 12, pick(rng, [0, 1, 7, 44100, 2**31 - 1, 2**32 - 1]))  # rate
    elif field == 2:
        struct.pack_into("<H", b, i + 22, pick(rng, [0, 1, 7, 12, 24, 64, 65535]))  # bits per sample
    elif field == 3:
        struct.pack_into("<H", b, i + 8, pick(rng, [0, 2, 3, 6, 7, 0xFFFE, 65535]))  # format tag
    else:
        j = data.find(b"data")
        if j >= 0:
            struct.pack_into("<I", b, j + 4, pick(rng, [0, 1, 2**31 - 1, 2**32 - 1]))  # declared data size
    return bytes(b)


def npy_extreme(data: bytes, rng: np.random.Generator) -> bytes:
    """The header's shape or dtype rewritten: huge or negative dimensions, odd dtypes, object arrays."""
    shape = rng.choice(["(2**40,)", "(0, 7, 7)", "(1, 7, 7)", "(-1, 7, 7)", "(3, 70000, 70000)", "(2, 7)", "()", "(2, 1, 7, 7)"])
    dtype = rng.choice(["<i2", "<f4", "|O", "<U5", "<c16", "|b1", ">i8", "<V3"])
    head = f"{{'descr': '{dtype}', 'fortran_order': False, 'shape': {shape}, }}".encode()
    head += b" " * ((64 - (10 + len(head) + 1) % 64) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(head)) + head + data[128:]


MUTATIONS = {"flip": flip_bits, "truncate": truncate, "splice": splice}
EXTREME = {"png": png_extreme, "wav": wav_extreme, "npy": npy_extreme}


def mutate(data: bytes, kind: str, rng: np.random.Generator) -> tuple[str, bytes]:
    """One mutation of a seed, named: a generic byte-level one, or (a third of the time) the format's extreme header."""
    if kind in EXTREME and rng.random() < 1 / 3:
        return "extreme", EXTREME[kind](data, rng)
    name = str(rng.choice(list(MUTATIONS)))
    return name, MUTATIONS[name](data, rng)


# -- run directories, configs and overrides ----------------------------------------------------------------------
def mutate_config(text: str, rng: np.random.Generator) -> str:
    """A run's config.json with one value replaced by something of another type or an extreme, or a key removed or
    added, or the JSON itself broken."""
    cfg = json.loads(text)
    how = int(rng.integers(0, 4))
    if how == 0:
        return text[: int(rng.integers(0, len(text)))]
    sec = str(rng.choice([k for k, v in cfg.items() if isinstance(v, dict)] or ["model"]))
    part = cfg.setdefault(sec, {})
    weird = [None, -1, 0, 2**63, 1e308, float("nan"), "x", [], {}, True, "../../etc/passwd"]
    if how == 1 and part:
        part[str(rng.choice(list(part)))] = weird[int(rng.integers(0, len(weird)))]
    elif how == 2 and part:
        del part[str(rng.choice(list(part)))]
    else:
        part["unknown_" + str(int(rng.integers(0, 100)))] = 1
    if rng.random() < 0.2:
        cfg["arch"] = str(rng.choice(["nope", "", "pixelcnn", "vqvae", "stage2", "dalle"]))
    return json.dumps(cfg, allow_nan=True)


def mutate_safetensors(data: bytes, rng: np.random.Generator) -> bytes:
    """A safetensors file whose header length, header JSON or tensor bytes are damaged."""
    n = struct.unpack("<Q", data[:8])[0]
    how = int(rng.integers(0, 4))
    if how == 0:  # the declared header length
        return struct.pack("<Q", pick(rng, [0, 1, n - 1, n + 1, 2**40, 2**64 - 1])) + data[8:]
    if how == 1:  # the header JSON: a shape or offsets changed
        head = json.loads(data[8 : 8 + n])
        key = str(rng.choice([k for k in head if k != "__metadata__"]))
        field = str(rng.choice(["shape", "data_offsets", "dtype"]))
        head[key][field] = {"shape": [2**31, 2**31], "data_offsets": [0, 2**40], "dtype": "F64"}[field]
        h = json.dumps(head).encode()
        return struct.pack("<Q", len(h)) + h + data[8 + n :]
    if how == 2:
        return truncate(data, rng)
    return flip_bits(data, rng)


OVERRIDE_KEYS = ["train.lr", "train.steps", "train.batch_size", "model.codebook_size", "model.hidden", "data.image_size",
                 "model.nope", "nope.x", "train", "model.num_downsamples", "train.lr_schedule", "data.name"]
OVERRIDE_VALUES = ["-1", "0", "nan", "inf", "1e999", "x", "", "[1,2]", "{a: 1}", "true", "99999999999999999999", "null", "2.5"]


def override(rng: np.random.Generator) -> str:
    return f"--{rng.choice(OVERRIDE_KEYS)}={rng.choice(OVERRIDE_VALUES)}"


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path
