"""A small contrastive image-text model (CLIP, Radford et al. 2021) to rerank DALL-E's samples.

DALL-E draws many images per caption and keeps those a pretrained CLIP scores
highest (Ramesh et al. 2021, section 2.5). Here CLIP is trained by the project
on the generator's own training captions (the scenes' ``train`` split: never a
held-out colour-class pair), so reranking adds no knowledge the generator lacks
of the held-out combinations, and it shares nothing with the scene reader that
scores the samples (another split, another architecture, captions instead of
attribute labels).

* Image encoder: uint8 images ``(B, C, S, S)`` -> a 4 x 4 stride-2 stem and
  three conv stages, each halving the side -> the flattened ``S/16`` map ->
  linear; flattening keeps where things are, which the captions' relations
  ("above", "left of") need.
* Text encoder: BPE ids ``(B, text_len)`` (:mod:`vqvae.text2image.text`, padding ids
  ``>= text_vocab - text_len``) -> token + position embeddings -> a
  bidirectional transformer encoder with padding masked -> mean over the
  words -> linear.
* Loss: the symmetric InfoNCE over the batch, cosine similarities times a
  learnt scale (initialised to 1 / 0.07, capped at 100 as in CLIP).

:meth:`Clip.score` gives ``(B,)`` similarities of matching pairs, the reranking
score (higher: the image fits its caption better).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vqvae.core.errors import ConfigError
from vqvae.image.likelihoods import to_input
from vqvae.scoring.classifier import conv_stage


@dataclass
class ClipConfig:
    text_vocab: int = 0  # BPE tokens + one padding id per position (from the run's text tokenizer)
    text_len: int = 16
    bpe_vocab: int = 1024  # the BPE's size when the run trains its text tokenizer
    in_channels: int = 3
    image_size: int = 64
    width: int = 16  # image encoder: a stem of width channels, then stages of 2x, 4x, 4x
    n_layer: int = 2  # text encoder
    n_head: int = 4
    n_embd: int = 128
    embed_dim: int = 128  # the joint embedding
    init_temperature: float = 0.07

    def validate(self) -> None:
        if self.text_vocab <= self.text_len or self.text_len < 1:
            raise ConfigError(f"model.text_vocab ({self.text_vocab}) must exceed model.text_len ({self.text_len}) >= 1")
        if self.image_size % 16 or self.image_size < 16 or min(self.width, self.n_layer, self.embed_dim, self.in_channels) < 1:
            raise ConfigError("model.image_size must be a multiple of 16 and width, n_layer, embed_dim, in_channels >= 1")
        if self.n_embd % self.n_head:
            raise ConfigError(f"model.n_embd ({self.n_embd}) must be divisible by model.n_head ({self.n_head})")
        if not 0 < self.init_temperature <= 1:
            raise ConfigError("model.init_temperature must be in (0, 1]")


@dataclass
class ClipOutput:
    loss: torch.Tensor  # symmetric InfoNCE
    logits: torch.Tensor  # (B, B) image i against caption j, scaled
    accuracy: torch.Tensor  # image -> caption top-1 within the batch


class Clip(nn.Module):
    config_cls = ClipConfig

    def __init__(self, config: ClipConfig):
        super().__init__()
        config.validate()
        self.config = c = config
        w = c.width
        side = c.image_size // 16
        self.image_net = nn.Sequential(nn.Conv2d(c.in_channels, w, 4, stride=2, padding=1), nn.ReLU(),
                                       *conv_stage(w, 2 * w), nn.MaxPool2d(2), *conv_stage(2 * w, 4 * w), nn.MaxPool2d(2),
                                       *conv_stage(4 * w, 4 * w), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * w * side * side, c.embed_dim))
        self.tok_emb = nn.Embedding(c.text_vocab, c.n_embd)
        self.pos_emb = nn.Parameter(torch.zeros(c.text_len, c.n_embd))
        layer = nn.TransformerEncoderLayer(c.n_embd, c.n_head, 4 * c.n_embd, dropout=0.0, batch_first=True, norm_first=True)
        self.text_net = nn.TransformerEncoder(layer, c.n_layer, enable_nested_tensor=False)
        self.text_proj = nn.Sequential(nn.LayerNorm(c.n_embd), nn.Linear(c.n_embd, c.embed_dim))
        self.log_scale = nn.Parameter(torch.tensor(math.log(1 / c.init_temperature)))
        nn.init.normal_(self.pos_emb, std=0.02)

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 images ``(B, C, S, S)`` -> unit embeddings ``(B, embed_dim)``."""
        c = self.config
        if x.ndim != 4 or x.shape[1:] != (c.in_channels, c.image_size, c.image_size):
            raise ValueError(f"expected uint8 images (B, {c.in_channels}, {c.image_size}, {c.image_size}), got {tuple(x.shape)}")
        return F.normalize(self.image_net(to_input(x)), dim=-1)

    def encode_text(self, text: torch.Tensor) -> torch.Tensor:
        """BPE ids ``(B, text_len)`` -> unit embeddings ``(B, embed_dim)``."""
        c = self.config
        if text.ndim != 2 or text.shape[1] != c.text_len or int(text.min()) < 0 or int(text.max()) >= c.text_vocab:
            raise ValueError(f"expected text ids (B, {c.text_len}) in [0, {c.text_vocab}), got {tuple(text.shape)}: "
                             "was this CLIP trained with another text tokenizer?")
        pad = text >= c.text_vocab - c.text_len
        pad[:, 0] = False  # an empty caption still reads its first (padding) position
        h = self.text_net(self.tok_emb(text) + self.pos_emb, src_key_padding_mask=pad)
        keep = (~pad).unsqueeze(-1).to(h.dtype)
        return F.normalize(self.text_proj((h * keep).sum(1) / keep.sum(1)), dim=-1)

    def forward(self, x: torch.Tensor, text: torch.Tensor) -> ClipOutput:
        """Matching pairs: images ``(B, ...)`` and their captions' ids ``(B, text_len)`` -> :class:`ClipOutput`."""
        logits = self.log_scale.clamp(max=math.log(100)).exp() * self.encode_image(x) @ self.encode_text(text).T
        target = torch.arange(x.shape[0], device=logits.device)
        loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
        return ClipOutput(loss=loss, logits=logits, accuracy=(logits.argmax(1) == target).float().mean())

    @torch.no_grad()
    def score(self, x: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """Cosine similarity of each image with its own caption, ``(B,)`` (eval mode; higher: a better fit)."""
        was = self.training
        self.eval()
        try:
            return (self.encode_image(x) * self.encode_text(text)).sum(-1)
        finally:
            self.train(was)
