"""What the demo page does, as plain functions of loaded models and bytes (the Flask app only routes to them).

Each takes inputs as a browser sends them (image or wav file bytes, a caption, a class) and returns what the page
shows: PNG or WAV bytes and the figures beside them. Bad input is a :class:`~vqvae.core.errors.VQVAEError` with one
line, which the app returns as a 400 with that line.
"""

from __future__ import annotations

import base64
import io
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError

from vqvae.audio import inference as audio_inference
from vqvae.audio.conversion import read_clip
from vqvae.codec.api import as_tensor, load_codec
from vqvae.codec.rd import pillow_codec
from vqvae.core import checkpoint, plots
from vqvae.core.errors import DataError, VQVAEError
from vqvae.core.task import tokenizer_task
from vqvae.data.audio import write_wav
from vqvae.data.images import known_classes
from vqvae.priors import codes
from vqvae.priors.sampling import sample_labels
from vqvae.text2image import evaluate as t2i
from vqvae.text2image.loading import load_clip, load_dalle

MAX_PIXELS = 4_000_000  # the page's upload limit (a 2000 x 2000 photo); the CLI takes more
MAX_SECONDS = 10.0  # of uploaded speech


def png_bytes(images: torch.Tensor, nrow: int, scale: int = 1) -> bytes:
    """uint8 ``(N, C, H, W)`` as one PNG grid (one image: the image itself, no border)."""
    buf = io.BytesIO()
    plots.grid_image(images, nrow, scale, pad=2 if images.shape[0] > 1 else 0).save(buf, format="PNG")
    return buf.getvalue()


def data_url(data: bytes, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


def read_upload_image(data: bytes) -> torch.Tensor:
    """An uploaded image file -> uint8 ``(C, H, W)`` (grey stays grey, alpha dropped); a one-line error otherwise."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.width * im.height > MAX_PIXELS:
                raise DataError(f"the image is {im.width} x {im.height}; the page takes up to {MAX_PIXELS / 1e6:.0f} megapixels "
                                "(vqvae compress on the command line takes any size)")
            im.load()
            return as_tensor(im)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DataError(f"not a readable image ({e}); upload a PNG, JPEG or WebP") from None


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.double() - b.double()) ** 2).mean())
    return 10 * math.log10(255**2 / mse) if mse > 0 else float("inf")


def same_size(image: torch.Tensor, fmt: str, target: int) -> tuple[int, torch.Tensor, int]:
    """Pillow's ``fmt`` at the largest quality whose file is no bigger than ``target`` bytes (else quality 1):
    ``(bytes, decoded, quality)``, by bisection over 1..100."""
    lo, hi, best = 1, 100, None
    while lo <= hi:
        q = (lo + hi) // 2
        n, dec = pillow_codec(image, fmt, q)
        if n <= target:
            best, lo = (n, dec, q), q + 1
        else:
            hi = q - 1
    if best is None:
        n, dec = pillow_codec(image, fmt, 1)
        best = (n, dec, 1)
    return best


def compress_compare(model: str | None, data: bytes, qualities: list[int] | None = None, refine: int = 0) -> dict:
    """An uploaded photo through the codec at each quality, with JPEG and WebP of (at most) the same size beside it.
    ``refine`` defaults to 0 (the encoder's greedy codes) so the page answers in seconds; ``vqvae compress`` refines
    5 steps by default, for a few percent fewer bytes."""
    codec = load_codec(model)
    x = read_upload_image(data)
    qualities = qualities or list(range(1, codec.levels + 1))
    rows = []
    for q in qualities:
        blob, _ = codec.compress(x, quality=q, refine=refine)
        y = codec.decompress(blob)
        row = {"quality": q, "bytes": len(blob), "bpp": 8 * len(blob) / (x.shape[1] * x.shape[2]), "psnr": psnr(x, y),
               "image": data_url(png_bytes(y[None], 1), "image/png")}
        for fmt in ("JPEG", "WEBP"):
            n, dec, fq = same_size(x, fmt, len(blob))
            row[fmt.lower()] = {"bytes": n, "quality": fq, "psnr": psnr(x, dec), "image": data_url(png_bytes(dec[None], 1), "image/png")}
        rows.append(row)
    return {"model": codec.name, "width": x.shape[2], "height": x.shape[1], "original": data_url(png_bytes(x[None], 1), "image/png"),
            "rows": rows}


@dataclass
class Prior:
    """A class-conditional prior and its tokenizer, loaded once."""

    run: str

    def __post_init__(self):
        self.cfg, self.model, self.tok_cfg, self.tok = codes.load_prior(self.run)

    @property
    def classes(self) -> list[str]:
        """Class names for the page's menu, known without the data (else the class numbers)."""
        names = known_classes(self.tok_cfg.data.name) or []
        n = self.cfg.model.num_classes
        return names if len(names) == n else [str(i) for i in range(n)]

    def sample(self, label: int, n: int = 16, seed: int = 0, temperature: float = 1.0) -> bytes:
        if not 0 < n <= 64:
            raise VQVAEError(f"n must be in 1..64, got {n}")
        labels, _ = sample_labels(self.cfg.model.num_classes, n, label)
        z = self.model.sample(n, labels, generator=torch.Generator().manual_seed(seed), temperature=temperature)
        images = tokenizer_task(self.tok_cfg.arch, self.run).decode(self.tok, z)
        return png_bytes(images, 8, scale=max(1, 64 // images.shape[-1]))


@dataclass
class Voice:
    """A speaker-conditioned audio VQ-VAE, loaded once."""

    run: str

    def __post_init__(self):
        self.cfg, self.model = checkpoint.load_run(self.run)

    @property
    def speakers(self) -> list[str]:
        return list(self.cfg.model.speakers)

    def convert(self, wav: bytes, speaker: str) -> bytes:
        sid = audio_inference.speaker_id(self.cfg, speaker)
        with tempfile.TemporaryDirectory() as d:
            src = Path(d) / "in.wav"
            src.write_bytes(wav)
            x, t = read_clip(str(src), self.cfg)
            if t > MAX_SECONDS * self.cfg.model.sample_rate:
                raise DataError(f"the clip is {t / self.cfg.model.sample_rate:.1f} s; the page takes up to {MAX_SECONDS:g} s")
            y = audio_inference.convert(self.model, x, torch.tensor([sid]))[0, 0, :t]
            out = Path(d) / "out.wav"
            write_wav(out, y, self.cfg.model.sample_rate)
            return out.read_bytes()


@dataclass
class Scenes:
    """DALL-E's transformer over the captioned scenes, with its CLIP reranker when it has one."""

    run: str
    clip_run: str | None = None

    def __post_init__(self):
        self.cfg, self.model, self.text, self.tok = load_dalle(self.run)
        self.model.eval()
        self.clip = load_clip(self.clip_run) if self.clip_run else None

    def generate(self, caption: str, n: int = 8, guidance: float = 3.0, temperature: float = 0.8, seed: int = 0) -> bytes:
        caption = caption.strip()
        if not caption or len(caption) > 200:
            raise VQVAEError("type a caption of 1 to 200 characters, e.g. 'a red 3 above a small blue sneaker'")
        if not 0 < n <= 16:
            raise VQVAEError(f"n must be in 1..16, got {n}")
        c = 4 if self.clip is not None else 1
        images = t2i.draw(self.model, self.text, self.tok, [caption], n, guidance=guidance, temperature=temperature, seed=seed,
                          candidates=c, clip=self.clip).images
        return png_bytes(images, min(n, 8), scale=max(1, 64 // images.shape[-1]))
