"""Per-resblock gradient scaling for fp16 training (DALL-E: Ramesh et al. 2021, section 2.4 and appendix D).

Why: with one loss scale (``torch.amp.GradScaler``) the scale must suit every layer at once. In a deep transformer
the gradients of the first resblocks are orders of magnitude smaller than those of the last, so a scale low enough
that the last blocks do not overflow lets the first blocks' gradients underflow to zero in fp16. DALL-E keeps one
scale per resblock instead: the gradient flowing back out of resblock ``k + 1`` into resblock ``k`` is multiplied by
``s_k / s_{k+1}``, so inside block ``k`` every gradient carries the scale ``s_k``, and each scale backs off (halves)
when its own block overflows and grows after ``growth_interval`` clean steps, independently of the others.

:class:`BlockGradScaler` has ``torch.amp.GradScaler``'s interface (``scale``, ``unscale_``, ``step``, ``update``,
``state_dict``), so the Trainer uses either; a task chooses it (:meth:`vqvae.core.task.Task.grad_scaler`). Segments:
the parameters before the first block (embeddings) carry ``s_0``, block ``k``'s carry ``s_k``, those after the last
block (final norm, heads) the loss's scale ``s_L``. Unscaling divides each segment by its own scale, so the gradients
the optimizer sees are the unscaled ones (tested against plain fp32 backward). Like ``GradScaler`` with an unfused
optimizer, deciding to skip a step reads the overflow flags back to the host: the fp16 path is not the sync-free one.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class _ScaleGrad(torch.autograd.Function):
    """Identity forward; the backward multiplies the incoming gradient by ``ratio`` (a 0-d tensor)."""

    @staticmethod
    def forward(ctx, x, ratio):
        ctx.save_for_backward(ratio)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        (ratio,) = ctx.saved_tensors
        return grad * ratio.to(grad.dtype), None


class BlockGradScaler:
    """One dynamic gradient scale per resblock of ``blocks`` (and one for the loss), for fp16 training.

    ``pre``: the parameters used before the first block (they carry the first block's scale); every other parameter
    of ``model`` that is in no block comes after the last one and carries the loss's scale."""

    def __init__(self, model: nn.Module, blocks: Sequence[nn.Module], pre: Sequence[nn.Parameter], device,
                 init_scale: float = 2.0**13, growth_factor: float = 2.0, backoff_factor: float = 0.5,
                 growth_interval: int = 2000, enabled: bool = True):
        self.enabled = enabled
        self.growth_factor, self.backoff_factor, self.growth_interval = growth_factor, backoff_factor, growth_interval
        n = len(blocks)
        self.scales = torch.full((n + 1,), float(init_scale), device=device)  # s_0 .. s_{n-1}, s_n for the loss
        self.good = torch.zeros(n + 1, dtype=torch.int64, device=device)
        self.found_inf = torch.zeros(n + 1, device=device)
        in_blocks = [list(b.parameters()) for b in blocks]
        seen = {id(p) for ps in in_blocks for p in ps} | {id(p) for p in pre}
        post = [p for p in model.parameters() if id(p) not in seen]
        self.segments = [list(pre) + in_blocks[0], *in_blocks[1:], post] if n else [list(pre) + post]
        self._unscaled = False
        if enabled:
            for k, block in enumerate(blocks):
                block.register_forward_hook(self._hook(k))

    def _hook(self, k: int):
        def hook(module, args, out):
            if not torch.is_grad_enabled():
                return out
            return _ScaleGrad.apply(out, self.scales[k] / self.scales[k + 1])  # what reaches block k carries s_k
        return hook

    # -- GradScaler's interface ------------------------------------------------------------------
    def is_enabled(self) -> bool:
        return self.enabled

    def get_scale(self) -> float:
        """The loss's scale (the last block's and the heads')."""
        return float(self.scales[-1])

    def scale(self, loss: torch.Tensor) -> torch.Tensor:
        self._unscaled = False
        return loss * self.scales[-1].to(loss.dtype) if self.enabled else loss

    def unscale_(self, optimizer=None) -> None:
        """Divide each segment's gradients by its scale and note, per segment, whether any is inf or NaN."""
        if not self.enabled or self._unscaled:
            return
        self.found_inf.zero_()
        inv = 1.0 / self.scales
        for k, params in enumerate(self.segments):
            grads = [p.grad for p in params if p.grad is not None]
            if grads:
                torch._amp_foreach_non_finite_check_and_unscale_(grads, self.found_inf[k : k + 1], inv[k : k + 1])
        self._unscaled = True

    def step(self, optimizer) -> bool:
        """Unscale (if not done) and step, unless some block overflowed: then the step is skipped. Returns whether
        it stepped."""
        if not self.enabled:
            optimizer.step()
            return True
        self.unscale_(optimizer)
        if bool(self.found_inf.any()):
            return False
        optimizer.step()
        return True

    def update(self) -> None:
        """Back off each overflowing block's scale, grow each scale after ``growth_interval`` clean steps."""
        if not self.enabled:
            return
        bad = self.found_inf > 0
        self.good = torch.where(bad, torch.zeros_like(self.good), self.good + 1)
        grow = self.good >= self.growth_interval
        self.scales = torch.where(bad, self.scales * self.backoff_factor, torch.where(grow, self.scales * self.growth_factor, self.scales))
        self.good = torch.where(grow, torch.zeros_like(self.good), self.good)
        self._unscaled = False

    def state_dict(self) -> dict:
        return {"scales": self.scales.tolist(), "good": self.good.tolist()}

    def load_state_dict(self, state: dict) -> None:
        if len(state.get("scales", [])) != self.scales.numel():
            raise ValueError(f"a per-block gradient scaler state for {len(state.get('scales', []))} scales, "
                             f"this model has {self.scales.numel()}")
        self.scales = torch.tensor(state["scales"], dtype=self.scales.dtype, device=self.scales.device)
        self.good = torch.tensor(state["good"], dtype=self.good.dtype, device=self.good.device)
