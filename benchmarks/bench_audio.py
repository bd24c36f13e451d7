"""The paper's audio experiment on FSDD: reconstruction, code rate, speaker conversion, decoder speed.

Runs the project's own commands with their presets (fixed step counts):

1. ``vqvae train --data fsdd`` -> the audio VQ-VAE with the parallel decoder;
2. ``vqvae classifier train --data fsdd`` (speakers) and ``... --data.label=digit``, each also trained
   on the parallel model's reconstructions as well (``--data.reconstructions_from=RUN``);
3. ``vqvae eval RUN --speaker-classifier S --digit-classifier D``: test SNR, log-mel
   distance, mu-law NLL, code rate (bits/s), and the accuracy of the speaker and
   digit classifiers on converted test clips (each converted to another speaker)
   next to their accuracy on real test clips;
4. the WaveNet decoder (``--model.decoder=wavenet``, smaller, fewer steps):
   teacher-forced NLL, and SNR/log-mel of clips it generates;
5. decoding speed as real-time factors (compute time / audio duration; < 1 is
   faster than real time) for both decoders, batch 1 and batched.

Prints one JSON object; ``--update-md BENCHMARKS.md`` writes the section
``bench_audio`` and copies the spectrogram figure to ``docs/audio/``. Existing
runs under ``--out`` are reused unless ``--fresh``.

    python benchmarks/bench_audio.py --update-md BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.mdsection import device_label, replace_section  # noqa: E402
from vqvae.audio import conversion, metrics  # noqa: E402
from vqvae.audio import inference as audio_inference  # noqa: E402
from vqvae.core import checkpoint  # noqa: E402
from vqvae.core.runs import DatasetRecipe, RunArgs, train  # noqa: E402
from vqvae.core.task import load_split  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _train(run: Path, config: str | None, overrides: list[str]) -> None:
    if not (run / "eval.json").is_file():
        shutil.rmtree(run, ignore_errors=True)
        train(DatasetRecipe(RunArgs(out=str(run), overrides=["--train.minutes=0", *overrides], progress=False), "fsdd", config))


def _rtf(model, x: torch.Tensor, speakers: torch.Tensor, sr: int, batch: int) -> float:
    """Compute seconds per second of audio decoding the codes of ``x`` in batches of ``batch``."""
    codes = audio_inference.encode(model, x)
    t = time.perf_counter()
    audio_inference.decode(model, codes, speakers, batch_size=batch, generator=torch.Generator().manual_seed(0))
    return (time.perf_counter() - t) / (x.shape[0] * x.shape[-1] / sr)


def _pct(m: dict, kind: str) -> str:
    """Real | reconstructed | converted accuracy cells of one classifier."""
    return (f"{100 * m[f'{kind}_classifier_accuracy_real']:.1f} % | {100 * m[f'{kind}_classifier_accuracy_reconstructed']:.1f} % | "
            f"**{100 * m[f'converted_{kind}_accuracy']:.1f} %**")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="bench_out/audio")
    ap.add_argument("--wavenet-overrides", default="--model.decoder=wavenet,--model.output=mulaw,--model.wavenet_channels=32,--train.steps=1000,"
                    "--data.crop=2048,--train.eval_every=0")
    ap.add_argument("--parallel-overrides", default="", help="comma-separated overrides for the parallel-decoder run")
    ap.add_argument("--generate-clips", type=int, default=8, help="test clips the WaveNet generates for SNR / log-mel / RTF")
    ap.add_argument("--fresh", action="store_true")
    ap.add_argument("--quick", action="store_true", help="a few steps of everything (a smoke test of the script)")
    ap.add_argument("--update-md")
    args = ap.parse_args()
    out = Path(args.out)
    if args.fresh:
        shutil.rmtree(out, ignore_errors=True)
    t0 = time.time()
    par, wn, spk, dig = out / "parallel", out / "wavenet", out / "speaker-classifier", out / "digit-classifier"
    q = ["--train.steps=3", "--train.eval_every=0", "--train.eval_images=16"] if args.quick else []
    _train(par, None, [o for o in args.parallel_overrides.split(",") if o] + q)
    _train(spk, "classifier-audio", q)
    _train(dig, "classifier-audio", ["--data.label=digit", *q])
    # the same classifiers trained on the parallel model's reconstructions of the training clips as well, so they read
    # decoded speech (the recording-only ones see converted clips out of their domain)
    spk_r, dig_r = out / "speaker-classifier-rec", out / "digit-classifier-rec"
    _train(spk_r, "classifier-audio", [f"--data.reconstructions_from={par}", *q])
    _train(dig_r, "classifier-audio", ["--data.label=digit", f"--data.reconstructions_from={par}", *q])
    _train(wn, None, [o for o in args.wavenet_overrides.split(",") if o] + q)
    res = {"parallel": conversion.evaluate_run(str(par), "test", speaker_classifier=str(spk), digit_classifier=str(dig))}
    cfg, model = checkpoint.load_run(par)
    test = load_split(cfg, "test")
    res["parallel_rec_classifiers"] = conversion.conversion_scores(model, test, str(spk_r), str(dig_r))
    sr = cfg.model.sample_rate
    res["parallel"]["rtf_batch1"] = _rtf(model, test.images[:16], test.labels[:16], sr, 1)
    res["parallel"]["rtf_batched"] = _rtf(model, test.images, test.labels, sr, 64)
    if args.quick:
        args.generate_clips = 2
    wcfg, wmodel = checkpoint.load_run(wn)
    wtest = load_split(cfg, "test")  # full-length test clips, like the parallel model's
    ev = audio_inference.evaluate_audio(wmodel, wtest.images, wtest.labels, generate=False)
    n = args.generate_clips
    x, s = wtest.images[:n], wtest.labels[:n]
    t = time.perf_counter()
    y = audio_inference.decode(wmodel, audio_inference.encode(wmodel, x), s, batch_size=n, generator=torch.Generator().manual_seed(0))
    gen_s = time.perf_counter() - t
    ev.update({"snr_db_generated": metrics.snr_db(x, y).mean().item(), "log_mel_distance_generated": metrics.log_mel_distance(x, y, sr).mean().item(),
               "generated_clips": n, "rtf_batched": gen_s / (n * x.shape[-1] / sr),
               "rtf_batch1": _rtf(wmodel, x[:1, :, :2048], s[:1], sr, 1), "steps": wcfg.train.steps, "train_crop": wcfg.data.crop})
    pm = res["parallel"]
    pm_y = audio_inference.decode(model, audio_inference.encode(model, x), s)
    ev["parallel_snr_db_same_clips"] = metrics.snr_db(x, pm_y).mean().item()
    ev["parallel_log_mel_distance_same_clips"] = metrics.log_mel_distance(x, pm_y, sr).mean().item()
    res["wavenet"] = ev
    report = {**res, "steps": cfg.train.steps, "device": device_label(), "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"),
              "wall_s": time.time() - t0}
    print(json.dumps(report, indent=2, default=str))
    if args.update_md:
        docs = REPO / "docs" / "audio"
        docs.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(par / "spectrograms.png", docs / "fsdd-spectrograms.png")
        w, pr = res["wavenet"], res["parallel_rec_classifiers"]
        body = f"""`python benchmarks/bench_audio.py` ({report['date']}, {report['device']}, torch {report['torch']})

Test split: the 300 official test clips (index 0-4), silence-trimmed, at most 8192 samples (1 s) at 8 kHz.

| decoder | steps | SNR | log-mel distance | training loss on test | code rate | codebook used | RTF batch 1 | RTF batched |
|---|---|---|---|---|---|---|---|---|
| parallel (non-autoregressive, waveform output, multi-resolution STFT loss) | {cfg.train.steps} | **{pm['snr_db']:.2f} dB** | **{pm['log_mel_distance']:.3f}** | {audio_inference.recon_text(pm)} | **{pm['bits_per_second']:.0f} bits/s** | {pm['usage_pct']:.1f} % | {pm['rtf_batch1']:.4f} | {pm['rtf_batched']:.4f} |
| WaveNet (autoregressive, mu-law, {w['generated_clips']} clips generated) | {w['steps']} | {w['snr_db_generated']:.2f} dB (parallel on the same clips: {w['parallel_snr_db_same_clips']:.2f}) | {w['log_mel_distance_generated']:.3f} (parallel: {w['parallel_log_mel_distance_same_clips']:.3f}) | {audio_inference.recon_text(w)} | {w['bits_per_second']:.0f} bits/s | {w['usage_pct']:.1f} % | {w['rtf_batch1']:.2f} | {w['rtf_batched']:.2f} |

RTF: decoding compute time over audio duration on this machine (below 1 is faster than real time).
The WaveNet generates sample by sample with per-layer queues (fast WaveNet), in Python.

Speaker conversion (each test clip's codes decoded with another speaker's embedding, rotating through all five others):

| classifier (log-mel CNN, 1500 steps) | on real test clips | on reconstructions (true speaker) | on converted clips (target speaker / source digit) | goal |
|---|---|---|---|---|
| speaker, trained on recordings (`vqvae classifier train --data fsdd`) | {_pct(pm, 'speaker')} | ≥ 70 % |
| digit, trained on recordings (`... --data.label=digit`) | {_pct(pm, 'digit')} | ≥ 70 % |
| speaker, trained on recordings + reconstructions (`... --data.reconstructions_from=RUN`) | {_pct(pr, 'speaker')} | ≥ 70 % |
| digit, trained on recordings + reconstructions | {_pct(pr, 'digit')} | ≥ 70 % |

The second pair of classifiers also sees the parallel model's reconstructions of the training clips (each with its
own speaker), so it knows what decoded speech sounds like; it never sees a converted clip.

![spectrograms](docs/audio/fsdd-spectrograms.png)
"""
        replace_section(Path(args.update_md), "bench_audio", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
