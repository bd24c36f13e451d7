"""Issue 26: time and peak memory of the image and audio commands against the input's size.

    python benchmarks/bench_memory.py --update-md BENCHMARKS.md
    python benchmarks/bench_memory.py --repo ../old-checkout --label before --update-md BENCHMARKS.md   # another checkout

Each case runs ``vqvae reconstruct`` in a fresh process (``python -m vqvae`` from ``--repo``, default this one) on a
generated input: grey PNGs of 1, 4, 16, 64 and 100 megapixels through ``zoo:fashion-mnist/tokenizer`` (a smooth random field,
so the PNG is small and the nets see texture), and wavs of 1, 10 and 60 minutes of noise-like speech-band audio
through ``zoo:fsdd``. Peak memory is the child's maximum resident set (``getrusage``); a case is stopped at
``--limit-gb`` of address space and ``--timeout`` seconds and reported as such. Prints JSON; ``--update-md`` writes
the section ``memory_<label>`` and a plot ``docs/memory.png`` once both labels are in the JSON file ``--store``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.mdsection import cpu_name, replace_section  # noqa: E402

IMAGE_MP = (1, 4, 16, 64, 100)
AUDIO_MIN = (1, 10, 60)


def make_image(mp: float, path: Path) -> Path:
    from PIL import Image

    side = int(round((mp * 1e6) ** 0.5))
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (max(side // 64, 2), max(side // 64, 2)), dtype=np.uint8)
    Image.fromarray(small).resize((side, side), Image.BILINEAR).save(path, optimize=False, compress_level=1)
    return path


def make_wav(minutes: float, path: Path, rate: int = 8000) -> Path:
    from scipy.io import wavfile

    n = int(minutes * 60 * rate)
    t = np.arange(n) / rate
    x = 0.3 * np.sin(2 * np.pi * (200 + 100 * np.sin(2 * np.pi * 0.5 * t)) * t) + 0.05 * np.random.default_rng(0).standard_normal(n)
    wavfile.write(path, rate, (np.clip(x, -1, 1) * 32767).astype(np.int16))
    return path


def run_case(repo: Path, argv: list[str], limit_gb: float, timeout: float) -> dict:
    """One command in a fresh process capped at ``limit_gb`` of address space: its own peak resident set (from
    ``wait4``), wall time and outcome."""
    limit = int(limit_gb * 2**30)

    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    env = {**os.environ, "PYTHONPATH": str(repo)}
    with tempfile.TemporaryFile() as err:
        t0 = time.time()
        p = subprocess.Popen([sys.executable, "-m", "vqvae", *argv], cwd=repo, env=env, preexec_fn=cap,
                             stdout=subprocess.DEVNULL, stderr=err)
        timer = threading.Timer(timeout, p.kill)
        timer.start()
        _, code, ru = os.wait4(p.pid, 0)
        timer.cancel()
        p.returncode = os.waitstatus_to_exitcode(code)
        seconds = time.time() - t0
        err.seek(0)
        tail = err.read().decode(errors="replace").strip().splitlines()
    if p.returncode == 0:
        status = "ok"
    elif seconds >= timeout:
        status = f"stopped at {timeout:.0f} s"
    else:
        status = f"exit {p.returncode}: {tail[-1][:100] if tail else ''}"
    return {"status": status, "seconds": round(seconds, 1), "peak_mb": round(ru.ru_maxrss / 1024)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", default=str(REPO))
    ap.add_argument("--label", default="after")
    ap.add_argument("--work", default="bench_out/memory")
    ap.add_argument("--limit-gb", type=float, default=8.0)
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--images", default=",".join(map(str, IMAGE_MP)))
    ap.add_argument("--audio", default=",".join(map(str, AUDIO_MIN)))
    ap.add_argument("--store", default="bench_out/memory/results.json")
    ap.add_argument("--legacy", action="store_true", help="a checkout from before --max-pixels existed (the flag is left out)")
    ap.add_argument("--update-md")
    args = ap.parse_args()
    work, repo = Path(args.work), Path(args.repo).resolve()
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for mp in [float(v) for v in args.images.split(",") if v]:
        src = work / f"grey-{mp:g}mp.png"
        if not src.is_file():
            make_image(mp, src)
        limit = [] if args.legacy else ["--max-pixels", str(10**9)]
        r = run_case(repo, ["reconstruct", "zoo:fashion-mnist/tokenizer", str(src.resolve()), "-o", str((work / "out").resolve()), *limit],
                     args.limit_gb, args.timeout)
        rows.append({"kind": "image", "size": mp, "unit": "MP", **r})
        print(json.dumps(rows[-1]), flush=True)
    for mins in [float(v) for v in args.audio.split(",") if v]:
        src = work / f"speech-{mins:g}min.wav"
        if not src.is_file():
            make_wav(mins, src)
        r = run_case(repo, ["reconstruct", "zoo:fsdd", str(src.resolve()), "-o", str((work / f"out-{mins:g}.wav").resolve()), "--speaker", "george"],
                     args.limit_gb, args.timeout)
        rows.append({"kind": "audio", "size": mins, "unit": "min", **r})
        print(json.dumps(rows[-1]), flush=True)
    store = Path(args.store)
    data = json.loads(store.read_text()) if store.is_file() else {}
    data[args.label] = {"date": time.strftime("%Y-%m-%d"), "repo": str(repo), "cpu": cpu_name(), "rows": rows,
                        "limit_gb": args.limit_gb, "timeout": args.timeout}
    store.write_text(json.dumps(data, indent=2))
    if args.update_md:
        write_md(data, Path(args.update_md))
    return 0


def write_md(data: dict, md: Path) -> None:
    lines = ["`python benchmarks/bench_memory.py` (`--repo` a checkout of the commit before, `--label before`), "
             f"{next(iter(data.values()))['cpu']}; peak resident memory of the whole process and wall time, "
             "`vqvae reconstruct` on one input:", "",
             "| input | " + " | ".join(f"{lab} ({d['date']})" for lab, d in data.items()) + " |", "|---|" + "---|" * len(data)]
    keys = sorted({(r["kind"], r["size"], r["unit"]) for d in data.values() for r in d["rows"]})
    for kind, size, unit in keys:
        cells = []
        for d in data.values():
            r = next((r for r in d["rows"] if (r["kind"], r["size"]) == (kind, size)), None)
            cells.append("–" if r is None else f"{r['peak_mb']} MB, {r['seconds']} s" + ("" if r["status"] == "ok" else f" ({r['status']})"))
        lines.append(f"| {kind} {size:g} {unit} | " + " | ".join(cells) + " |")
    replace_section(md, "memory", "\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
