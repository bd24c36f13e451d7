"""DALL-E's transformer (Ramesh et al. 2021, section 2.2): one autoregressive model over ``[text | image]`` tokens.

Sequence: ``text_len`` BPE text tokens (padded with one padding id per
position, :mod:`vqvae.text2image.text`), then the ``h * w`` image codes of a tokenizer in
raster order; ``L = text_len + h * w``. Teacher forcing predicts token ``p+1``
from positions ``<= p``:

* text positions ``0 .. text_len-2`` predict text tokens ``1 .. text_len-1``
  (a text head over the text vocabulary);
* position ``text_len-1`` and the image positions predict the image codes
  (an image head over the K codes).

Loss = ``text_loss_weight * CE(text) + (1 - text_loss_weight) * CE(image)``:
1/8 and 7/8 as in DALL-E. Embeddings: text tokens + text positions; image codes
+ row + column embeddings of their cell. Each layer uses one attention pattern
(:mod:`vqvae.text2image.masks`): ``attn`` cycles over the layers (DALL-E: row,
column, row, row) and the last layer is convolutional when ``last_conv``.

Classifier-free guidance (Ho & Salimans 2022; not in DALL-E, expected today):
in training a caption is replaced by the empty caption (all padding) with
probability ``caption_dropout``; sampling with ``guidance = s`` uses
``uncond + s * (cond - uncond)`` logits. Sampling is KV-cached: the text is
prefilled in one pass, then one image code per step.

Reranking: DALL-E keeps the best of 512 samples by CLIP; :func:`vqvae.text2image.evaluate.draw`
keeps the best of ``candidates`` by the project's CLIP (:mod:`vqvae.text2image.clip`)
or, without one, by :meth:`Dalle.image_log_prob` under the caption.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from vqvae.core.errors import require
from vqvae.priors import decoding
from vqvae.priors.sequence import guide, sample_from
from vqvae.priors.transformer import Block, init_gpt_weights
from vqvae.text2image.masks import PATTERNS, attention_mask


@dataclass
class DalleConfig:
    bpe_vocab: int = 1024  # BPE tokens to learn from the training captions
    text_vocab: int = 0  # the learnt BPE's tokens + one padding token per text position (TextTokenizer.total_size)
    text_len: int = 32
    image_vocab: int = 512  # K of the tokenizer
    height: int = 0  # the tokenizer's code map
    width: int = 0
    n_layer: int = 8
    n_head: int = 8
    n_embd: int = 256
    dropout: float = 0.0
    bias: bool = True
    attn: list[str] = field(default_factory=lambda: ["row", "column", "row", "row"])
    last_conv: bool = True
    conv_radius: int = 5  # DALL-E's 11 x 11 kernel
    text_loss_weight: float = 0.125
    caption_dropout: float = 0.1

    def validate(self) -> None:
        checks = [
            (self.bpe_vocab >= 257, "model.bpe_vocab must be >= 257 (the 256 byte tokens and at least one merge)"),
            (self.text_vocab > self.text_len >= 1, "model.text_vocab must exceed model.text_len >= 1 (set from the text tokenizer)"),
            (self.image_vocab >= 2 and self.height >= 1 and self.width >= 1, "model.image_vocab >= 2 and the code map size come from the tokenizer"),
            (self.n_layer >= 1 and self.n_head >= 1 and self.n_embd % self.n_head == 0, "model.n_embd must be divisible by model.n_head"),
            (bool(self.attn) and all(a in PATTERNS for a in self.attn), f"model.attn must list patterns from {PATTERNS}"),
            (0.0 <= self.text_loss_weight <= 1.0 and 0.0 <= self.caption_dropout < 1.0, "model.text_loss_weight in [0, 1], caption_dropout in [0, 1)"),
            (self.conv_radius >= 0 and 0.0 <= self.dropout < 1.0, "model.conv_radius >= 0 and model.dropout in [0, 1)"),
        ]
        require(checks)

    @property
    def image_len(self) -> int:
        return self.height * self.width

    @property
    def seq_len(self) -> int:
        return self.text_len + self.image_len

    def layer_patterns(self) -> list[str]:
        pats = [self.attn[i % len(self.attn)] for i in range(self.n_layer)]
        if self.last_conv:
            pats[-1] = "conv"
        return pats


@dataclass
class DalleOutput:
    """loss (weighted), text_loss and image_loss (nats per token), image_logits ``(B, h*w, K)``."""

    loss: torch.Tensor
    text_loss: torch.Tensor
    image_loss: torch.Tensor
    image_logits: torch.Tensor


class Dalle(nn.Module):
    config_cls = DalleConfig

    def __init__(self, config: DalleConfig):
        super().__init__()
        config.validate()
        self.config = c = config
        self.text_emb = nn.Embedding(c.text_vocab, c.n_embd)
        self.text_pos = nn.Embedding(c.text_len, c.n_embd)
        self.image_emb = nn.Embedding(c.image_vocab, c.n_embd)
        self.row_emb = nn.Embedding(c.height, c.n_embd)
        self.col_emb = nn.Embedding(c.width, c.n_embd)
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.n_layer))
        self.ln_f = nn.LayerNorm(c.n_embd, bias=c.bias)
        self.text_head = nn.Linear(c.n_embd, c.text_vocab, bias=False)
        self.image_head = nn.Linear(c.n_embd, c.image_vocab, bias=False)
        pats = c.layer_patterns()
        masks = {p: attention_mask(p, c.text_len, c.height, c.width, c.conv_radius) for p in set(pats)}
        for p, m in masks.items():
            self.register_buffer(f"mask_{p}", m, persistent=False)
        self.patterns = pats
        cells = torch.arange(c.image_len)
        self.register_buffer("cell_row", cells // c.width, persistent=False)
        self.register_buffer("cell_col", cells % c.width, persistent=False)
        init_gpt_weights(self, c.n_layer)

    # -- inputs --------------------------------------------------------------------------------
    def empty_caption(self, n: int) -> torch.Tensor:
        """The caption of no words: every position its padding token ``(n, text_len)``."""
        c = self.config
        return torch.arange(c.text_vocab - c.text_len, c.text_vocab, device=self.text_emb.weight.device).expand(n, -1)

    def _embed_text(self, text: torch.Tensor) -> torch.Tensor:
        return self.text_emb(text) + self.text_pos.weight[: text.shape[1]]

    def _embed_image(self, codes: torch.Tensor, start) -> torch.Tensor:
        """Codes ``(B, T)`` at image positions ``start .. start+T-1`` (``start`` an int, or a 0-d device tensor)."""
        t = codes.shape[1]
        cells = start + torch.arange(t, device=codes.device) if torch.is_tensor(start) else slice(start, start + t)
        return self.image_emb(codes) + self.row_emb(self.cell_row[cells]) + self.col_emb(self.cell_col[cells])

    def _check(self, text: torch.Tensor, codes: torch.Tensor | None = None) -> None:
        """Shapes always; the ids' range outside training only (it reads the data back to the host: training data are
        checked once, when the task prepares them, so a training step never waits for the device)."""
        c, values = self.config, not self.training
        if text.ndim != 2 or text.shape[1] != c.text_len or values and (int(text.min()) < 0 or int(text.max()) >= c.text_vocab):
            raise ValueError(f"expected text ids (B, {c.text_len}) in [0, {c.text_vocab}), got {tuple(text.shape)}: "
                             "was this transformer trained with another text tokenizer?")
        if codes is not None and (codes.shape[1:] != (c.height, c.width)
                                  or values and (int(codes.min()) < 0 or int(codes.max()) >= c.image_vocab)):
            raise ValueError(f"expected image codes (B, {c.height}, {c.width}) in [0, {c.image_vocab}), got {tuple(codes.shape)}: "
                             "was this transformer trained on another tokenizer?")

    def _blocks(self, x: torch.Tensor, pos: int = 0, cache=None) -> torch.Tensor:
        for i, (block, pat) in enumerate(zip(self.blocks, self.patterns)):
            x = block(x, None if cache is None else (cache[0][i], cache[1][i]), pos, getattr(self, f"mask_{pat}"))
        return self.ln_f(x)

    # -- training --------------------------------------------------------------------------------
    def forward(self, text: torch.Tensor, codes: torch.Tensor) -> DalleOutput:
        """Text ids ``(B, text_len)`` and image codes ``(B, h, w)`` -> :class:`DalleOutput` (teacher forcing)."""
        self._check(text, codes)
        c = self.config
        if self.training and c.caption_dropout > 0:
            drop = torch.rand(text.shape[0], device=text.device) < c.caption_dropout
            text = torch.where(drop[:, None], self.empty_caption(text.shape[0]), text)
        img = codes.reshape(codes.shape[0], -1).long()
        x = torch.cat([self._embed_text(text), self._embed_image(img[:, :-1], 0)], 1)
        h = self._blocks(x)
        text_logits = self.text_head(h[:, : c.text_len - 1])
        image_logits = self.image_head(h[:, c.text_len - 1 :])
        t_loss = F.cross_entropy(text_logits.float().transpose(1, 2), text[:, 1:]) if c.text_len > 1 else h.new_zeros(())
        i_loss = F.cross_entropy(image_logits.float().transpose(1, 2), img)
        loss = c.text_loss_weight * t_loss + (1 - c.text_loss_weight) * i_loss
        return DalleOutput(loss=loss, text_loss=t_loss, image_loss=i_loss, image_logits=image_logits)

    # -- scoring -----------------------------------------------------------------------------------
    @torch.no_grad()
    def image_log_prob(self, text: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """``log p(codes | text)`` in nats, ``(B,)``: the sum over the image positions (teacher forcing, eval mode).

        The reranking score without a CLIP. The pointwise mutual information ``log p(codes | text) - log p(codes | no
        caption)`` was tried too and ranked worse (BENCHMARKS.md): guided samples already maximise it, and the
        candidates it prefers are atypical ones the reader misreads.
        """
        was = self.training
        self.eval()
        try:
            logits = self(text, codes).image_logits.float()
        finally:
            self.train(was)
        img = codes.reshape(codes.shape[0], -1).long()
        return torch.log_softmax(logits, -1).gather(-1, img[..., None]).squeeze(-1).sum(1)

    # -- sampling ----------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, text: torch.Tensor, guidance: float = 1.0, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                 generator: torch.Generator | None = None, use_cache: bool = True, static: bool | None = None) -> torch.Tensor:
        """Image codes ``(B, h, w)`` for text ids ``(B, text_len)``; ``guidance`` != 1 mixes in the empty caption's logits.

        ``static`` (default: on CUDA): the image tokens are decoded over a static cache, the step captured in a CUDA
        graph on CUDA (:mod:`vqvae.priors.decoding`; draws from a device generator seeded once from ``generator``);
        on the CPU it gives the same codes as the sliced cache."""
        self._check(text)
        c = self.config
        was = self.training
        self.eval()
        try:
            b = text.shape[0]
            guided = guidance != 1.0
            txt = torch.cat([text, self.empty_caption(b)]) if guided else text
            n = txt.shape[0]
            out = torch.zeros(b, c.image_len, dtype=torch.long, device=text.device)
            w = self.text_emb.weight
            shape = (c.n_layer, n, c.n_head, c.seq_len, c.n_embd // c.n_head)
            cache = (torch.zeros(shape, device=w.device, dtype=w.dtype), torch.zeros(shape, device=w.device, dtype=w.dtype)) if use_cache else None
            h = self._blocks(self._embed_text(txt), 0, cache)[:, -1]
            logits = self.image_head(h).float()
            static = use_cache and (text.device.type == "cuda" if static is None else static)
            if static:
                decode = self._static_decoder(cache, txt.new_zeros(n, 1), text.device.type == "cuda")
                generator = decoding.on_device(generator, text.device)
            for t in range(c.image_len):
                if guided:
                    logits = guide(logits, b, guidance)
                out[:, t] = sample_from(logits, generator, temperature=temperature, top_k=top_k, top_p=top_p)
                if t + 1 == c.image_len:
                    break
                step = out[:, t : t + 1].repeat(2, 1) if guided else out[:, t : t + 1]
                if static:
                    logits = decode(step)
                elif use_cache:
                    h = self._blocks(self._embed_image(step, t), c.text_len + t, cache)[:, -1]
                    logits = self.image_head(h).float()
                else:
                    prefix = out[:, : t + 1].repeat(2, 1) if guided else out[:, : t + 1]
                    h = self._blocks(torch.cat([self._embed_text(txt), self._embed_image(prefix, 0)], 1))[:, -1]
                    logits = self.image_head(h).float()
        finally:
            self.train(was)
        return out.reshape(b, c.height, c.width)

    def _static_decoder(self, cache, codes: torch.Tensor, capture: bool):
        """``decode(codes (n, 1)) -> logits (n, K)`` of the next image token: the step over the static ``cache`` (its
        position a device tensor after the caption), captured in a CUDA graph when ``capture``."""
        c = self.config
        pos = torch.full((), c.text_len, dtype=torch.long, device=codes.device)

        def step(z):
            h = self._blocks(self._embed_image(z, pos - c.text_len), pos, cache)[:, -1]
            pos.add_(1)
            return self.image_head(h).float()

        return decoding.stepper(step, codes, pos, capture)
