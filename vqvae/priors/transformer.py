"""A GPT-style autoregressive prior over VQ-VAE codes, with a KV cache for sampling.

Paper: van den Oord et al. 2017 ("Neural Discrete Representation Learning"),
section 3.2: once the VQ-VAE is trained, an autoregressive prior ``p(z)`` is fit
over its discrete latents and used for ancestral sampling (and for the bits of
the likelihood bound). The paper uses a PixelCNN (:mod:`vqvae.priors.pixelcnn`);
this module is the transformer alternative, written the way nanoGPT
(Karpathy, github.com/karpathy/nanoGPT, ``model.py``) writes GPT-2: pre-LayerNorm
blocks, one fused ``qkv`` Linear, ``F.scaled_dot_product_attention`` with
``is_causal``, a 4x GELU MLP, the output head tied to the code embedding, and
normal(0, 0.02) init with residual projections scaled by ``1/sqrt(2 n_layer)``.

Sequence (shared with every prior, :func:`vqvae.priors.sequence.to_sequence`): the
code map ``(B, H, W)`` or ``(B, G, H, W)`` in raster order, codebook fastest,
``L = H * W * G``. Teacher forcing shifts it right by one::

    input  t:  [start, z_0, z_1, ..., z_{L-2}]      (B, L) -> (B, L, C)
    output t:  logits of z_t given z_{<t}           (B, L, K)

The start token is a learned class embedding (``num_classes`` > 0) or one
learned unconditional start vector, so class conditioning costs nothing beyond
the first position (every later position attends to it).

Sampling is sequential, ``L`` steps. Without a cache each step re-runs the
whole prefix (``O(L^2)`` tokens of work in all); with :class:`KVCache` each step
runs one token and attends to the stored keys/values (``O(L)`` tokens). The
incremental API (:meth:`TransformerPrior.new_cache`, :meth:`~TransformerPrior.start`,
:meth:`~TransformerPrior.step`) is what an entropy codec needs: the same
per-position distributions, one position at a time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vqvae.core.errors import require
from vqvae.priors import decoding
from vqvae.priors.decoding import static_attention
from vqvae.priors.sequence import (PriorConfig, PriorOutput, check_labels, from_sequence, guide, positions, prior_loss, sample_from,
                                   sample_setup, to_sequence)


@dataclass
class TransformerConfig(PriorConfig):
    """A GPT over codes. Defaults: 6 layers x 256 wide, 8 heads (~4.9 M parameters at K = 512);
    the tokenizer fields (K, G, H, W) and classes come from :class:`PriorConfig`."""

    n_layer: int = 6
    n_head: int = 8
    n_embd: int = 256  # C, the residual width
    bias: bool = True  # biases in Linear and LayerNorm (nanoGPT's switch)
    # Classifier-free guidance (Ho & Salimans 2022): the share of training maps whose class is replaced by a learned
    # "no class" start token, so one model is both conditional and unconditional and sampling can use guidance > 1.
    label_dropout: float = 0.0

    def validate(self) -> None:
        super().validate()
        checks = [
            (1 <= self.n_layer <= 256, "model.n_layer must be in 1..256"),
            (self.n_head >= 1, "model.n_head must be >= 1"),
            (self.n_embd >= 1, "model.n_embd must be >= 1"),
            (self.n_embd % max(self.n_head, 1) == 0, f"model.n_embd ({self.n_embd}) must be divisible by model.n_head ({self.n_head})"),
            (0 <= self.label_dropout < 1, "model.label_dropout must be in [0, 1)"),
            (not self.label_dropout or self.num_classes, "model.label_dropout needs a class-conditional prior (--conditional)"),
        ]
        require(checks)


@dataclass
class KVCache:
    """Keys and values of the positions fed so far, preallocated for the whole sequence.

    k, v: ``(n_layer, B, n_head, L, head_dim)``; positions ``< pos`` are filled.
    pos: how many positions have been fed (0 before :meth:`TransformerPrior.start`,
        ``L`` when full). After feeding ``pos`` positions the model has returned
        the logits of code ``z_{pos-1}``.

    Preallocating avoids re-concatenating (copying) the cache at every step.
    """

    k: torch.Tensor
    v: torch.Tensor
    pos: int | torch.Tensor = 0  # a 0-d int64 device tensor in a static cache (see TransformerPrior.new_cache)

    @property
    def batch(self) -> int:
        return self.k.shape[1]

    @property
    def max_len(self) -> int:
        return self.k.shape[3]


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention (nanoGPT): one fused ``C -> 3C`` projection, SDPA, output projection."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        c = config
        self.n_head, self.head_dim = c.n_head, c.n_embd // c.n_head
        self.c_attn = nn.Linear(c.n_embd, 3 * c.n_embd, bias=c.bias)
        self.c_proj = nn.Linear(c.n_embd, c.n_embd, bias=c.bias)
        self.dropout = c.dropout
        self.resid_dropout = nn.Dropout(c.dropout)

    def forward(self, x: torch.Tensor, kv: tuple[torch.Tensor, torch.Tensor] | None = None, pos: int = 0,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        """``x (B, T, C) -> (B, T, C)``.

        Without ``kv``: the ``T`` positions attend causally among themselves
        (training, full recompute). With ``kv = (k, v)`` of shape ``(B, nh, L, hd)``
        (one layer of a :class:`KVCache`): ``x`` holds positions ``pos .. pos+T-1``;
        their keys/values are written into the cache and the queries attend to
        positions ``0 .. pos+T-1``. ``mask``: an explicit ``(L, L)`` bool pattern
        over the whole sequence (True = may attend; DALL-E's sparse patterns,
        :mod:`vqvae.text2image.masks`) used instead of plain causality.
        """
        b, t, c = x.shape
        q, k, v = self.c_attn(x).split(c, dim=2)
        q, k, v = (a.view(b, t, self.n_head, self.head_dim).transpose(1, 2) for a in (q, k, v))  # (B, nh, T, hd)
        p = self.dropout if self.training else 0.0
        if kv is not None and torch.is_tensor(pos):  # a static cache: every shape fixed, the position on the device
            return self.resid_dropout(self.c_proj(static_attention(q, k, v, kv, pos, mask, p).transpose(1, 2).reshape(b, t, c)))
        if mask is not None:
            if kv is not None:
                kc, vc = kv
                kc[:, :, pos : pos + t] = k
                vc[:, :, pos : pos + t] = v
                k, v = kc[:, :, : pos + t], vc[:, :, : pos + t]
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[pos : pos + t, : pos + t], dropout_p=p)
        elif kv is None:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        else:
            kc, vc = kv
            kc[:, :, pos : pos + t] = k
            vc[:, :, pos : pos + t] = v
            mask = None  # one query may see every stored position
            if t > 1:  # is_causal would align the mask top-left; the queries sit at the end
                mask = torch.arange(pos, pos + t, device=x.device)[:, None] >= torch.arange(pos + t, device=x.device)[None]
            y = F.scaled_dot_product_attention(q, kc[:, :, : pos + t], vc[:, :, : pos + t], attn_mask=mask, dropout_p=p)
        y = y.transpose(1, 2).contiguous().view(b, t, c)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    """``C -> 4C -> GELU -> C`` (GPT-2's feed-forward)."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    """Pre-LN residual block: ``x + attn(ln(x))``, then ``x + mlp(ln(x))`` (GPT-2 / nanoGPT)."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, kv=None, pos: int = 0, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), kv, pos, mask)
        return x + self.mlp(self.ln_2(x))


def init_gpt_weights(model: nn.Module, n_layer: int) -> None:
    """GPT-2's initialisation (nanoGPT): Linear and Embedding weights ~ N(0, 0.02), zero biases, and the
    residual projections (``c_proj``) scaled by ``1/sqrt(2 n_layer)``."""
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)
    for name, p in model.named_parameters():
        if name.endswith("c_proj.weight"):
            nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * n_layer))


class TransformerPrior(nn.Module):
    """Autoregressive prior ``p(z) = prod_t p(z_t | z_{<t}, class)`` over a tokenizer's codes.

    Embeddings (all ``(., C)``): ``wte`` ``(K, C)`` for codes, tied to the output
    head (nanoGPT); ``wse`` ``(max(num_classes, 1), C)`` for the start token (row
    ``y`` for class ``y``, row 0 when unconditional); ``row_emb (H, C)``,
    ``col_emb (W, C)`` and, when ``G > 1``, ``slot_emb (G, C)``.

    Position embedding choice: input ``t`` gets ``row[i] + col[j] + slot[g]`` of
    the code it must **predict**, ``z_t`` at ``(g, i, j)``, not of the code it
    carries (``z_{t-1}``). So each output knows exactly which cell and codebook
    it is predicting (including the jump to a new row and the first code, whose
    input is the start token), instead of inferring "the next one in raster
    order". Factorising into row and column tables (``H + W + G`` vectors instead
    of ``L``) shares what is learnt along rows and columns: the code above
    ``(i, j)`` has the same column embedding.
    """

    config_cls = TransformerConfig

    def __init__(self, config: TransformerConfig):
        super().__init__()
        config.validate()
        self.config = c = config
        self.wte = nn.Embedding(c.codebook_size, c.n_embd)
        self.wse = nn.Embedding(max(c.num_classes, 1) + (1 if c.label_dropout else 0), c.n_embd)  # + the "no class" row
        self.row_emb = nn.Embedding(c.height, c.n_embd)
        self.col_emb = nn.Embedding(c.width, c.n_embd)
        self.slot_emb = nn.Embedding(c.num_codebooks, c.n_embd) if c.num_codebooks > 1 else None
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.n_layer))
        self.ln_f = nn.LayerNorm(c.n_embd, bias=c.bias)
        self.lm_head = nn.Linear(c.n_embd, c.codebook_size, bias=False)
        self.lm_head.weight = self.wte.weight  # weight tying (Press & Wolf 2017; nanoGPT)
        # (row, col, slot) of each sequence position, in the config's order
        row, col, slot = positions(c)
        self.register_buffer("pos_row", row, persistent=False)
        self.register_buffer("pos_col", col, persistent=False)
        self.register_buffer("pos_slot", slot, persistent=False)
        init_gpt_weights(self, c.n_layer)

    # -- internals ---------------------------------------------------------------------------

    def _pos(self, start, t: int) -> torch.Tensor:
        """Position embeddings of the ``t`` codes predicted at positions ``start ..``: ``(t, C)`` (``start`` an int, or
        a 0-d device tensor for the static cache)."""
        at = start + torch.arange(t, device=self.pos_row.device) if torch.is_tensor(start) else slice(start, start + t)
        e = self.row_emb(self.pos_row[at]) + self.col_emb(self.pos_col[at])
        if self.slot_emb is not None:
            e = e + self.slot_emb(self.pos_slot[at])
        return e

    def _start_tok(self, labels: torch.Tensor | None, n: int) -> torch.Tensor:
        """Start-token embeddings ``(n, 1, C)``."""
        if labels is None:
            return self.wse.weight[:1].expand(n, -1)[:, None]
        return self.wse(labels)[:, None]

    def _run(self, x: torch.Tensor, pos: int, cache: KVCache | None = None, last_only: bool = False) -> torch.Tensor:
        """Token embeddings ``x (B, T, C)`` of positions ``pos .. pos+T-1`` -> logits ``(B, T, K)``
        (``(B, 1, K)`` with ``last_only``: nanoGPT's inference shortcut, the head on the last position only)."""
        x = self.drop(x + self._pos(pos, x.shape[1]))
        for i, block in enumerate(self.blocks):
            x = block(x, None if cache is None else (cache.k[i], cache.v[i]), pos)
        if last_only:
            x = x[:, -1:]
        return self.lm_head(self.ln_f(x))

    def _inputs(self, prefix: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """Codes ``z_0 .. z_{T-2}`` ``(B, T-1)`` -> inputs ``[start, z_0, ..]`` embedded, ``(B, T, C)``."""
        return torch.cat([self._start_tok(labels, prefix.shape[0]), self.wte(prefix)], dim=1)

    # -- training / likelihood -----------------------------------------------------------------

    def forward(self, codes: torch.Tensor, labels: torch.Tensor | None = None) -> PriorOutput:
        """Code maps ``(B, H, W)`` / ``(B, G, H, W)`` (+ labels ``(B,)``) -> :class:`PriorOutput`
        with logits ``(B, L, K)`` in sequence order, the mean loss in nats/code and ``nll_bits (B,)``."""
        seq = to_sequence(codes, self.config, values=not self.training)  # training data are checked when prepared
        labels = check_labels(labels, seq.shape[0], self.config, seq.device, values=not self.training)
        if self.training and self.config.label_dropout:  # classifier-free guidance: some maps learn the unconditional model
            drop = torch.rand(labels.shape, device=labels.device) < self.config.label_dropout
            labels = torch.where(drop, torch.full_like(labels, self.config.num_classes), labels)
        return prior_loss(self._run(self._inputs(seq[:, :-1], labels), 0), seq)

    def sequence_nll(self, seq: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Teacher-forced ``-log p(z_l | z_<l)`` in nats, ``(B, L)``, of sequences ``(B, L)`` in the prior's
        order or of their prefixes (``L <= seq_len``): one pass, what coding them would cost."""
        labels = check_labels(labels, seq.shape[0], self.config, seq.device)
        logits = self._run(self._inputs(seq[:, :-1], labels), 0)
        logits = logits.to(torch.promote_types(logits.dtype, torch.float32))  # fp32 at least; float64 stays float64
        return F.cross_entropy(logits.transpose(1, 2), seq, reduction="none")

    def prefix_logits(self, prefix: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(B, K)`` of code ``z_T`` given the prefix ``z_0 .. z_{T-1}`` ``(B, T)``, recomputed from
        scratch (no cache): one step of the uncached baseline. ``labels`` must already be checked."""
        return self._run(self._inputs(prefix, labels), 0, last_only=True)[:, 0]

    # -- incremental decoding (sampling, entropy coding) ----------------------------------------

    def new_cache(self, batch: int, static: bool = False) -> KVCache:
        """An empty :class:`KVCache` for ``batch`` sequences on the model's device and dtype; ``static``: its position
        is a device tensor and every step attends over the whole cache (:func:`static_attention`), for CUDA graphs."""
        c = self.config
        w = self.wte.weight
        shape = (c.n_layer, batch, c.n_head, c.seq_len, c.n_embd // c.n_head)
        pos = torch.zeros((), dtype=torch.long, device=w.device) if static else 0
        return KVCache(torch.zeros(shape, device=w.device, dtype=w.dtype), torch.zeros(shape, device=w.device, dtype=w.dtype), pos)

    @torch.no_grad()
    def start(self, cache: KVCache, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Feed the start token (class ``labels (B,)`` or unconditional) at position 0 of an empty
        ``cache``; returns the logits ``(B, K)`` of the first code ``z_0``."""
        if cache.pos != 0:
            raise ValueError(f"start() needs an empty cache, this one holds {cache.pos} positions")
        labels = check_labels(labels, cache.batch, self.config, self.wte.weight.device)
        return self._start(cache, labels)

    @torch.no_grad()
    def step(self, cache: KVCache, codes: torch.Tensor) -> torch.Tensor:
        """Feed code ``z_{t-1}`` ``(B,)`` at position ``t = cache.pos``; returns the logits ``(B, K)``
        of ``z_t`` (equal, up to float rounding, to ``forward(...).logits[:, t]``)."""
        c = self.config
        if cache.pos == 0:
            raise ValueError("call start() before step()")
        if cache.pos >= c.seq_len:
            raise ValueError(f"the cache is full: all {c.seq_len} codes have been predicted")
        codes = torch.as_tensor(codes, device=self.wte.weight.device)
        if codes.shape != (cache.batch,) or codes.dtype.is_floating_point:
            raise ValueError(f"expected integer codes of shape ({cache.batch},), got {codes.dtype} {tuple(codes.shape)}")
        if int(codes.min()) < 0 or int(codes.max()) >= c.codebook_size:
            raise ValueError(f"codes must lie in [0, {c.codebook_size}), got [{int(codes.min())}, {int(codes.max())}]")
        return self._step(cache, codes.long())

    def _start(self, cache: KVCache, labels: torch.Tensor | None) -> torch.Tensor:
        logits = self._run(self._start_tok(labels, cache.batch), cache.pos, cache)[:, 0]
        cache.pos += 1  # in place for a static cache's tensor
        return logits

    def _step(self, cache: KVCache, codes: torch.Tensor) -> torch.Tensor:
        logits = self._run(self.wte(codes)[:, None], cache.pos, cache)[:, 0]
        cache.pos += 1
        return logits

    @torch.no_grad()
    def sample(
        self,
        n: int,
        labels: torch.Tensor | None = None,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        generator: torch.Generator | None = None,
        use_cache: bool = True,
        guidance: float = 1.0,
        static: bool | None = None,
    ) -> torch.Tensor:
        """Ancestral sampling of ``n`` code maps -> int64 ``(n, *code_shape)`` on the model's device.

        ``labels``: ``(n,)`` or one class for all (conditional priors only).
        ``temperature``/``top_k``/``top_p``: :func:`vqvae.priors.sequence.filter_logits`.
        ``guidance`` = s != 1 (classifier-free guidance; a prior trained with ``label_dropout``): the logits are
        ``u + s (c - u)`` of the class's (c) and the "no class" start's (u), one batch of ``2n`` through the model.
        ``use_cache=False`` re-runs the whole prefix at every step (the baseline the
        cache is measured against; same draws for the same ``generator`` state). ``static`` (default: on CUDA): the
        static cache, its decoding step captured in a CUDA graph on CUDA (:mod:`vqvae.priors.decoding`), the draws
        from a device generator seeded once from ``generator``; on the CPU the same draws as the sliced cache.
        Runs in eval mode (no dropout) and restores the previous mode.
        """
        c = self.config
        device = self.wte.weight.device
        labels, filters = sample_setup(n, labels, c, device, temperature, top_k, top_p)
        guided = guidance != 1.0
        if guided and not c.label_dropout:
            raise ValueError("guidance needs a prior trained with model.label_dropout > 0 (it has no unconditional start)")
        if guided:
            labels = torch.cat([labels, torch.full_like(labels, c.num_classes)])
        m = 2 * n if guided else n
        was_training = self.training
        self.eval()
        try:
            seq = torch.zeros(m, c.seq_len, dtype=torch.long, device=device)
            static = use_cache and (device.type == "cuda" if static is None else static)
            cache = self.new_cache(m, static=static) if use_cache else None
            logits = self._start(cache, labels) if use_cache else self.prefix_logits(seq[:, :0], labels)
            if static:
                step = decoding.stepper(lambda z: self._step(cache, z), seq[:, 0], cache.pos, capture=device.type == "cuda")
                generator = decoding.on_device(generator, device)
            for t in range(c.seq_len):
                if guided:
                    logits = guide(logits, n, guidance)
                seq[:n, t] = sample_from(logits, generator, **filters)
                seq[n:, t] = seq[: m - n, t]  # the unconditional half follows the same codes
                if t + 1 < c.seq_len:
                    if static:
                        logits = step(seq[:, t])
                    else:
                        logits = self._step(cache, seq[:, t]) if use_cache else self.prefix_logits(seq[:, : t + 1], labels)
            seq = seq[:n]
        finally:
            self.train(was_training)
        return from_sequence(seq, c)
