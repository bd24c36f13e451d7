"""The ``.vqz`` file format of the learned image codec.

Layout (little-endian), version 1::

    offset  size  field
    0       4     magic  b"\\x89VQZ"
    4       1     format version (1)
    5       1     length n of the model name (1..64)
    6       n     model name (ASCII), e.g. "coco-rvq4"
    6+n     8     model fingerprint (SHA-256 prefix of the tokenizer's and the prior's configs and weights)
    +8      4     image width   (pixels, 1..65535)
    +4      4     image height  (pixels, 1..65535)
    +4      1     channels (1 grey, 3 RGB)
    +1      1     quality (residual stages coded, 1..model stages)
    +1      1     tile (latent cells per tile side)
    +1      4     CRC-32 of the code indices (detects a probability-model mismatch between machines)
    +4      4     payload length in 32-bit words
    +4      4w    payload: the range coder's words
    end-4   4     CRC-32 of everything before it

The image is padded (edge replication) to a multiple of ``downsampling * tile``
pixels; the padding is implied by the size and the model, not stored. Reading
checks everything before any model work, so a corrupt, truncated or foreign
file gets a :class:`CodecError` naming what is wrong, never a hang or a crash.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np

from vqvae.core.errors import VQVAEError

MAGIC = b"\x89VQZ"
VERSION = 1
MAX_SIDE = 65535
_FIXED = struct.Struct("<8sIIBBBII")  # fingerprint, width, height, channels, quality, tile, code crc, payload words


class CodecError(VQVAEError):
    """A file that is not a valid ``.vqz`` for the available models, or an image the codec cannot take."""


@dataclass
class Header:
    model: str
    fingerprint: bytes  # 8 bytes
    width: int
    height: int
    channels: int
    quality: int
    tile: int
    code_crc: int

    def check(self) -> None:
        if not (1 <= len(self.model) <= 64 and self.model.isascii() and self.model.isprintable()):
            raise CodecError(f"the model name must be 1..64 printable ASCII characters, got {self.model!r}")
        if len(self.fingerprint) != 8:
            raise CodecError("the model fingerprint must be 8 bytes")
        if not (1 <= self.width <= MAX_SIDE and 1 <= self.height <= MAX_SIDE):
            raise CodecError(f"image sides must be in 1..{MAX_SIDE}, got {self.width}x{self.height}")
        if self.channels not in (1, 3):
            raise CodecError(f"channels must be 1 (grey) or 3 (RGB), got {self.channels}")
        if not (1 <= self.quality <= 255 and 1 <= self.tile <= 255):
            raise CodecError(f"quality and tile must be in 1..255, got {self.quality}, {self.tile}")


def pack(header: Header, payload: np.ndarray) -> bytes:
    """Header + range-coder words (``uint32``) -> the file's bytes."""
    header.check()
    words = np.ascontiguousarray(payload, dtype="<u4")
    name = header.model.encode("ascii")
    body = (MAGIC + bytes([VERSION, len(name)]) + name
            + _FIXED.pack(header.fingerprint, header.width, header.height, header.channels, header.quality, header.tile,
                          header.code_crc, words.size)
            + words.tobytes())
    return body + struct.pack("<I", zlib.crc32(body))


def unpack(data: bytes) -> tuple[Header, np.ndarray]:
    """The file's bytes -> ``(header, payload words)``; :class:`CodecError` on anything malformed."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise CodecError(f"expected the bytes of a .vqz file, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < 6 or data[:4] != MAGIC:
        raise CodecError("not a .vqz file (bad magic bytes): it was not written by `vqvae compress`")
    if data[4] != VERSION:
        raise CodecError(f".vqz format version {data[4]} is not supported (this vqvae reads version {VERSION}); "
                         "upgrade vqvae or re-compress the image")
    n = data[5]
    start = 6 + n
    if len(data) < start + _FIXED.size + 4:
        raise CodecError(f"truncated .vqz file: {len(data)} bytes, shorter than its header")
    (crc,) = struct.unpack("<I", data[-4:])
    fp, width, height, channels, quality, tile, code_crc, words = _FIXED.unpack_from(data, start)
    expect = start + _FIXED.size + 4 * words + 4
    if len(data) != expect:
        what = "truncated" if len(data) < expect else "has trailing bytes"
        raise CodecError(f"corrupt .vqz file: it {what} ({len(data)} bytes, the header announces {expect})")
    if zlib.crc32(data[:-4]) != crc:
        raise CodecError("corrupt .vqz file: checksum mismatch (the file was damaged in storage or transfer)")
    try:
        name = data[6:start].decode("ascii")
    except UnicodeDecodeError:
        raise CodecError("corrupt .vqz file: the model name is not ASCII") from None
    header = Header(name, fp, width, height, channels, quality, tile, code_crc)
    header.check()
    payload = np.frombuffer(data, dtype="<u4", count=words, offset=start + _FIXED.size).astype(np.uint32)
    return header, payload


def code_crc(codes: np.ndarray) -> int:
    """CRC-32 of code indices (as little-endian int32), stored so the decoder can prove it rebuilt them exactly."""
    return zlib.crc32(np.ascontiguousarray(codes, dtype="<i4").tobytes())
