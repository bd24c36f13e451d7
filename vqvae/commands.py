"""What each CLI command does, as plain functions (``vqvae.cli`` only parses).

Each takes already-parsed arguments, raises :class:`~vqvae.errors.VQVAEError`
for user mistakes, and prints its results.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np

from vqvae import checkpoint, dist, inference, plots
from vqvae.config import load_config, merge, parse_overrides
from vqvae.data import ImageSet, read_image, write_image
from vqvae.splits import is_audio, load_split
from vqvae.errors import VQVAEError
from vqvae.models import AUDIO_ARCHS


def _run_and_split(run: str, data: str | None, data_root: str | None, split: str):
    """A run's config and model, and a split of its dataset (or of ``data``, checked to fit the model)."""
    cfg, model = checkpoint.load_run(run)
    if data:
        cfg.data.name = data
    if data_root:
        cfg.data.root = data_root
    ds = load_split(cfg, split)
    want = getattr(cfg.model, "in_channels", 3)  # the scene reader reads RGB scenes
    if not is_audio(cfg) and ds.channels != want:
        raise VQVAEError(f"{ds.name} has {ds.channels} channels but the model expects {want}")
    return cfg, model, ds


def write_report(run_dir: Path, model, test: ImageSet, n: int = 32) -> dict:
    """Reconstruction grid, codebook-usage plot and loss curves of a run."""
    run_dir = Path(run_dir)
    x = test.images[:n]
    plots.save_reconstructions(x, inference.reconstruct(model, x), run_dir / "reconstructions.png")
    counts = inference.code_counts(model, test.images)
    plots.save_codebook_usage(counts, run_dir / "codebook_usage.png", title=f"{test.name} test")
    save_curves(run_dir, "vqvae")
    return {"reconstructions": str(run_dir / "reconstructions.png"), "codebook_usage": str(run_dir / "codebook_usage.png")}


def classifier_preset(data: str) -> str:
    """``scene-reader`` for the captioned scenes, ``classifier-audio`` (log-mel input) for audio datasets, else ``classifier``."""
    from vqvae.config import preset_for
    from vqvae.scenes import parse_name

    if data and parse_name(data) is not None:
        return "scene-reader"
    return "classifier-audio" if preset_for(data) == "fsdd" else "classifier"


def save_curves(run_dir: Path, arch: str) -> None:
    """``loss_curves.png`` of a run, with the panels of its task."""
    from vqvae.tasks import task_for

    if (Path(run_dir) / "metrics.jsonl").is_file():
        plots.save_loss_curves(Path(run_dir) / "metrics.jsonl", Path(run_dir) / "loss_curves.png", task_for(arch).curves)


def train(data: str | None, config: str | None, out: str | None, steps: int | None, minutes: float | None, resume: bool,
          data_root: str | None, overrides: list[str], progress: bool = True) -> dict:
    from vqvae.train import Trainer

    over = parse_overrides(overrides)
    if steps is not None:
        over = merge(over, {"train": {"steps": steps}})
    if minutes is not None:
        over = merge(over, {"train": {"minutes": minutes}})
    if data_root:
        over = merge(over, {"data": {"root": data_root}})
    if resume:
        if not out:
            raise VQVAEError("--resume needs --out RUN (the run directory to continue)")
        run_dir = Path(out)
        base = checkpoint.load_config(run_dir)
        if set(over) - {"train", "data"} or set(over.get("data", {})) - {"root"}:
            raise VQVAEError("when resuming only train.* settings and --data-root can change")
        from vqvae.config import build

        cfg = build(merge(base.to_dict(), over))
    else:
        cfg = load_config(config, data, over)
        run_dir = Path(out or f"runs/{Path(cfg.data.name).stem}-{time.strftime('%Y%m%d-%H%M%S')}")
        if (run_dir / checkpoint.STATE).exists():
            raise VQVAEError(f"{run_dir} already holds a run: pass --resume to continue it or choose another --out")
    train_set, test_set = load_split(cfg, "train", progress=progress), load_split(cfg, "test", progress=progress)
    trainer = Trainer(cfg, run_dir, train_set, test_set, resume=resume, progress=progress)
    main_rank = dist.is_main()
    if main_rank:
        procs = f" x {dist.world_size()} processes" if trainer.distributed else ""
        print(f"training {cfg.arch} on {train_set.name} ({len(train_set)} train / {len(test_set)} test) on {trainer.device}{procs} -> {run_dir}")
    final = trainer.fit()
    if main_rank:
        _finish_run(run_dir, cfg, trainer.model.eval(), test_set, final)
    dist.shutdown()
    return final


def _finish_run(run_dir: Path, cfg, model, test_set, final: dict) -> None:
    """eval.json, the pictures of the run, and a one-line summary."""
    checkpoint.atomic_write(run_dir / "eval.json", json.dumps(final, indent=2).encode())
    if cfg.arch in ("vqvae", "dvae"):
        write_report(run_dir, model, test_set)
        print(_summary(final))
    elif is_audio(cfg) and cfg.arch != "classifier":
        from vqvae import audio_inference, commands_audio

        commands_audio.write_report(run_dir, model, test_set)
        save_curves(run_dir, cfg.arch)
        print(f"step {final['step']}: test SNR {final.get('snr_db', float('nan')):.2f} dB, log-mel distance {final.get('log_mel_distance', float('nan')):.3f}, "
              f"{audio_inference.recon_text(final)}, {final['usage_pct']:.1f}% of codes used; see {run_dir / 'spectrograms.png'}")
    else:
        save_curves(run_dir, cfg.arch)
        print(f"step {final['step']}: " + ", ".join(f"test {k} {v:.4g}" for k, v in final.items() if k in ("accuracy", "loss")))


def _summary(m: dict) -> str:
    return (f"step {m.get('step', '?')}: test PSNR {m['psnr']:.2f} dB, SSIM {m['ssim']:.3f}, codebook used {m['usage_pct']:.1f}% "
            f"({m['dead_codes']} dead), perplexity {m['perplexity']:.1f}, {m['bits_per_dim']:.3f} bits/dim (uniform prior)")


def evaluate_any(args) -> dict:
    """``vqvae eval RUN``: dispatch on what the run is (tokenizer, prior or classifier)."""
    from vqvae import commands_prior
    from vqvae.models import TOKENIZERS

    arch = checkpoint.load_config(args.run).arch
    if arch in AUDIO_ARCHS:
        from vqvae import commands_audio

        return commands_audio.evaluate(args.run, args.data_root, args.split, args.speaker_classifier, args.digit_classifier, args.json)
    if arch in TOKENIZERS:
        return evaluate(args.run, args.data, args.data_root, args.split, args.json)
    if args.data:
        raise VQVAEError(f"--data applies to tokenizer runs; {args.run} is a {arch} run")
    if arch == "dalle":
        from vqvae import commands_dalle

        if not args.classifier:
            raise VQVAEError("a DALL-E run is scored by a scene reader: pass --classifier READER_RUN (vqvae classifier train --data scenes)")
        return commands_dalle.evaluate_dalle(args.run, args.classifier, args.split, args.samples, args.guidance, args.seed, args.json,
                                             args.data_root, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                                             candidates=args.candidates, clip_run=args.clip)
    if arch in ("classifier", "scene-reader"):
        cfg, model, ds = _run_and_split(args.run, None, args.data_root, args.split)
        from vqvae.tasks import task_for

        m = {"run": str(args.run), "data": ds.name, "split": args.split, **task_for(arch).evaluate(model, ds.images, ds.labels, 500)}
        print(json.dumps(m, indent=2) if args.json else f"{ds.name} {args.split}: accuracy {m['accuracy']:.4f}")
        return m
    if args.samples < 2:
        raise VQVAEError(f"-n/--samples must be >= 2, got {args.samples}")
    if args.temperature <= 0 or args.top_k < 0 or not 0 < args.top_p <= 1:
        raise VQVAEError("--temperature must be > 0, --top-k >= 0 and --top-p in (0, 1]")
    return commands_prior.evaluate_prior(args.run, args.data_root, args.split, args.classifier, args.samples, args.seed, args.json,
                                         inception=args.inception, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p)


def evaluate(run: str, data: str | None, data_root: str | None, split: str, as_json: bool) -> dict:
    _, model, ds = _run_and_split(run, data, data_root, split)
    m = inference.evaluate(model, ds.images, desc="eval")
    m = {"run": str(run), "data": ds.name, "split": split, **m}
    print(json.dumps(m, indent=2) if as_json else _summary(m))
    return m


def reconstruct(run: str, images: list[str], out_dir: str, speaker: str | None = None) -> list[Path]:
    if checkpoint.load_config(run).arch in AUDIO_ARCHS:
        from vqvae import commands_audio

        return commands_audio.reconstruct(run, images, out_dir, speaker)
    cfg, model = checkpoint.load_run(run)
    out = Path(out_dir)
    written = []
    for p in images:
        x = read_image(p, channels=cfg.model.in_channels)
        y = inference.reconstruct(model, x[None])[0]
        dest = out / (Path(p).stem + ".png")
        write_image(dest, y)
        written.append(dest)
        print(f"{p} -> {dest}")
    return written


def encode(run: str, data: str | None, data_root: str | None, split: str, out: str) -> Path:
    from vqvae.codes import encode_data

    cfg, model, ds = _run_and_split(run, data, data_root, split)
    codes = encode_data(cfg, model, ds.images)  # audio: (N, T / 64) content codes, speaker labels beside
    dtype = np.int16 if cfg.model.codebook_size <= 2**15 else np.int32
    dest = Path(out)
    dest.parent.mkdir(parents=True, exist_ok=True)
    np.save(dest, codes.astype(dtype))
    msg = f"{codes.shape[0]} code maps {codes.shape[1:]} -> {dest}"
    if ds.labels is not None:
        lab = dest.with_name(dest.stem + ".labels.npy")
        np.save(lab, ds.labels.numpy())
        msg += f", labels -> {lab}"
    print(msg)
    return dest


def decode(run: str, codes_path: str, out_dir: str, grid: str | None = None) -> Path:
    cfg, model = checkpoint.load_run(run)
    p = Path(codes_path)
    if not p.is_file():
        raise VQVAEError(f"codes file {p} not found")
    try:
        codes = np.load(p, allow_pickle=False)
    except ValueError as e:
        raise VQVAEError(f"{p} is not a .npy array of codes ({e})") from None
    g = cfg.model.num_codebooks
    if codes.ndim == (2 if g == 1 else 3):
        codes = codes[None]
    if codes.ndim != (3 if g == 1 else 4) or (g > 1 and codes.shape[1] != g) or not np.issubdtype(codes.dtype, np.integer):
        want = "(N, h, w)" if g == 1 else f"(N, {g}, h, w)"
        raise VQVAEError(f"{p}: expected integer code maps {want}, got {codes.dtype} {codes.shape}")
    if codes.size and (codes.min() < 0 or codes.max() >= cfg.model.codebook_size):
        raise VQVAEError(f"{p}: codes must lie in [0, {cfg.model.codebook_size}), got [{codes.min()}, {codes.max()}]")
    images = inference.decode(model, codes, desc="decode")
    out = Path(out_dir)
    for i, img in enumerate(images):
        write_image(out / f"{i:06d}.png", img)
    if grid:
        plots.save_grid(images[:64], grid, scale=max(1, 64 // images.shape[-1]))
    print(f"{len(images)} images -> {out}")
    return out


def demo(out: str, minutes: float, data_root: str | None, prior_minutes: float = 2.0) -> dict:
    """Train the Fashion-MNIST preset for a few minutes and write its pictures and metrics; then a
    class-conditional transformer prior on its codes for ``prior_minutes`` and a grid of samples.

    The cosine schedules are sized to end in about the given minutes on a 2-core CPU
    (~15 tokenizer steps/s at batch 64, ~3 prior steps/s); the minutes also cap the runs.
    Re-running replaces an earlier demo run.
    """
    run_dir = Path(out)
    if (run_dir / checkpoint.STATE).exists():
        checkpoint.load_config(run_dir)  # only ever delete a directory that is a vqvae run
        shutil.rmtree(run_dir)
        print(f"replacing the earlier demo run in {run_dir}")
    steps = max(100, int(minutes * 60 * 15))
    final = train("fashion-mnist", None, out, steps, None, False, data_root, [f"--train.minutes={minutes}"])
    pics = f"{out}/reconstructions.png, {out}/codebook_usage.png, {out}/loss_curves.png, {out}/eval.json"
    if prior_minutes > 0:
        from vqvae import commands_prior

        prior = run_dir / "prior"
        p = commands_prior.train_prior(out, "transformer", True, None, str(prior), max(50, int(prior_minutes * 60 * 3)), None, False,
                                       data_root, [f"--train.minutes={prior_minutes}"])
        final = {**final, "prior_bits_per_code": p["bits_per_code"]}
        pics += f", and samples from the prior in {prior}/samples.png (one row per class)"
    print(f"demo done: see {pics}")
    return final
