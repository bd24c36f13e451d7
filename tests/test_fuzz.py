"""A few hundred cases of issue 26's fuzz campaign (benchmarks/bench_fuzz.py) on every CI run: every mutated image,
WAV, code file, .vqz file, run directory, preset and override either works or is refused in one line (exit 2): no
traceback, no hang, no blow-up of memory, no silent failure. The full campaign (10 000 cases) is in BENCHMARKS.md."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_a_fuzz_campaign_finds_no_traceback_hang_blowup_or_silent_failure(tmp_path):
    out = tmp_path / "fuzz"
    p = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_fuzz.py"), "--cases", "220", "--seed", "7",
                        "--out", str(out)], capture_output=True, text=True, timeout=900, cwd=REPO)
    assert (out / "report.json").is_file(), p.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["cases"] == 220 and len(report["per_target"]) == 11
    assert report["failures"] == [], json.dumps(report["failures"][:5], indent=1)
    assert p.returncode == 0, p.stderr[-2000:]
    assert report["totals"].get("refused", 0) > 100 and report["totals"].get("ok", 0) > 10  # both kinds of outcome occur
