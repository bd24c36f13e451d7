"""Handlers of ``eval`` and ``reconstruct`` on second-stage runs, ``eval`` on probe runs, and ``vqvae world train`` and
``vqvae world rollout`` (the video model)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from vqvae.data.images import MAX_PIXELS, read_image, write_image
from vqvae.priors.codes import dataset_codes, fingerprint, load_prior
from vqvae.world import inference
from vqvae.core import checkpoint
from vqvae.core.errors import VQVAEError
from vqvae.core.handlers import run_args
from vqvae.core.runs import train as train_run
from vqvae.data import doom
from vqvae.world import rollout as rollouts
from vqvae.world.recipes import VideoRecipe
from vqvae.core.task import load_split, raw
from vqvae.world.probe import read_errors
from vqvae.world.tasks import evaluate_stage2, probe_summary, summary


def evaluate(args: argparse.Namespace) -> dict:
    """``vqvae eval RUN``: the NLL of the tokenizer's test code maps with their own and other maps' latents."""
    cfg, model, tok_cfg, tok = load_prior(args.run)
    codes = dataset_codes(cfg.tokenizer.path, tok_cfg, tok, fingerprint(tok_cfg, tok), args.split, data_root=args.data_root).images
    m = {"run": str(args.run), "split": args.split, **evaluate_stage2(model, codes)}
    print(json.dumps(m, indent=2) if args.json else summary(m))
    return m


@torch.no_grad()
def reconstruct(args: argparse.Namespace) -> list[Path]:
    """Frames in, same-named PNG second-stage reconstructions out (one draw of the decoder each, ``--seed``)."""
    cfg, model, tok_cfg, tok = load_prior(args.run)
    g = torch.Generator().manual_seed(args.seed)
    written = []
    for p in args.images:
        x = read_image(p, channels=tok_cfg.model.in_channels, max_pixels=args.max_pixels or MAX_PIXELS)
        y = inference.reconstruct_frames(model, tok_cfg, tok, x[None], g)[0]
        dest = Path(args.out) / (Path(p).stem + ".png")
        write_image(dest, y)
        written.append(dest)
        print(f"{p} -> {dest}")
    return written




def evaluate_probe(args: argparse.Namespace) -> dict:
    """``vqvae eval PROBE``: position and heading errors on a split of the run's doom episodes."""
    cfg, model = checkpoint.load_run(args.run)
    ds = load_split(cfg, args.split, args.data_root)
    m = {"run": str(args.run), "split": args.split, **read_errors(raw(model), ds.images, ds.labels)}
    print(json.dumps(m, indent=2) if args.json else probe_summary(m))
    return m


def train_video(args: argparse.Namespace) -> dict:
    return train_run(VideoRecipe(run_args(args), args.tokenizer, args.config))


def parse_start(text: str) -> tuple[int, int]:
    ep, _, step = text.partition(":")
    if not (ep.isdigit() and step.isdigit()):
        raise VQVAEError(f"--start is EPISODE:STEP (two whole numbers, e.g. 0:50), got {text!r}")
    return int(ep), int(step)


@torch.no_grad()
def rollout(args: argparse.Namespace) -> dict:
    """``vqvae world rollout RUN --start E:S --actions "F F L"``: frames generated from step S of episode E under the
    actions, beside the frames the game shows under them, as a GIF; per step the PSNR of both against the truth."""
    cfg, video, tok_cfg, tok = load_prior(args.run)
    if cfg.arch != "video":
        raise VQVAEError(f"{args.run} is a {cfg.arch} run, not a video model (train one with: vqvae world train --tokenizer RUN)")
    ep, step = parse_start(args.start)
    acts = doom.parse_actions(args.actions)
    if step >= doom.STEPS:
        raise VQVAEError(f"--start's step must be below the episodes' {doom.STEPS} frames, got {step}")
    root = args.data_root or tok_cfg.data.root
    rec = doom.episode(ep, tok_cfg.data.scenario, root)
    truth = rollouts.true_rollout(tok_cfg.data.scenario, ep, step, rec["actions"], acts)
    size, keep = rollouts.frame_size(tok_cfg), video.config.frames - 1
    context = rollouts.context_frames(rec["frames"], step, keep, size)
    lo = step - context.shape[1] + 1
    actions = torch.tensor([list(rec["actions"][lo:step]) + acts])
    gen = rollouts.generate(video, tok_cfg, tok, context, actions, torch.Generator().manual_seed(args.seed), args.temperature)[0]
    true = rollouts.context_frames(truth["frames"], len(acts), len(acts) + 1, size)[0]  # start frame + n true frames
    path = rollouts.write_gif(true, torch.cat([true[:1], gen]), acts, args.out)
    scores = rollouts.horizon_scores(true[None, 1:], gen[None], true[:1])
    print(f"{len(acts)} frames from episode {ep} step {step} -> {path}")
    print("PSNR per step (model / copy the start frame): " + ", ".join(f"{a:.1f}/{b:.1f}" for a, b in zip(scores["psnr"], scores["copy_psnr"])))
    return {"gif": str(path), **scores}
