"""The world family's measures (issue 24), as functions the benchmark and the tests call.

* :func:`stage2_probe`: what a second stage's reconstructions preserve, read by the position and heading probe from
  real frames, the first stage's reconstructions, the second stage's (drawn given each frame's three latents) and the
  second stage's given random latents.
* :func:`rollout_study`: rollouts of the video model from held-out episodes under their recorded actions, against the
  true frames at every step ahead (PSNR, SSIM), beside copying the last real frame; and the probe's reading of the
  generated frames' heading against the true one (within 15 degrees; the direction of each turn).
"""

from __future__ import annotations

import torch

from vqvae.core.task import tokenizer_task
from vqvae.data import doom
from vqvae.data.images import resize
from vqvae.world import inference
from vqvae.world.probe import heading_error, read_errors
from vqvae.world.rollout import generate, horizon_scores


def _at(frames: torch.Tensor, size: int) -> torch.Tensor:
    return frames if frames.shape[-1] == size else resize(frames, size)


@torch.no_grad()
def stage2_probe(stage2, tok_cfg, tok, probe, frames: torch.Tensor, variables: torch.Tensor, seed: int = 0) -> dict:
    """Probe errors (:func:`vqvae.world.probe.read_errors`) on ``frames`` (uint8 ``(N, 3, 84, 84)``) and on what the
    models make of them; frames are resized to the probe's input size (its config's ``data.image_size``)."""
    g = torch.Generator().manual_seed(seed)
    size = probe.input_size
    task = tokenizer_task(tok_cfg.arch, "the tokenizer")
    codes, latents = inference.encode_frames(stage2, tok_cfg, tok, frames)
    random = torch.randint(0, stage2.config.latent_codebook_size, latents.shape, generator=g).to(latents.device)
    made = {"real frames": frames, "first-stage reconstructions": task.decode(tok, codes.cpu()),
            "second-stage reconstructions": inference.decode_latents(stage2, tok_cfg, tok, latents, g),
            "second stage, random latents": inference.decode_latents(stage2, tok_cfg, tok, random, g)}
    return {k: read_errors(probe, _at(v, size), variables) for k, v in made.items()}


def turn_agreement(read: torch.Tensor, true: torch.Tensor, threshold: float = 5.0) -> tuple[int, int]:
    """Over consecutive frames where the true heading turned by more than ``threshold`` degrees, how many the read
    headings turn the same way: ``(agree, turns)``. ``read``, ``true``: ``(B, n)`` headings in degrees."""
    def signed(a):
        d = (a[:, 1:] - a[:, :-1]) % 360
        return torch.where(d > 180, d - 360, d)

    t, r = signed(true), signed(read)
    turns = t.abs() > threshold
    return int(((t.sign() == r.sign()) & turns).sum()), int(turns.sum())


@torch.no_grad()
def rollout_study(video, tok_cfg, tok, probe, eps: doom.Episodes, starts: list[int], horizon: int, seed: int = 0,
                  temperature: float = 1.0) -> dict:
    """Rollouts of ``horizon`` frames from each start of each episode of ``eps`` under the recorded actions."""
    size, keep = tok_cfg.data.image_size or doom.FRAME, video.config.frames - 1
    g = torch.Generator().manual_seed(seed)
    frames = torch.from_numpy(eps.frames)
    true, gen, last, var = [], [], [], []
    for s in starts:
        ctx = torch.stack([_at(frames[e, s - keep + 1 : s + 1], size) for e in range(frames.shape[0])])
        acts = torch.from_numpy(eps.actions[:, s - keep + 1 : s + horizon])
        gen.append(generate(video, tok_cfg, tok, ctx, acts, g, temperature))
        true.append(torch.stack([_at(frames[e, s + 1 : s + 1 + horizon], size) for e in range(frames.shape[0])]))
        last.append(ctx[:, -1])
        var.append(torch.from_numpy(eps.variables[:, s + 1 : s + 1 + horizon]))
    true, gen, last, var = torch.cat(true), torch.cat(gen), torch.cat(last), torch.cat(var)
    out = {"rollouts": int(true.shape[0]), "horizon": horizon, "starts": starts, "episodes": eps.index.tolist(),
           **horizon_scores(true, gen, last)}
    psize = probe.input_size
    b, n = true.shape[:2]
    read_gen = probe.read(_at(gen.flatten(0, 1), psize)).view(b, n, 3)
    read_true = probe.read(_at(true.flatten(0, 1), psize)).view(b, n, 3)
    within = heading_error(read_gen[..., 2], var[..., 2]) <= 15
    out["heading_within_15"] = [float(x) for x in within.float().mean(0)]
    out["heading_within_15_all"] = float(within.float().mean())
    out["heading_within_15_real"] = float((heading_error(read_true[..., 2], var[..., 2]) <= 15).float().mean())
    # the probe's own error cancels when the generated frames are read against its reading of the true frames
    out["heading_within_15_of_real_reading"] = float((heading_error(read_gen[..., 2], read_true[..., 2]) <= 15).float().mean())
    agree, turns = turn_agreement(read_gen[..., 2], var[..., 2])
    out["turn_direction_agree"], out["turns"] = agree / max(turns, 1), turns
    agree, _ = turn_agreement(read_true[..., 2], var[..., 2])
    out["turn_direction_agree_real"] = agree / max(turns, 1)
    out["samples"] = {"start": last[:4], "true": true[:4], "generated": gen[:4],  # the first start's rollouts
                      "actions": eps.actions[:4, starts[0] : starts[0] + horizon]}
    return out
