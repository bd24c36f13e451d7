"""CLI commands for audio VQ-VAE runs (``vqvae.cli`` only parses): reconstruct, convert, report, eval.

Speaker conversion (van den Oord et al. 2017, section 4.3): the encoder's codes
carry the content and no speaker id; decoding them with another speaker's
embedding says the same thing in that voice. ``eval`` measures it with two
classifiers trained by the project on the training split (``vqvae classifier
train --data fsdd`` for speakers, ``... --data.label=digit`` for digits):
converted test clips should be recognised as the target speaker and keep
their digit.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from vqvae import audio_inference, checkpoint, metrics, plots
from vqvae.audio_data import read_wav, write_wav
from vqvae.errors import VQVAEError
from vqvae.scoring import label_accuracy


def speaker_id(cfg, name: str | None, source: str | Path | None = None) -> int:
    """A speaker's id by name; without a name, the speaker in an FSDD-style file name ``{digit}_{speaker}_{index}.wav``."""
    known = cfg.model.speakers
    if name is None and source is not None:
        m = re.match(r"^\d_([A-Za-z]+)_\d+$", Path(source).stem)
        name = m.group(1) if m and m.group(1) in known else None
        if name is None:
            raise VQVAEError(f"which voice? {source} does not name a known speaker: pass --speaker (known: {', '.join(known)})")
    if name not in known:
        raise VQVAEError(f"unknown speaker {name!r}; this model knows: {', '.join(known)}")
    return known.index(name)


def _read_clip(path: str, cfg) -> tuple[torch.Tensor, int]:
    """A wav as ``(1, 1, T')`` float, padded to the downsampling, and its true length ``T``."""
    x, _, notes = read_wav(path, sample_rate=cfg.model.sample_rate, min_samples=cfg.model.downsampling)
    for n in notes:
        print(f"note: {n}")
    t = len(x)
    f = cfg.model.downsampling
    w = torch.zeros(1, 1, t + (-t) % f)
    w[0, 0, :t] = torch.from_numpy(x)
    return w, t


def _outputs(inputs: list[str], out: str, suffix: str) -> list[Path]:
    o = Path(out)
    if o.suffix.lower() == ".wav":
        if len(inputs) != 1:
            raise VQVAEError(f"-o {out} is one file but {len(inputs)} inputs were given: pass a folder")
        return [o]
    return [o / f"{Path(p).stem}{suffix}.wav" for p in inputs]


def reconstruct(run: str, inputs: list[str], out: str, speaker: str | None = None, convert_to: str | None = None) -> list[Path]:
    """Wav files in, reconstructions (or conversions to ``convert_to``) out; spectrogram PNG beside each."""
    cfg, model = checkpoint.load_run(run)
    written = []
    for src, dest in zip(inputs, _outputs(inputs, out, f"-to-{convert_to}" if convert_to else "")):
        x, t = _read_clip(src, cfg)
        sid = speaker_id(cfg, convert_to) if convert_to else speaker_id(cfg, speaker, src)
        y = audio_inference.convert(model, x, torch.tensor([sid]))[0, 0, :t]
        write_wav(dest, y, cfg.model.sample_rate)
        plots.save_spectrograms([(f"input {Path(src).name}", x[0, 0, :t]), (f"{'conversion to ' + convert_to if convert_to else 'reconstruction'}", y)],
                                cfg.model.sample_rate, dest.with_suffix(".png"))
        print(f"{src} -> {dest} (+ {dest.with_suffix('.png').name})")
        written.append(dest)
    return written


def write_report(run_dir: Path, model, test, n: int = 3) -> None:
    """Spectrograms and wavs of a few test clips: input, reconstruction, conversion to another speaker."""
    run_dir = Path(run_dir)
    cfg = model.config
    ex = run_dir / "examples"
    rows = []
    k = len(cfg.speakers)
    for i in range(min(n, len(test))):
        j = i * max(1, len(test) // n)
        x, spk, t = test.images[j : j + 1], int(test.labels[j]), int(test.lengths[j])
        tgt = (spk + 1 + i) % k if k > 1 else spk
        rec = audio_inference.decode(model, audio_inference.encode(model, x), torch.tensor([spk]))[0, 0, :t]
        conv = audio_inference.decode(model, audio_inference.encode(model, x), torch.tensor([tgt]))[0, 0, :t]
        name = Path(test.files[j]).stem
        write_wav(ex / f"{name}.wav", x[0, 0, :t], cfg.sample_rate)
        write_wav(ex / f"{name}-reconstruction.wav", rec, cfg.sample_rate)
        write_wav(ex / f"{name}-to-{cfg.speakers[tgt]}.wav", conv, cfg.sample_rate)
        rows += [(f"{name} ({cfg.speakers[spk]})", x[0, 0, :t]), ("reconstruction", rec), (f"converted to {cfg.speakers[tgt]}", conv)]
    plots.save_spectrograms(rows, cfg.sample_rate, run_dir / "spectrograms.png")


def conversion_scores(model, test, speaker_clf: str | None, digit_clf: str | None) -> dict:
    """Convert every test clip to another speaker (a fixed rotation through all of them) and score it."""
    cfg = model.config
    k = len(cfg.speakers)
    targets = (test.labels + 1 + torch.arange(len(test)) % max(1, k - 1)) % k
    conv = audio_inference.convert(model, test.images, targets)
    rec = audio_inference.convert(model, test.images, test.labels)  # the ceiling: decoded with the true speaker
    out = {"conversions": len(test)}
    for kind, run, labels in (("speaker", speaker_clf, targets), ("digit", digit_clf, test.digits)):
        if not run:
            continue
        ccfg, clf = checkpoint.load_run(run)
        if ccfg.arch != "classifier" or getattr(ccfg.model, "input", "image") != "logmel":
            raise VQVAEError(f"{run} is not an audio classifier (train one with: vqvae classifier train --data fsdd)")
        if labels is None:
            raise VQVAEError(f"the test set has no {kind} labels")
        truth = test.labels if kind == "speaker" else test.digits
        out[f"{kind}_classifier_accuracy_real"] = label_accuracy(clf, test.images, truth)
        out[f"{kind}_classifier_accuracy_reconstructed"] = label_accuracy(clf, rec, truth)
        out[f"converted_{kind}_accuracy"] = label_accuracy(clf, conv, labels)
    out["snr_db_vs_source"] = metrics.snr_db(test.images, conv).mean().item()
    return out


def evaluate(run: str, data_root: str | None, split: str, speaker_clf: str | None, digit_clf: str | None, as_json: bool) -> dict:
    from vqvae.splits import load_split

    cfg, model = checkpoint.load_run(run)
    ds = load_split(cfg, split, data_root)
    res = {"run": str(run), "data": ds.name, "split": split, **audio_inference.evaluate_audio(model, ds.images, ds.labels, generate=True)}
    if speaker_clf or digit_clf:
        res.update(conversion_scores(model, ds, speaker_clf, digit_clf))
    if as_json:
        print(json.dumps(res, indent=2))
    else:
        msg = (f"{ds.name} {split}: SNR {res['snr_db']:.2f} dB, log-mel distance {res['log_mel_distance']:.3f}, "
               f"{audio_inference.recon_text(res)}, codes at {res['bits_per_second']:.0f} bits/s, "
               f"{res['usage_pct']:.1f}% of codes used")
        for kind in ("speaker", "digit"):
            if f"converted_{kind}_accuracy" in res:
                msg += (f"; converted clips: {kind} accuracy {100 * res[f'converted_{kind}_accuracy']:.1f}% "
                        f"(real: {100 * res[f'{kind}_classifier_accuracy_real']:.1f}%, "
                        f"reconstructed: {100 * res[f'{kind}_classifier_accuracy_reconstructed']:.1f}%)")
        print(msg)
    return res
