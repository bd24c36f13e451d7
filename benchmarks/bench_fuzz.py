"""Issue 26's fuzz campaign: every format the CLI reads, mutated, through every command that reads it.

    python benchmarks/bench_fuzz.py --cases 10000 --update-md BENCHMARKS.md
    python benchmarks/bench_fuzz.py --cases 300 --seed 1        # the size CI runs (tests/test_fuzz.py)

Formats and commands: grey PNG, colour PNG and JPEG images through ``vqvae reconstruct`` (zoo:fashion-mnist's
tokenizer) and ``vqvae compress``; WAV through ``vqvae reconstruct zoo:fsdd``; ``.npy`` code files through
``vqvae decode``; ``.vqz`` files through ``vqvae decompress``; run directories (``config.json``; the safetensors
header and tensors) through ``vqvae reconstruct RUN``; YAML presets and ``--section.key=value`` overrides through
``vqvae train`` (one step on a small ``.npy`` set). Each case is a valid seed mutated (:mod:`benchmarks.fuzz_cases`:
bit flips, truncation, splices, header fields at extremes, huge declared sizes) or drawn by hypothesis (arrays of
any dtype and shape as code files).

Each case runs in a process forked from a parent that has imported everything once, under an address-space cap
and an alarm; the parent reads its exit status and peak memory (``wait4``) and its stderr. A case counts as a
**traceback** (a Python traceback on stderr), a **hang** (over ``--hang`` seconds), **over memory** (peak resident
set over ``--memory-gb``), or a **silent failure** (a non-zero exit without exactly one ``error:`` line); otherwise
it is ok (exit 0) or a clean refusal (exit 2, one line). Prints JSON (failures with their inputs kept under
``--out``); ``--update-md`` writes the section ``fuzz``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import sys
import time
import traceback
from collections import Counter
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks import fuzz_cases as fc  # noqa: E402
from benchmarks.mdsection import cpu_name, replace_section  # noqa: E402

TARGETS = ("png-grey:reconstruct", "png-colour:compress", "jpeg:reconstruct", "wav:reconstruct", "npy:decode",
           "npy-hypothesis:decode", "vqz:decompress", "config:reconstruct", "safetensors:reconstruct", "yaml:train",
           "overrides:train")


def child(argv: list[str], err_path: Path, cap: int, hang: float) -> None:
    """In the forked child: stderr to a file, the caps, the command; never returns."""
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    fd = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(fd, 2)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    signal.alarm(int(hang * 2) + 1)  # a case still running then is stopped (the parent counts it a hang from hang s)
    rc = 1
    try:
        from vqvae.cli import main

        rc = main(argv)
    except SystemExit as e:
        rc = e.code if isinstance(e.code, int) else 1
    except BaseException:  # noqa: BLE001 (what the campaign looks for)
        traceback.print_exc()
        rc = 1
    sys.stderr.flush()
    os._exit(rc or 0)


def run_case(argv: list[str], work: Path, cap_gb: float, hang: float) -> dict:
    err = work / "stderr.txt"
    t0 = time.time()
    pid = os.fork()
    if pid == 0:
        child(argv, err, int(cap_gb * 2**30), hang)
    _, status, ru = os.wait4(pid, 0)
    seconds = time.time() - t0
    text = err.read_text(errors="replace") if err.exists() else ""
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("note:") and not ln.startswith("warning:")]
    code = os.waitstatus_to_exitcode(status)
    peak_gb = ru.ru_maxrss / 2**20
    if "Traceback (most recent call last)" in text:
        verdict = "traceback"
    elif seconds > hang or code == -signal.SIGALRM:
        verdict = "hang"
    elif peak_gb > MEMORY_GB[0]:
        verdict = "over memory"
    elif code == 0:
        verdict = "ok"
    elif code == 2 and len(lines) == 1 and lines[0].startswith("error: "):
        verdict = "refused"
    else:
        verdict = "silent failure"
    return {"verdict": verdict, "code": code, "seconds": round(seconds, 2), "peak_gb": round(peak_gb, 2),
            "message": (lines[-1] if lines else "")[:200]}


MEMORY_GB = [2.0]


class Campaign:
    """Seeds made once under ``out``, then one case at a time: the input written, the command built."""

    def __init__(self, out: Path, seed: int):
        self.out, self.rng = out, np.random.default_rng(seed)
        self.seeds = out / "seeds"
        self.seeds.mkdir(parents=True, exist_ok=True)
        r = np.random.default_rng(0)
        fc.write(self.seeds / "grey.png", fc.png_seed(r, "L"))
        fc.write(self.seeds / "colour.png", fc.png_seed(r, "RGB", 64))
        fc.write(self.seeds / "photo.jpg", fc.jpeg_seed(r))
        fc.write(self.seeds / "clip.wav", fc.wav_seed(r))
        fc.write(self.seeds / "codes.npy", fc.npy_seed(r))
        x = r.integers(0, 256, (16, 28, 28), dtype=np.uint8)
        np.save(self.seeds / "tiny.npy", x)
        from vqvae.core import zoo

        self.tok = zoo.resolve("zoo:fashion-mnist/tokenizer")
        from vqvae.cli import main

        if not (self.seeds / "photo.vqz").is_file():
            assert main(["compress", str(self.seeds / "colour.png"), "-o", str(self.seeds / "photo.vqz"), "--refine", "0",
                         "--no-progress"]) == 0
        self.yaml = (REPO / "vqvae" / "configs" / "fashion-mnist.yaml").read_text()

    def case(self, target: str, i: int) -> tuple[list[str], Path]:
        fmt, cmd = target.split(":")
        d = self.out / "cases" / f"{i:06d}"
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
        out = d / "out"
        seed_file = {"png-grey": "grey.png", "png-colour": "colour.png", "jpeg": "photo.jpg", "wav": "clip.wav",
                     "npy": "codes.npy", "vqz": "photo.vqz"}.get(fmt)
        if seed_file:
            kind = {"png-grey": "png", "png-colour": "png", "jpeg": "jpeg", "wav": "wav", "npy": "npy", "vqz": "vqz"}[fmt]
            how, data = fc.mutate((self.seeds / seed_file).read_bytes(), kind, self.rng)
            f = fc.write(d / f"input{Path(seed_file).suffix}", data)
            argv = {"reconstruct": ["reconstruct", str(self.tok if fmt != "wav" else "zoo:fsdd"), str(f), "-o", str(out)],
                    "compress": ["compress", str(f), "-o", str(out) + ".vqz", "--refine", "0", "--no-progress"],
                    "decode": ["decode", str(self.tok), str(f), "-o", str(out)],
                    "decompress": ["decompress", str(f), "-o", str(out) + ".png"]}[cmd]
            if fmt == "wav":
                argv[3:5] = ["-o", str(out) + ".wav"]
                argv += ["--speaker", "george"]
            return argv, d
        if fmt == "npy-hypothesis":
            np.save(d / "input.npy", self._drawn_array(), allow_pickle=False)
            return ["decode", str(self.tok), str(d / "input.npy"), "-o", str(out)], d
        if fmt in ("config", "safetensors"):
            run = d / "run"
            shutil.copytree(self.tok, run)
            if fmt == "config":
                (run / "config.json").write_text(fc.mutate_config((run / "config.json").read_text(), self.rng))
            else:
                (run / "model.safetensors").write_bytes(fc.mutate_safetensors((run / "model.safetensors").read_bytes(), self.rng))
            return ["reconstruct", str(run), str(self.seeds / "grey.png"), "-o", str(out)], d
        train = ["train", "--data", str(self.seeds / "tiny.npy"), "--steps", "1", "--out", str(out), "--no-progress",
                 "--model.hidden=8", "--model.res_hidden=4", "--train.eval_images=4", "--train.batch_size=4"]
        if fmt == "yaml":
            _, text = fc.mutate(self.yaml.encode(), "yaml", self.rng)
            f = fc.write(d / "preset.yaml", text)
            return [*train, "--config", str(f)], d
        return [*train, *[fc.override(self.rng) for _ in range(int(self.rng.integers(1, 4)))]], d

    def _drawn_array(self) -> np.ndarray:
        """An array of any dtype and shape (hypothesis), as a code file's contents."""
        import warnings

        from hypothesis import strategies as st
        from hypothesis.errors import NonInteractiveExampleWarning
        from hypothesis.extra import numpy as hnp

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NonInteractiveExampleWarning)
            dtype = hnp.integer_dtypes() | hnp.floating_dtypes() | hnp.boolean_dtypes() | hnp.unsigned_integer_dtypes()
            return hnp.arrays(dtype, hnp.array_shapes(min_dims=0, max_dims=5, max_side=9)).example()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="bench_out/fuzz")
    ap.add_argument("--hang", type=float, default=10.0, help="seconds after which a case counts as a hang")
    ap.add_argument("--memory-gb", type=float, default=2.0, help="peak resident memory over which a case counts")
    ap.add_argument("--cap-gb", type=float, default=6.0, help="address-space cap of each case")
    ap.add_argument("--targets", default=",".join(TARGETS))
    ap.add_argument("--update-md")
    args = ap.parse_args()
    MEMORY_GB[0] = args.memory_gb
    import torch

    torch.set_num_threads(1)  # forked children must not inherit a thread pool in use
    import vqvae.cli  # noqa: F401  (imported once, before the forks)
    from vqvae.codec import handlers as _c  # noqa: F401
    from vqvae.image import handlers as _i  # noqa: F401

    out = Path(args.out)
    camp = Campaign(out, args.seed)
    targets = args.targets.split(",")
    rows, t0 = [], time.time()
    for i in range(args.cases):
        target = targets[i % len(targets)]
        argv, d = camp.case(target, i)
        r = {"case": i, "target": target, **run_case(argv, d, args.cap_gb, args.hang)}
        rows.append(r)
        if r["verdict"] in ("ok", "refused"):
            shutil.rmtree(d, ignore_errors=True)  # failures keep their inputs
        else:
            (d / "argv.json").write_text(json.dumps(argv))
            print(json.dumps(r), flush=True)
    report = summarise(rows, args, time.time() - t0)
    (out / "report.json").write_text(json.dumps({**report, "failures": [r for r in rows if r["verdict"] not in ("ok", "refused")]}, indent=2))
    print(json.dumps(report, indent=2))
    if args.update_md:
        write_md(report, Path(args.update_md))
    bad = sum(report["totals"].get(k, 0) for k in ("traceback", "hang", "over memory", "silent failure"))
    return 1 if bad else 0


def summarise(rows: list[dict], args, seconds: float) -> dict:
    per = {}
    for t in dict.fromkeys(r["target"] for r in rows):
        c = Counter(r["verdict"] for r in rows if r["target"] == t)
        per[t] = {"cases": sum(c.values()), **c}
    return {"date": time.strftime("%Y-%m-%d"), "cpu": cpu_name(), "cases": len(rows), "seconds": round(seconds),
            "argv": sys.argv[1:], "totals": dict(Counter(r["verdict"] for r in rows)), "per_target": per,
            "refusals": sorted({r["message"] for r in rows if r["verdict"] == "refused"})[:60]}


def write_md(r: dict, md: Path) -> None:
    cols = ("ok", "refused", "traceback", "hang", "over memory", "silent failure")
    lines = [f"`python benchmarks/bench_fuzz.py {' '.join(r['argv'])}` ({r['date']}, {r['cpu']}, {r['cases']} cases in "
             f"{r['seconds']} s)", "", "| format : command | cases | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]
    for t, c in r["per_target"].items():
        lines.append(f"| {t} | {c['cases']} | " + " | ".join(str(c.get(k, 0)) for k in cols) + " |")
    lines.append("| **all** | " + str(r["cases"]) + " | " + " | ".join(f"**{r['totals'].get(k, 0)}**" for k in cols) + " |")
    replace_section(md, "fuzz", "\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
