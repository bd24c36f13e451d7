"""Speaker conversion (van den Oord et al. 2017, section 4.3) and how it is measured.

The encoder's codes carry the content and no speaker id; decoding them with
another speaker's embedding says the same thing in that voice.
:func:`conversion_scores` measures it with two classifiers trained by the
project (``vqvae classifier train --data fsdd`` for speakers, ``...
--data.label=digit`` for digits): converted test clips should be recognised as
the target speaker and keep their digit.
"""

from __future__ import annotations

from pathlib import Path

import torch

from vqvae.audio import inference
from vqvae.audio.metrics import snr_db
from vqvae.audio.plots import save_spectrograms
from vqvae.core import checkpoint
from vqvae.core.errors import VQVAEError
from vqvae.core.task import load_split
from vqvae.data.audio import read_wav, write_wav
from vqvae.scoring.scores import label_accuracy


def load_audio_classifier(run: str):
    """A speaker or digit classifier over log-mel spectrograms (a one-line error for any other run)."""
    cfg, clf = checkpoint.load_run(run)
    if cfg.arch != "classifier" or getattr(cfg.model, "input", "image") != "logmel":
        raise VQVAEError(f"{run} is not an audio classifier (train one with: vqvae classifier train --data fsdd)")
    return clf


def read_clip(path: str, cfg) -> tuple[torch.Tensor, int]:
    """A wav as ``(1, 1, T')`` float, padded to the downsampling, and its true length ``T``."""
    x, _, notes = read_wav(path, sample_rate=cfg.model.sample_rate, min_samples=cfg.model.downsampling)
    for n in notes:
        print(f"note: {n}")
    t = len(x)
    f = cfg.model.downsampling
    w = torch.zeros(1, 1, t + (-t) % f)
    w[0, 0, :t] = torch.from_numpy(x)
    return w, t


def output_paths(inputs: list[str], out: str, suffix: str) -> list[Path]:
    o = Path(out)
    if o.suffix.lower() == ".wav":
        if len(inputs) != 1:
            raise VQVAEError(f"-o {out} is one file but {len(inputs)} inputs were given: pass a folder")
        return [o]
    return [o / f"{Path(p).stem}{suffix}.wav" for p in inputs]


def convert_files(run: str, inputs: list[str], out: str, speaker: str | None = None, convert_to: str | None = None) -> list[Path]:
    """Wav files in, reconstructions (or conversions to ``convert_to``) out; spectrogram PNG beside each."""
    cfg, model = checkpoint.load_run(run)
    written = []
    for src, dest in zip(inputs, output_paths(inputs, out, f"-to-{convert_to}" if convert_to else "")):
        x, t = read_clip(src, cfg)
        sid = inference.speaker_id(cfg, convert_to) if convert_to else inference.speaker_id(cfg, speaker, src)
        y = inference.convert(model, x, torch.tensor([sid]))[0, 0, :t]
        write_wav(dest, y, cfg.model.sample_rate)
        save_spectrograms([(f"input {Path(src).name}", x[0, 0, :t]), (f"{'conversion to ' + convert_to if convert_to else 'reconstruction'}", y)],
                                cfg.model.sample_rate, dest.with_suffix(".png"))
        print(f"{src} -> {dest} (+ {dest.with_suffix('.png').name})")
        written.append(dest)
    return written


def conversion_scores(model, test, speaker_clf: str | None, digit_clf: str | None) -> dict:
    """Convert every test clip to another speaker (a fixed rotation through all of them) and score it."""
    cfg = model.config
    k = len(cfg.speakers)
    targets = (test.labels + 1 + torch.arange(len(test)) % max(1, k - 1)) % k
    conv = inference.convert(model, test.images, targets)
    rec = inference.convert(model, test.images, test.labels)  # the ceiling: decoded with the true speaker
    out = {"conversions": len(test)}
    for kind, run, labels in (("speaker", speaker_clf, targets), ("digit", digit_clf, test.digits)):
        if not run:
            continue
        clf = load_audio_classifier(run)
        if labels is None:
            raise VQVAEError(f"the test set has no {kind} labels")
        truth = test.labels if kind == "speaker" else test.digits
        out[f"{kind}_classifier_accuracy_real"] = label_accuracy(clf, test.images, truth)
        out[f"{kind}_classifier_accuracy_reconstructed"] = label_accuracy(clf, rec, truth)
        out[f"converted_{kind}_accuracy"] = label_accuracy(clf, conv, labels)
    out["snr_db_vs_source"] = snr_db(test.images, conv).mean().item()
    return out


def evaluate_run(run: str | Path, split: str = "test", data_root: str | None = None, data: str | None = None,
                 speaker_classifier: str | None = None, digit_classifier: str | None = None) -> dict:
    """An audio VQ-VAE run's test metrics on ``split`` of its dataset (or ``data``): SNR, log-mel distance, codebook use,
    the code rate; with the classifiers, how converted clips are heard (:func:`conversion_scores`)."""
    cfg, model = checkpoint.load_run(run)
    if data:
        cfg.data.name = data
    ds = load_split(cfg, split, data_root)
    res = {"run": str(run), "data": ds.name, "split": split, **inference.evaluate_audio(model, ds.images, ds.labels, generate=True)}
    if speaker_classifier or digit_classifier:
        res.update(conversion_scores(model, ds, speaker_classifier, digit_classifier))
    return res


def summary(res: dict) -> str:
    """The line ``vqvae eval`` prints for an audio run."""
    msg = (f"{res['data']} {res['split']}: SNR {res['snr_db']:.2f} dB, log-mel distance {res['log_mel_distance']:.3f}, "
           f"{inference.recon_text(res)}, codes at {res['bits_per_second']:.0f} bits/s, {res['usage_pct']:.1f}% of codes used")
    for kind in ("speaker", "digit"):
        if f"converted_{kind}_accuracy" in res:
            msg += (f"; converted clips: {kind} accuracy {100 * res[f'converted_{kind}_accuracy']:.1f}% "
                    f"(real: {100 * res[f'{kind}_classifier_accuracy_real']:.1f}%, "
                    f"reconstructed: {100 * res[f'{kind}_classifier_accuracy_reconstructed']:.1f}%)")
    return msg
