"""The learned image codec: a residual VQ-VAE tokenizer, a transformer prior over its codes, a range coder.

``compress``: image -> pad (edge replication) to a multiple of ``f * T`` pixels
-> the tokenizer's codes ``(S, h, w)`` (residual stages, coarse to fine) -> keep
the first ``quality`` stages -> cut into ``T x T`` tiles -> each tile's codes in
the prior's codebook-slowest order (stage 1's map, then stage 2's, ...) ->
range-coded under the prior, all tiles as one batch of sequences ->
:mod:`vqvae.codec.container`. With ``refine`` > 0 the greedy codes are replaced
by a rate-distortion search (:mod:`vqvae.codec.refine`); the file is the same
kind of file. ``decompress`` runs the same steps backwards;
the prior rebuilds each code's distribution from the codes decoded before it.

Why this shape. Residual stages give one model several rates (the quality
levels) and, in codebook-slowest order, every quality is a *prefix* of the
sequence, so one prior codes them all. Tiles make the sequential decoding cost
``O(T^2 S)`` steps whatever the image size (the tiles run as a batch) and bound
the prior's context; the price is that a tile's first codes see no
neighbours. Large images are encoded and decoded through the convolutional
nets in overlapping windows (:func:`windowed`), so memory stays bounded.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vqvae.codec import container, entropy
from vqvae.codec.container import CodecError, Header
from vqvae.codec.defaults import DEFAULT_REFINE
from vqvae.codec.refine import Refiner
from vqvae.core.windows import MARGIN, WINDOW, windowed
from vqvae.core import checkpoint
from vqvae.image.likelihoods import to_input
from vqvae.priors import codes
from vqvae.priors.sequence import from_sequence, to_sequence

# Prior config fields that only steer training: what they change in the model is in its weights, which the fingerprint
# hashes, so files written before such a field existed still decode.
TRAINING_ONLY = ("label_dropout",)


@dataclass
class CompressStats:
    """What one compression cost: real bytes, the model's NLL of the coded codes, times."""

    bytes: int
    payload_bytes: int
    nll_bits: float
    bpp: float
    encode_s: float


def to_tiles(c: torch.Tensor, t: int) -> torch.Tensor:
    """Code map ``(S, h, w)`` (``h, w`` multiples of ``t``) -> tiles ``(n, S, t, t)`` in raster order."""
    s, h, w = c.shape
    return c.reshape(s, h // t, t, w // t, t).permute(1, 3, 0, 2, 4).reshape(-1, s, t, t)


def from_tiles(tiles: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`to_tiles`: ``(n, S, t, t)`` -> ``(S, h, w)``."""
    n, s, t, _ = tiles.shape
    return tiles.reshape(h // t, w // t, s, t, t).permute(2, 0, 3, 1, 4).reshape(s, h, w)


class Codec:
    """A tokenizer + prior pair that compresses images to ``.vqz`` bytes and back.

    ``quality`` 1..``levels``: the residual stages coded (more: more bits, higher PSNR).
    """

    def __init__(self, name: str, tok_cfg, tokenizer, prior_cfg, prior, default_quality: int | None = None):
        m, p = tok_cfg.model, prior_cfg.model
        if prior_cfg.arch != "transformer":
            raise CodecError(f"the codec needs a transformer prior (KV-cached coding), got {prior_cfg.arch}")
        if p.height != p.width:
            raise CodecError(f"the codec's prior must model square tiles, got {p.height}x{p.width}")
        if p.num_classes:
            raise CodecError("the codec's prior must be unconditional")
        residual = m.num_codebooks > 1 and m.codebook_layout == "residual"
        # Quality levels are prefixes of the tiles' sequences: residual stages in codebook-slowest order.
        self.prefix = residual and p.order == "codebook"
        self.levels = m.num_codebooks if self.prefix else 1
        self.name, self.tok_cfg, self.prior_cfg = name, tok_cfg, prior_cfg
        self.tokenizer = tokenizer.cpu().eval()
        self.prior = entropy.prepare(prior)
        self.f, self.tile, self.stages = m.downsampling, p.height, m.num_codebooks
        self.window, self.margin = WINDOW, MARGIN
        self._refiner = None
        self.default_quality = self.check_quality(default_quality if default_quality is not None else self.levels)
        # Every weight of both nets: a decoder fine-tuned on the same codes is another model (other pixels).
        h = hashlib.sha256(codes.fingerprint(tok_cfg, tokenizer).encode())
        h.update(json.dumps({k: v for k, v in asdict(p).items() if k not in TRAINING_ONLY}, sort_keys=True).encode())
        for net in (tokenizer, prior):
            for k, v in sorted(net.state_dict().items()):
                h.update(k.encode())
                h.update(v.detach().cpu().float().contiguous().numpy().tobytes())
        self.fingerprint = h.digest()[:8]

    @classmethod
    def from_run(cls, prior_run: str | Path, name: str | None = None, tokenizer: str | Path | None = None) -> "Codec":
        """A codec from a prior's run directory; its tokenizer is found through the prior's config,
        or is ``tokenizer``, a run with the same codes (e.g. its decoder fine-tuned on them)."""
        prior_cfg, prior, tok_cfg, tok = codes.load_prior(prior_run, tokenizer=tokenizer)
        return cls(name or Path(prior_run).resolve().name, tok_cfg, tok, prior_cfg, prior)

    @classmethod
    def from_dirs(cls, tokenizer_dir: Path, prior_dir: Path, name: str, default_quality: int | None = None) -> "Codec":
        """A codec from a tokenizer and a prior directory (the shipped models), checking they belong together."""
        tok_cfg, tok, fp = codes.load_tokenizer(tokenizer_dir)
        prior_cfg, prior = checkpoint.load_run(prior_dir)
        if prior_cfg.tokenizer.fingerprint != fp:
            raise CodecError(f"model {name}: its prior was trained on another tokenizer (fingerprint {prior_cfg.tokenizer.fingerprint}, found {fp})")
        return cls(name, tok_cfg, tok, prior_cfg, prior, default_quality)

    # -- helpers ------------------------------------------------------------------------------
    def check_quality(self, quality: int | None) -> int:
        """``quality`` (``None``: :attr:`default_quality`) checked to be one of this model's levels."""
        q = self.default_quality if quality is None else quality
        if isinstance(q, bool) or not isinstance(q, (int, np.integer)) or not 1 <= q <= self.levels:
            raise CodecError(f"quality must be an integer in 1..{self.levels} for model {self.name}, got {quality!r}")
        return int(q)

    def _grid(self, height: int, width: int) -> tuple[int, int]:
        """Latent grid of an image after padding to whole tiles."""
        unit = self.f * self.tile
        return -(-height // unit) * self.tile, -(-width // unit) * self.tile

    def _as_model_input(self, x: torch.Tensor) -> torch.Tensor:
        want = self.tok_cfg.model.in_channels
        if x.shape[0] == want:
            return x
        if x.shape[0] == 1 and want == 3:
            return x.expand(3, -1, -1)
        raise CodecError(f"model {self.name} codes {want}-channel images, got {x.shape[0]} channels")

    # -- public API ---------------------------------------------------------------------------
    @property
    def refiner(self):
        if self._refiner is None:
            self._refiner = Refiner(self)
        return self._refiner

    @torch.no_grad()
    def encode_latents(self, x: torch.Tensor) -> torch.Tensor:
        """Padded uint8 images ``(1, C, gh*f, gw*f)`` -> the encoder's continuous latents ``(1, D, gh, gw)``."""
        gh, gw = x.shape[-2] // self.f, x.shape[-1] // self.f
        return windowed(lambda t: self.tokenizer.encoder(to_input(t)), x, (gh, gw), self.f, 1, self.window, self.margin)

    @torch.no_grad()
    def decode_codes(self, z: torch.Tensor) -> torch.Tensor:
        """Codes ``(1, s, gh, gw)`` (``(1, gh, gw)`` for one codebook) -> uint8 images ``(1, C, gh*f, gw*f)``."""
        return windowed(self.tokenizer.decode, z, tuple(z.shape[-2:]), 1, self.f, self.window, self.margin)

    @torch.no_grad()
    def compress(self, image: torch.Tensor, quality: int | None = None, refine: int = DEFAULT_REFINE,
                 progress: bool = False) -> tuple[bytes, CompressStats]:
        """uint8 ``(C, H, W)`` with C = 1 or 3 -> (``.vqz`` bytes, :class:`CompressStats`).

        ``quality``: ``None`` is :attr:`default_quality`. ``refine``: Adam steps of encoder-side rate-distortion
        optimisation of the codes (:mod:`vqvae.codec.refine`; slower encoding, same decoder and format; default
        :data:`~vqvae.codec.defaults.DEFAULT_REFINE`, as for :func:`vqvae.codec.compress` and ``vqvae compress``;
        0: the encoder's greedy codes)."""
        t0 = time.perf_counter()
        if isinstance(refine, bool) or not isinstance(refine, (int, np.integer)) or not 0 <= refine <= 1000:
            raise CodecError(f"refine must be an integer number of steps in 0..1000, got {refine!r}")
        if not isinstance(image, torch.Tensor) or image.dtype != torch.uint8 or image.ndim != 3 or image.shape[0] not in (1, 3):
            raise CodecError(f"expected a uint8 image tensor (C, H, W) with C = 1 or 3, got "
                             f"{getattr(image, 'dtype', type(image).__name__)} {tuple(getattr(image, 'shape', ()))}")
        c, height, width = image.shape
        if not (1 <= height <= container.MAX_SIDE and 1 <= width <= container.MAX_SIDE):
            raise CodecError(f"image sides must be in 1..{container.MAX_SIDE}, got {width}x{height}")
        q = self.check_quality(quality)
        gh, gw = self._grid(height, width)
        x = self._as_model_input(image)[None].float()
        x = F.pad(x, (0, gw * self.f - width, 0, gh * self.f - height), mode="replicate").round().to(torch.uint8)
        if refine:
            z = self.refiner.refine(x, width, height, q, refine, progress)  # (q, gh, gw)
        else:
            z = windowed(self.tokenizer.encode, x, (gh, gw), self.f, 1, self.window, self.margin)  # (1, S, gh, gw) or (1, gh, gw)
            z = z.reshape(self.stages, gh, gw)
        seq = self.sequences(z, q)
        words, nll = entropy.encode(self.prior, seq)
        header = Header(self.name, self.fingerprint, width, height, c, q, self.tile, container.code_crc(seq.numpy()))
        data = container.pack(header, words)
        stats = CompressStats(len(data), 4 * words.size, nll, 8 * len(data) / (height * width), time.perf_counter() - t0)
        return data, stats

    @torch.no_grad()
    def decompress(self, data: bytes) -> torch.Tensor:
        """``.vqz`` bytes -> uint8 ``(C, H, W)``."""
        header, words = container.unpack(data)
        self.check_header(header)
        gh, gw = self._grid(header.height, header.width)
        n = (gh // self.tile) * (gw // self.tile)
        seq = entropy.decode(self.prior, words, n, self.length(header.quality))
        if container.code_crc(seq.numpy()) != header.code_crc:
            raise CodecError("the decoded codes do not match the encoder's (code checksum mismatch): the file is corrupt, or the "
                             "prior computed different probabilities on this machine; please report it")
        full = torch.cat([seq, torch.zeros(n, self.prior.config.seq_len - seq.shape[1], dtype=torch.long)], 1)
        tiles = from_sequence(full, self.prior.config).reshape(n, self.stages, self.tile, self.tile)
        z = from_tiles(tiles[:, : header.quality] if self.prefix else tiles, gh, gw)[None]
        if self.stages == 1:
            z = z[:, 0]
        x = self.decode_codes(z)[0, :, : header.height, : header.width]
        if header.channels == 1 and x.shape[0] == 3:  # ITU-R 601 luma, as Pillow's convert("L")
            w = torch.tensor([299, 587, 114], dtype=torch.int32)[:, None, None]
            x = ((x.int() * w).sum(0, keepdim=True) + 500).div(1000, rounding_mode="floor").to(torch.uint8)
        return x

    def check_header(self, header: Header) -> None:
        if header.model != self.name or header.fingerprint != self.fingerprint:
            raise CodecError(f"this file needs codec model {header.model!r} (fingerprint {header.fingerprint.hex()}), "
                             f"not {self.name!r} ({self.fingerprint.hex()})")
        if header.tile != self.tile or header.quality > self.levels:
            raise CodecError(f"corrupt .vqz file: tile {header.tile} / quality {header.quality} do not fit model {self.name}")

    def length(self, quality: int) -> int:
        """Codes per tile sequence coded at ``quality``."""
        return quality * self.tile**2 if self.prefix else self.prior.config.seq_len

    def sequences(self, z: torch.Tensor, quality: int) -> torch.Tensor:
        """Code map ``(s, gh, gw)`` (at least the stages coded at ``quality``) -> the tiles' sequences
        ``(n, L)`` in the prior's order, cut to the ``L`` codes coded at ``quality``."""
        if z.shape[0] < self.stages:  # the stages beyond the coded prefix are never coded: any value does
            z = torch.cat([z, z.new_zeros(self.stages - z.shape[0], *z.shape[1:])])
        tiles = to_tiles(z, self.tile)
        return to_sequence(tiles if self.stages > 1 else tiles[:, 0], self.prior.config)[:, : self.length(quality)]

