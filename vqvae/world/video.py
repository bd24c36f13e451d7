"""Action-conditioned video in latent space: a GPT over the codes of consecutive frames and the actions between them.

The paper's abstract: generation "in latent space conditioned on actions". Each frame is a tokenizer's code map
(``h x w`` codes, raster order); a window of ``T`` frames is one sequence in which every frame is preceded by a
*control* token: the start token before the first frame, and before frame ``t`` the action taken after frame
``t - 1``::

    [BOS, f_0 (hw codes), a_0, f_1 (hw codes), a_1, ..., a_{T-2}, f_{T-1} (hw codes)]     length T (hw + 1)

The model (nanoGPT's blocks, :class:`vqvae.priors.transformer.Block`) predicts every code from everything before it,
so frame ``t``'s codes are predicted from the earlier frames and the actions between; controls are given, never
predicted (the loss covers code positions only). Rolling out (:meth:`VideoModel.next_frame`) feeds up to ``T - 1``
frames of context and their actions, then draws the next frame's ``hw`` codes one by one with a key-value cache
(:class:`vqvae.priors.transformer.KVCache`): the prefix is fed in one pass, each code in one more.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vqvae.core.errors import require
from vqvae.priors.sequence import sample_from
from vqvae.priors.transformer import Block, KVCache, init_gpt_weights


@dataclass
class VideoConfig:
    codebook_size: int = 512  # K of the per-frame tokenizer (set from it)
    height: int = 8  # its code maps (set from it)
    width: int = 8
    actions: int = 5  # the doom actions (L, R, F, SL, SR)
    frames: int = 4  # T: frames per training window (T - 1 of context for the next one)
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 192
    bias: bool = True
    dropout: float = 0.1

    def validate(self) -> None:
        require([
            (2 <= self.codebook_size <= 2**16, "model.codebook_size must be in 2..65536"),
            (self.height >= 1 and self.width >= 1, "model.height and model.width must be >= 1"),
            (1 <= self.actions <= 256, "model.actions must be in 1..256"),
            (2 <= self.frames <= 64, "model.frames must be in 2..64 (one of context at least)"),
            (1 <= self.n_layer <= 64 and self.n_head >= 1 and self.n_embd % self.n_head == 0,
             "model.n_layer in 1..64, model.n_head >= 1 dividing model.n_embd"),
            (0 <= self.dropout < 1, "model.dropout must be in [0, 1)"),
        ])

    @property
    def frame_len(self) -> int:
        """Tokens per frame: its control token and its codes."""
        return self.height * self.width + 1

    @property
    def seq_len(self) -> int:
        return self.frames * self.frame_len


@dataclass
class VideoOutput:
    """loss: nats per predicted code (all frames). bits_per_code: of the frames after the first (those with context),
    batch mean. nll_bits: ``-log2 p`` of each window's frames after the first, ``(B,)``."""

    loss: torch.Tensor
    bits_per_code: torch.Tensor
    nll_bits: torch.Tensor


class VideoModel(nn.Module):
    config_cls = VideoConfig

    def __init__(self, config: VideoConfig):
        super().__init__()
        config.validate()
        self.config = c = config
        self.bos = c.codebook_size + c.actions  # token ids: codes, then actions, then the start token
        self.wte = nn.Embedding(c.codebook_size + c.actions + 1, c.n_embd)
        self.wpe = nn.Embedding(c.seq_len, c.n_embd)
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.n_layer))
        self.ln_f = nn.LayerNorm(c.n_embd, bias=c.bias)
        self.head = nn.Linear(c.n_embd, c.codebook_size, bias=False)
        init_gpt_weights(self, c.n_layer)

    def sequence(self, codes: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Frames' codes ``(B, t, h, w)`` and the actions after them ``(B, t)`` -> tokens ``(B, t (hw + 1))``: each frame
        after its control (the start token, then the action after the frame before; the last action is unused)."""
        b, t = codes.shape[:2]
        ctrl = torch.cat([torch.full((b, 1), self.bos, dtype=torch.long, device=codes.device),
                          actions[:, : t - 1].long() + self.config.codebook_size], 1)
        return torch.cat([ctrl[:, :, None], codes.reshape(b, t, -1).long()], 2).reshape(b, -1)

    def _run(self, tokens: torch.Tensor, pos: int, cache: KVCache | None = None) -> torch.Tensor:
        x = self.drop(self.wte(tokens) + self.wpe.weight[pos : pos + tokens.shape[1]])
        for i, block in enumerate(self.blocks):
            x = block(x, None if cache is None else (cache.k[i], cache.v[i]), pos)
        return self.head(self.ln_f(x))

    def _check(self, codes: torch.Tensor, actions: torch.Tensor, most: int) -> None:
        c = self.config
        if codes.ndim != 4 or tuple(codes.shape[2:]) != (c.height, c.width) or not 1 <= codes.shape[1] <= most:
            raise ValueError(f"expected code maps (B, 1..{most}, {c.height}, {c.width}), got {tuple(codes.shape)}")
        if actions.shape != codes.shape[:2]:
            raise ValueError(f"expected one action per frame {tuple(codes.shape[:2])}, got {tuple(actions.shape)}")

    def logits(self, codes: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits ``(B, t, hw, K)`` of every frame's codes given what precedes them in the sequence, for
        ``t <= T`` frames ``(B, t, h, w)`` and their actions ``(B, t)``."""
        self._check(codes, actions, self.config.frames)
        seq = self.sequence(codes, actions)
        f, b, t = self.config.frame_len, codes.shape[0], codes.shape[1]
        logits = self._run(seq[:, :-1], 0)  # input j predicts token j + 1
        logits = torch.cat([logits, logits[:, :1]], 1).view(b, t, f, -1)  # row j of block i predicts token i f + j + 1
        return logits[:, :, : f - 1]  # the code targets: tokens i f + 1 .. i f + hw

    def forward(self, codes: torch.Tensor, actions: torch.Tensor) -> VideoOutput:
        """Windows of ``T`` frames' codes ``(B, T, h, w)`` and their actions ``(B, T)``."""
        self._check(codes, actions, self.config.frames)
        seq = self.sequence(codes, actions)
        logits = self._run(seq[:, :-1], 0)
        f = self.config.frame_len
        is_code = torch.arange(1, seq.shape[1], device=seq.device) % f != 0  # targets that are codes (not controls)
        nll = F.cross_entropy(logits[:, is_code].transpose(1, 2).float(), seq[:, 1:][:, is_code], reduction="none")  # (B, n)
        later = nll[:, f - 1 :]  # the codes of frames 1..: the first frame has no context
        bits = later.sum(1) / math.log(2)
        return VideoOutput(loss=nll.mean(), bits_per_code=bits.mean().detach() / max(later.shape[1], 1), nll_bits=bits.detach())

    def new_cache(self, batch: int) -> KVCache:
        c, w = self.config, self.wte.weight
        shape = (c.n_layer, batch, c.n_head, c.seq_len, c.n_embd // c.n_head)
        return KVCache(torch.zeros(shape, device=w.device, dtype=w.dtype), torch.zeros(shape, device=w.device, dtype=w.dtype), 0)

    @torch.no_grad()
    def next_frame(self, codes: torch.Tensor, actions: torch.Tensor, generator: torch.Generator | None = None,
                   temperature: float = 1.0, top_k: int = 0, use_cache: bool = True) -> torch.Tensor:
        """The next frame's code map ``(B, h, w)`` drawn given up to ``T - 1`` frames ``(B, c, h, w)`` and the actions
        after each ``(B, c)`` (the last one leads to the drawn frame). ``use_cache=False`` recomputes the whole prefix for
        every code (the oracle the cached path is tested against)."""
        self._check(codes, actions, self.config.frames - 1)
        b, hw = codes.shape[0], self.config.height * self.config.width
        prefix = self.sequence(torch.cat([codes, codes[:, :1]], 1), torch.cat([actions, actions[:, :1]], 1))[:, :-hw]
        out = torch.empty(b, hw, dtype=torch.long, device=codes.device)
        cache = self.new_cache(b) if use_cache else None
        logits = self._run(prefix, 0, cache)[:, -1]
        for i in range(hw):
            out[:, i] = sample_from(logits.float(), generator, temperature=temperature, top_k=top_k)
            if i + 1 < hw:
                if use_cache:
                    logits = self._run(out[:, i : i + 1], prefix.shape[1] + i, cache)[:, -1]
                else:
                    logits = self._run(torch.cat([prefix, out[:, : i + 1]], 1), 0)[:, -1]
        return out.view(b, self.config.height, self.config.width)

    @torch.no_grad()
    def rollout(self, context: torch.Tensor, actions: torch.Tensor, generator: torch.Generator | None = None,
                temperature: float = 1.0, top_k: int = 0) -> torch.Tensor:
        """Frames ``(B, n, h, w)`` generated after real ``context`` frames ``(B, c, h, w)`` under ``actions (B, c + n - 1)``
        (``actions[:, i]``: the action after frame ``i``, counting the context's frames first): each new frame is drawn
        from the last ``T - 1`` frames, real or generated, and the actions between."""
        c, keep = context.shape[1], self.config.frames - 1
        n = actions.shape[1] - c + 1
        if n < 1:
            raise ValueError(f"expected at least {c} actions after {c} context frames, got {actions.shape[1]}")
        frames = context
        for t in range(c, c + n):
            lo = max(0, t - keep)
            new = self.next_frame(frames[:, lo:t], actions[:, lo:t], generator, temperature, top_k)
            frames = torch.cat([frames, new[:, None]], 1)
        return frames[:, c:]
