"""A plain PyTorch training loop (nanoGPT style), split into a testable Trainer.

Data sets are small, so they live in memory as uint8 tensors on the training
device and batches are gathered by index: no DataLoader, never input-bound.
Batch ``s`` is a deterministic function of ``(seed, s)`` (a fresh permutation
per epoch), so a resumed run sees exactly the batches an uninterrupted one
would; together with the saved optimizer and RNG state, resuming reproduces
the uninterrupted run bit for bit on CPU.

Logs go to ``metrics.jsonl`` (one JSON object per line, ``kind`` = train or
eval) and TensorBoard (``tb/``). Checkpoints are written every
``train.ckpt_every`` steps, every ``train.ckpt_minutes`` minutes and at the
end, atomically (:mod:`vqvae.core.checkpoint`).

**A step never waits for the device** except on logging steps (every ``train.log_every``): the logged values
accumulate on the device and are read back once per record (a record holds their means since the previous one);
the optimizer is the fused one; the finite-loss check is a device-side flag (with the first bad step) read on
logging steps and before every evaluation and checkpoint. A non-finite loss therefore stops the run at the next
of those, naming the step; nothing is written after it, so the last good checkpoint is kept.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from pathlib import Path

import torch
from torch.distributed.algorithms.ddp_comm_hooks import powerSGD_hook as powersgd
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm import tqdm

from vqvae import registry
from vqvae.core import checkpoint, dist
from vqvae.core.config import RunConfig
from vqvae.core.errors import TrainingDiverged, VQVAEError
from vqvae.core.files import atomic_write, remove_stale_temps
from vqvae.core.finetune import freeze, init_weights_from
from vqvae.core.meter import Meter
from vqvae.core.pace import ThreadTuner
from vqvae.data.augment import dvae_train_crop, random_crop
from vqvae.data.sets import TensorSet


def pick_device(name: str = "auto") -> torch.device:
    if name != "auto":
        if name.startswith("cuda") and not torch.cuda.is_available():
            raise VQVAEError(f"train.device={name} but CUDA is not available; use auto or cpu")
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


class BatchSampler:
    """Batch ``step`` = slice of a per-epoch permutation seeded by ``(seed, epoch)``."""

    def __init__(self, n: int, batch_size: int, seed: int):
        self.n, self.bs, self.seed = n, min(batch_size, n), seed
        self.per_epoch = n // self.bs
        self._epoch, self._perm = -1, None

    def indices(self, step: int) -> torch.Tensor:
        epoch, i = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perm, self._epoch = torch.randperm(self.n, generator=g), epoch
        return self._perm[i * self.bs : (i + 1) * self.bs]


class Trainer:
    """Trains ``cfg.arch`` on ``train_set``, evaluating on ``test_set``, in ``run_dir``.

    ``train_set``/``test_set`` have ``images`` (inputs: uint8 images or code
    maps) and ``labels`` (or ``None``); the task for ``cfg.arch``
    (:meth:`vqvae.registry.task_for`) turns a batch into a loss and evaluates the model.
    """

    def __init__(self, cfg: RunConfig, run_dir: str | Path, train_set: TensorSet, test_set: TensorSet, resume: bool = False, progress: bool = True):
        self.cfg, self.run_dir, self.progress = cfg, Path(run_dir), progress
        t = cfg.train
        if t.threads > 0:
            torch.set_num_threads(t.threads)
        self.distributed = dist.init_from_env()
        self.device = torch.device("cuda", dist.local_rank()) if self.distributed and torch.cuda.is_available() else pick_device(t.device)
        if t.batch_size % dist.world_size():
            raise VQVAEError(f"train.batch_size={t.batch_size} (the global batch) must divide by the {dist.world_size()} processes")
        self.task = registry.task_for(cfg.arch)
        self.task.prepare(cfg, train_set)
        torch.manual_seed(t.seed)
        self.model = registry.create_model(cfg.arch, cfg.model)
        if t.init_from and not (resume and (self.run_dir / checkpoint.STATE).is_file()):  # a resumed run has its own weights
            init_weights_from(self.model, cfg, t.init_from)
        self.frozen = freeze(self.model, t.freeze, cfg.arch)
        self.model = self.model.to(self.device)
        self._speed_up(t)
        fused = self.device.type in ("cuda", "cpu")  # the fused Adam reads no step count back to the host
        opt_cls = torch.optim.AdamW if t.weight_decay else torch.optim.Adam
        self._trainable = [p for p in self.model.parameters() if p.requires_grad]
        lr = torch.tensor(t.lr, device=self.device) if self._compiled_update is not None and fused else t.lr
        self.optimizer = opt_cls(self._trainable, lr=lr, weight_decay=t.weight_decay, **({"fused": True} if fused else {}))
        self.train_x, self.train_y = _on(train_set.images, self.device), _on(train_set.labels, self.device)
        self.test_x, self.test_y = _on(test_set.images, self.device), _on(test_set.labels, self.device)
        self.sampler = BatchSampler(len(train_set), t.batch_size, t.seed)
        self.step = 0
        self.elapsed_before, self._started = 0.0, None  # seconds trained by earlier invocations; this one's start
        self.best_eval: dict = {}
        # fp16 needs loss scaling (its range is narrow); bf16 and fp32 do not.
        self.scaler = self.task.grad_scaler(self.model, self.device, t.amp == "fp16")
        if dist.is_main():  # the one process that writes the run directory
            self.run_dir.mkdir(parents=True, exist_ok=True)
        if resume and dist.is_main():
            remove_stale_temps(self.run_dir)  # torn writes of a killed run, even one killed before its first state
        if resume and (self.run_dir / checkpoint.STATE).is_file():
            self.step, extra = checkpoint.load_train_state(self.run_dir, self.model, self.optimizer)
            for g in self.optimizer.param_groups:  # the state stores the learning rate as a number
                g["lr"] = torch.tensor(float(g["lr"]), device=self.device) if torch.is_tensor(lr) else float(g["lr"])
            if extra.get("grad_scaler"):
                self.scaler.load_state_dict(extra["grad_scaler"])
            self.elapsed_before = float(extra.get("elapsed_seconds", 0.0))
            if dist.is_main():
                self._truncate_metrics(self.step)
        elif resume:
            tqdm.write(f"no training state in {self.run_dir}; starting from step 0")
        if dist.is_main():
            checkpoint.save_config(self.run_dir, cfg)
        self._writer = None
        self.meter = Meter()  # logged values summed on the device between records
        self._bad_step = torch.full((), -1, dtype=torch.int64, device=self.device)  # the first step with a non-finite loss
        self._step_count = torch.tensor(self.step, dtype=torch.int64, device=self.device)  # self.step, on the device
        self.powersgd = None  # the PowerSGD hook's state (its low-rank factors), with --train.powersgd_rank
        self.ddp = self._wrap_ddp() if self.distributed else None

    def _speed_up(self, t) -> None:
        """GPU throughput options. ``channels_last`` stores image nets NHWC. ``compile`` compiles the whole training
        step, :meth:`update` (forward, loss, backward, the fused optimizer, the codebook's EMA update and restarts),
        after the first steps (k-means initialisation runs eagerly); ``reduce-overhead`` puts its graphs in CUDA
        graphs. The learning rate is then a device tensor the step reads, so a changing schedule recompiles nothing.
        Logging steps (costlier logs) run eagerly. Under torchrun the modules the task names are compiled instead
        (``nn.Module.compile``, so checkpoint keys do not change), leaving DDP's hooks and collectives eager."""
        self._channels_last = t.channels_last and self.task.images
        if self._channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self._compiled_update = None
        self._eager_steps = 1 + max((getattr(m, "kmeans_batches", 0) for m in self.model.modules()), default=0)
        if t.compile != "none":
            mode = None if t.compile == "default" else t.compile
            if self.distributed:
                for m in self.task.compile_targets(self.model):
                    m.compile(mode=mode)
            else:
                self._compiled_update = torch.compile(self.update, mode=mode)

    def _wrap_ddp(self):
        """DistributedDataParallel over the model: gradients averaged over ranks; buffers are not
        broadcast because the quantizers keep them identical themselves (all-reduced EMA
        statistics, broadcast k-means and restarts). Optional PowerSGD compression (Vogels et al.
        2019), which DALL-E used to cut gradient traffic."""
        ids = [self.device.index] if self.device.type == "cuda" else None
        ddp = DDP(self.model, device_ids=ids, broadcast_buffers=False)
        if self.cfg.train.powersgd_rank:
            state = powersgd.PowerSGDState(process_group=None, matrix_approximation_rank=self.cfg.train.powersgd_rank,
                                           start_powerSGD_iter=2)
            ddp.register_comm_hook(state, powersgd.powerSGD_hook)
            self.powersgd = state
        return ddp

    # -- helpers -----------------------------------------------------------
    def planned_step(self) -> float:
        """Where the schedule stands: the step, or further along when the wall-clock budget runs ahead of it.

        A run with ``train.minutes`` plans its warm-up and decay in fractions of whichever budget binds: at a
        fraction f of the time it is at least at step ⌊f · ``train.steps``⌋. On a machine fast enough to finish the
        steps in time this is the step itself (bit-reproducible: the clock moves the schedule by whole steps only); on a slow or busy one the schedule follows the
        clock, so a run stopped by its budget has still warmed up and decayed."""
        t = self.cfg.train
        if not t.minutes:
            return float(self.step)
        return float(max(self.step, math.floor(self.elapsed() / (60 * t.minutes) * t.steps)))  # whole steps: see above

    def elapsed(self) -> float:
        """Seconds of training so far, over every invocation of a resumed run."""
        return self.elapsed_before + (time.monotonic() - self._started if self._started is not None else 0.0)

    def lr_at(self, step: float) -> float:
        """The learning rate at (planned) step ``step``: linear warm-up, then constant or a cosine decay to 0."""
        t = self.cfg.train
        if t.warmup_steps and step < t.warmup_steps:
            return t.lr * min(1.0, (step + 1) / t.warmup_steps)
        if t.lr_schedule == "cosine":
            frac = (step - t.warmup_steps) / max(1, t.steps - t.warmup_steps)
            return t.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))
        return t.lr

    def _autocast(self):
        if self.cfg.train.amp in ("bf16", "fp16"):
            return torch.autocast(self.device.type, dtype=torch.bfloat16 if self.cfg.train.amp == "bf16" else torch.float16)
        return contextlib.nullcontext()

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Batch ``step``: inputs and labels (``None`` for unlabelled data). Under torchrun each rank
        takes its contiguous share of the global batch."""
        idx = self.sampler.indices(step)
        if self.distributed:
            idx = idx.view(dist.world_size(), -1)[dist.rank()]
        idx = idx.to(self.device)
        x = self.train_x[idx]
        seed = self.cfg.train.seed * 7919 + step  # augmentation: a function of (seed, step)
        if self.cfg.data.augment == "dalle" and self.task.images:  # DALL-E stage 1 (vqvae.data.augment), flips included:
            g = torch.Generator().manual_seed(seed)  # a random resize per image, on the host (the one augmentation that is)
            x = torch.stack([dvae_train_crop(xi, self.cfg.data.crop, g) for xi in x.cpu()]).to(self.device)
        else:
            g = torch.Generator(device=self.device).manual_seed(seed)  # on the device: no host round trip
            if self.cfg.data.hflip and self.task.images:
                flip = torch.rand(x.shape[0], generator=g, device=self.device) < 0.5
                x = torch.where(flip[:, None, None, None], x.flip(-1), x)
            if self.cfg.data.crop:
                x = random_crop(x, self.cfg.data.crop, g)
        if self._channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, None if self.train_y is None else self.train_y[idx]

    def _log(self, record: dict) -> None:
        if not dist.is_main():
            return
        with open(self.run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.run_dir / "tb"))
        for k, v in record.items():
            if k not in ("step", "kind") and isinstance(v, (int, float)):
                self._writer.add_scalar(f"{record['kind']}/{k}", v, record["step"])

    def _truncate_metrics(self, step: int) -> None:
        """Drop log lines written after the checkpoint we resume from."""
        path = self.run_dir / "metrics.jsonl"
        if path.is_file():
            keep = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln).get("step", 0) <= step]
            atomic_write(path, "".join(ln + "\n" for ln in keep).encode())

    def save(self) -> None:
        self.check_finite()  # never write a diverged state over the last good one
        if dist.is_main():
            extra = {"elapsed_seconds": self.elapsed()}
            if self.scaler.is_enabled():
                extra["grad_scaler"] = self.scaler.state_dict()
            checkpoint.save_train_state(self.run_dir, self.model, self.optimizer, self.step, extra)
            checkpoint.save_model(self.run_dir, self.model, self.step)

    def _bar(self) -> tqdm:
        """The progress bar: steps against ``train.steps``, or, with a wall-clock budget, seconds against it
        (the step count in front), so it never promises a finish that the budget will cut short."""
        t, off = self.cfg.train, not (self.progress and dist.is_main())
        if not t.minutes:
            return tqdm(total=t.steps, initial=self.step, desc="train", disable=off, dynamic_ncols=True)
        return tqdm(total=round(60 * t.minutes), initial=min(round(self.elapsed_before), round(60 * t.minutes)), desc="train",
                    disable=off, dynamic_ncols=True,
                    bar_format="{desc}{percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s of the budget [{elapsed}{postfix}]")

    def _advance(self, bar: tqdm) -> None:
        if not self.cfg.train.minutes:
            bar.update(1)
            return
        bar.set_description(f"train step {self.step}/{self.cfg.train.steps}", refresh=False)
        bar.update(min(self.elapsed(), bar.total) - bar.n)

    def _out_of_time(self, deadline: float, log_now: bool) -> bool:
        """Past the wall-clock budget: decided together under torchrun, so every rank stops at the same step (a
        collective, so only on logging steps there; alone, every step, which costs no device sync)."""
        if deadline == float("inf") or (self.distributed and not log_now):
            return False
        return dist.any_true(time.monotonic() >= deadline, self.device)

    def check_finite(self) -> None:
        """Raise :class:`TrainingDiverged` if a step since the start had a non-finite loss (on any rank): one read of
        a device flag, done on logging steps and before evaluations and checkpoints, not every step."""
        bad = int(self._bad_step)
        if dist.any_true(bad >= 0, self.device):  # every rank stops together
            at = f"at step {bad + 1}" if bad >= 0 else "on another process"
            raise TrainingDiverged(f"the loss became non-finite {at} (noticed at step {self.step}); stopped, the last good "
                                   f"checkpoint in {self.run_dir} is kept (resume with a lower train.lr)")

    # -- the loop ----------------------------------------------------------
    def train_step(self, x: torch.Tensor, y: torch.Tensor | None = None, detail: bool = True) -> dict:
        """One optimizer step on batch ``(x, y)``; ``detail`` adds the costlier logs (PSNR).

        Returns the step's logs: 0-d device tensors (the loss, the task's values) and plain numbers (the learning
        rate). Nothing here waits for the device: a non-finite loss is flagged on it (see :meth:`check_finite`)."""
        self.model.train()
        for m in self.frozen:  # fixed parts keep their inference behaviour (no EMA, k-means, restarts, dropout)
            m.eval()
        lr = self.lr_at(self.planned_step())
        for g in self.optimizer.param_groups:
            if torch.is_tensor(g["lr"]):
                g["lr"].fill_(lr)  # a device write: no sync, and the compiled step reads it
            else:
                g["lr"] = lr
        compiled = self._compiled_update is not None and not detail and self.step >= self._eager_steps
        logs = (self._compiled_update if compiled else self.update)(x, y, detail)
        self.step += 1
        return {**logs, "lr": lr}

    def update(self, x: torch.Tensor, y: torch.Tensor | None, detail: bool = False) -> dict:
        """The step's tensor work, what ``train.compile`` compiles: forward and loss (with the codebook's EMA update
        and restarts inside the forward: one dynamo graph, tested), the finite-loss flag, backward, clipping and the
        optimizer (their own graphs: dynamo does not trace ``backward()``, and ``Optimizer.step`` breaks the graph on
        purpose). Nothing in it reads the device back. Host-side bookkeeping (the learning rate, the step count)
        stays in :meth:`train_step`."""
        with self._autocast():
            loss, extra = self.task.step(self.ddp or self.model, x, y, detail)
        bad = ~torch.isfinite(loss.detach()) & (self._bad_step < 0)
        self._bad_step.copy_(torch.where(bad, self._step_count, self._bad_step))
        self._step_count.add_(1)
        for p in self._trainable:  # zero_grad(set_to_none=True), written out so that dynamo traces it
            p.grad = None
        fp16 = self.cfg.train.amp == "fp16"  # loss scaling (GradScaler, which dynamo does not trace): fp16 only
        (self.scaler.scale(loss) if fp16 else loss).backward()
        if self.cfg.train.grad_clip:
            if fp16:
                self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self._trainable, self.cfg.train.grad_clip)
        if fp16:  # skips the step when gradients overflowed
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        return {"loss": loss.detach(), **{k: v.detach() if torch.is_tensor(v) else float(v) for k, v in extra.items()}}

    def evaluate(self, max_items: int = 0) -> dict:
        """Test metrics on the first ``max_items`` test items (0: all)."""
        n = max_items or self.test_x.shape[0]
        y = None if self.test_y is None else self.test_y[:n]
        return self.task.evaluate(self.model, self.test_x[:n], y, self.cfg.train.batch_size)

    def fit(self) -> dict:
        """Train until ``train.steps`` or ``train.minutes``; returns the final test metrics."""
        t = self.cfg.train
        start = self._started = time.monotonic()
        last_ckpt = start
        deadline = start + 60 * t.minutes - self.elapsed_before if t.minutes else float("inf")
        bar = self._bar()
        tuner = ThreadTuner() if t.threads == -1 else None
        try:
            while self.step < t.steps and not self._out_of_time(deadline, (self.step + 1) % t.log_every == 0):
                if tuner and (said := tuner.tick()) and self.progress and dist.is_main():
                    tqdm.write(said)
                log_now = (self.step + 1) % t.log_every == 0 or self.step == 0
                logs = self.train_step(*self.batch(self.step), detail=log_now)
                self.meter.add(logs)
                self._advance(bar)
                if log_now:
                    self.check_finite()
                    logs = self.meter.record(logs)
                    bar.set_postfix({k: f"{logs[k]:.4g}" for k in self.task.bar if k in logs})
                    self._log({"kind": "train", "step": self.step, "time": time.monotonic() - start, **logs})
                if t.eval_every and self.step % t.eval_every == 0:
                    self.check_finite()
                    self._log({"kind": "eval", "step": self.step, **self.evaluate(t.eval_images)})
                now = time.monotonic()
                if self.step % t.ckpt_every == 0 or now - last_ckpt > 60 * t.ckpt_minutes:
                    self.save()
                    last_ckpt = now
        except KeyboardInterrupt:
            self.save()  # Ctrl-C keeps everything up to the last finished step (if it is finite)
            tqdm.write(f"interrupted at step {self.step}; saved, continue with --resume")
            raise
        finally:
            bar.close()
        self.save()
        train_seconds = time.monotonic() - start
        self.task.show_progress = self.progress and dist.is_main()  # the final evaluation can take a while: show it
        final = {"kind": "eval", "step": self.step, "final": True, "train_seconds": train_seconds,
                 **self.evaluate(t.final_eval_images)}
        self._log(final)
        if self._writer is not None:
            self._writer.close()
        return final


def _on(t: torch.Tensor | None, device: torch.device) -> torch.Tensor | None:
    return None if t is None else t.to(device)
