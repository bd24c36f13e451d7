"""The project's GPU suite: every GPU figure in one run of at most ``--minutes`` (8 by default), compilation included.

    python benchmarks/gpu_suite.py --out gpu-results/DATE --minutes 8      # on one CUDA machine
    python benchmarks/gpu_suite.py --out /tmp/suite --tiny --device cpu     # CI: the script itself, in under a minute

Parts, in order, each in its own process and time box (its share of the budget), so one that fails, hangs or runs
out of memory costs only its own share; the others still run:

1. ``tests``: the CUDA tests (``pytest -m gpu``) and the Triton kernel's tests;
2. ``nearest``: ``bench_nearest_gpu.py`` (the fused nearest-code kernel against torch, the matmul floor and
   vector-quantize-pytorch where it is installed);
3. ``train``: ``bench_gpu_train.py`` (the paper's CIFAR-10 step: fp32, bf16, channels_last, compile, CUDA graphs);
4. ``prior``: ``bench_gpu_prior.py`` (the 12 x 768 transformer prior: training and sampling tokens/s);
5. ``recipe``: the paper's recipe on the full CIFAR-10 (``vqvae train --data cifar10``, bf16, channels_last, CUDA
   graphs) for as many steps as its share allows, a PixelCNN prior over its codes, and the test bits/dim
   (``vqvae eval PRIOR --json``);
6. ``table``: ``bench_paper_table.py --paper`` (VAE / VQ-VAE / VIMCO at the paper's sizes, posterior collapse).

It writes at most 8 files into ``--out``: ``suite.json`` (every part's exit code, time and the JSON it printed),
``sections.md`` (the BENCHMARKS.md sections as the scripts write them: paste them in with the date and machine),
``log.txt`` (everything the parts printed), and ``docs/`` pictures are left where the scripts put them, not in
``--out``. Needs nothing beyond torch, triton and the project's requirements (vector-quantize-pytorch if importable).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
MAX_FILES = 8


@dataclass
class Part:
    """One time-boxed part: ``commands`` run in order (each an argv list) within ``share`` of the budget."""

    name: str
    share: float
    commands: list[list[str]] = field(default_factory=list)
    needs: str = ""  # a module the part cannot run without: absent, the part is skipped (and says so), not failed


def plan(out: Path, minutes: float, tiny: bool, device: str, work: Path, data_root: str | None = None) -> list[Part]:
    """The suite's parts for a budget of ``minutes`` (tiny: the scripts' smoke modes, on ``device``)."""
    md = str(out / "sections.md")
    bench = lambda name, *a: [PY, str(REPO / "benchmarks" / f"{name}.py"), *a, "--update-md", md]  # noqa: E731
    root = ["--data-root", data_root] if data_root else []
    vq = [PY, "-m", "vqvae"]
    tok, prior = str(work / "recipe-tok"), str(work / "recipe-prior")
    if tiny:
        small = ["--config", "tiny", "--data", "cifar10-subset", *root, "--steps", "3", "--no-progress", f"--train.device={device}"]
        return [
            Part("tests", 0.12, [[PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "gpu", "tests/priors/test_static_decoding.py"]]),
            Part("nearest", 0.08, [bench("bench_nearest_gpu", "--interpret")], needs="triton"),
            Part("train", 0.2, [bench("bench_gpu_train", "--device", device, "--tiny", "--variants", "fp32,bf16")]),
            Part("prior", 0.1, [bench("bench_gpu_prior", "--device", device, "--tiny")]),
            Part("recipe", 0.25, [[*vq, "train", *small, "--out", tok],
                                 [*vq, "prior", "train", "--tokenizer", tok, "--arch", "pixelcnn", "--steps", "2", "--no-progress",
                                  "--model.channels=8", "--model.layers=2", "--model.out_hidden=8", f"--train.device={device}",
                                  "--train.eval_images=16", "--out", prior],
                                 [*vq, "eval", prior, "--json"]]),
            Part("table", 0.25, [bench("bench_paper_table", "--data", "cifar10-subset", "--minutes", "0.02", "--collapse-minutes", "0.02", "--width", "8",
                                      "--test-images", "8", "--collapse-images", "8", "--iw-samples", "2", "--parts", "table", "--out", str(work / "table"),
                                      "--docs", str(work / "docs"), *root)]),
        ]
    recipe_train = max(0.5, 0.25 * minutes - 0.6)  # the recipe's share less start-up, compilation and evaluation
    fast = ["--train.amp=bf16", "--train.channels_last=true", "--train.compile=reduce-overhead", "--no-progress"]
    return [
        Part("tests", 0.12, [[PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/quantize/test_nearest_triton.py"],
                             [PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "gpu", "tests"]]),
        Part("nearest", 0.16, [bench("bench_nearest_gpu")], needs="triton"),
        Part("train", 0.16, [bench("bench_gpu_train", "--quality-steps", "1000")]),
        Part("prior", 0.12, [bench("bench_gpu_prior", "--steps", "20")]),
        Part("recipe", 0.28, [[*vq, "train", "--data", "cifar10", *root, "--minutes", f"{recipe_train:.2f}", *fast,
                               "--train.final_eval_images=0", "--out", tok],
                              [*vq, "prior", "train", "--tokenizer", tok, "--arch", "pixelcnn", "--minutes", f"{0.08 * minutes:.2f}",
                               "--train.amp=bf16", "--no-progress", "--out", prior],
                              [*vq, "eval", prior, "--json"]]),
        Part("table", 0.16, [bench("bench_paper_table", "--paper", "--minutes", f"{0.02 * minutes:.2f}", "--collapse-minutes",
                                   f"{0.01 * minutes:.2f}", "--out", str(work / "table"), *root)]),
    ]


def last_json(text: str):
    """The last JSON object a script printed (its report), or None."""
    lines = text.splitlines()
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].startswith("{"):
            try:
                return json.loads("\n".join(lines[i:]))
            except json.JSONDecodeError:
                try:
                    return json.loads(lines[i])
                except json.JSONDecodeError:
                    continue
    return None


def run_part(part: Part, seconds: float, log) -> dict:
    """Run a part's commands within ``seconds``; never raises: the result says what happened."""
    t0, results = time.monotonic(), []
    if part.needs and importlib.util.find_spec(part.needs) is None:
        return {"ok": True, "skipped": f"{part.needs} is not installed", "seconds": 0.0, "budget_s": round(seconds, 1), "commands": []}
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    for argv in part.commands:
        left = seconds - (time.monotonic() - t0)
        if left <= 1:
            results.append({"argv": argv[1:], "rc": None, "skipped": "the part's time was spent"})
            continue
        log.write(f"\n=== {part.name}: {' '.join(argv[1:])}\n")
        log.flush()
        try:
            p = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=left)
            rc, out, err, timed_out = p.returncode, p.stdout, p.stderr, False
        except subprocess.TimeoutExpired as e:
            rc, timed_out = None, True
            out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
            err = e.stderr.decode() if isinstance(e.stderr, bytes) else (e.stderr or "")
        except OSError as e:
            rc, out, err, timed_out = None, "", str(e), False
        log.write(out + err)
        log.flush()
        results.append({"argv": argv[1:], "rc": rc, "timed_out": timed_out, "report": last_json(out),
                        "error_tail": (err or out)[-1500:] if rc != 0 else ""})
    ok = all(r.get("rc") == 0 for r in results)
    return {"ok": ok, "seconds": round(time.monotonic() - t0, 1), "budget_s": round(seconds, 1), "commands": results}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="folder for suite.json, sections.md and log.txt")
    ap.add_argument("--minutes", type=float, default=8.0, help="the whole suite's budget, compilation included")
    ap.add_argument("--tiny", action="store_true", help="the scripts' smoke modes (CI): tests the suite, measures nothing")
    ap.add_argument("--device", default="cuda", help="cuda, or cpu with --tiny")
    ap.add_argument("--data-root", help="where cifar-10-png/ is (default: the usual data roots)")
    ap.add_argument("--parts", help="comma-separated subset of tests,nearest,train,prior,recipe,table")
    args = ap.parse_args(argv)
    if args.device != "cuda" and not args.tiny:
        ap.error("the suite measures a GPU: --device cpu only with --tiny")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    budget = 60 * args.minutes
    report = {"date": time.strftime("%Y-%m-%d %H:%M"), "minutes": args.minutes, "tiny": args.tiny, "device": args.device,
              "commit": _commit(), "parts": {}}
    with tempfile.TemporaryDirectory() as work, open(out / "log.txt", "w") as log:
        parts = plan(out, args.minutes, args.tiny, args.device, Path(work), args.data_root)
        if args.parts:
            keep = set(args.parts.split(","))
            parts = [p for p in parts if p.name in keep]
        for part in parts:
            left = budget - (time.monotonic() - start)
            report["parts"][part.name] = run_part(part, min(part.share * budget, left), log)
            (out / "suite.json").write_text(json.dumps(report, indent=2))  # kept current: a killed suite still tells
            print(f"{part.name}: {'ok' if report['parts'][part.name]['ok'] else 'FAILED'} "
                  f"({report['parts'][part.name]['seconds']} s)", flush=True)
    report["seconds"] = round(time.monotonic() - start, 1)
    (out / "suite.json").write_text(json.dumps(report, indent=2))
    files = [p for p in out.rglob("*") if p.is_file()]
    if len(files) > MAX_FILES:
        print(f"warning: {len(files)} files in {out} (at most {MAX_FILES} expected)", file=sys.stderr)
    print(json.dumps({k: v["ok"] for k, v in report["parts"].items()}))
    return 0 if all(p["ok"] for p in report["parts"].values()) else 1


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
