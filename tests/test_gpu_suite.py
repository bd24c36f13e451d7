"""benchmarks/gpu_suite.py: the GPU suite's own machinery, tested on the CPU (its --tiny mode runs every part's smoke
test; the figures come from a GPU)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import gpu_suite  # noqa: E402


def test_a_failing_or_hanging_part_costs_only_its_own_time(tmp_path):
    log = open(tmp_path / "log.txt", "w")
    bad = gpu_suite.Part("bad", 1.0, [[sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"],
                                      [sys.executable, "-c", "print('{\"x\": 1}')"]])
    r = gpu_suite.run_part(bad, 30, log)
    assert not r["ok"] and [c["rc"] for c in r["commands"]] == [3, 0] and r["commands"][1]["report"] == {"x": 1}
    t0 = time.monotonic()
    hang = gpu_suite.run_part(gpu_suite.Part("hang", 1.0, [[sys.executable, "-c", "import time; time.sleep(60)"]]), 2, log)
    assert time.monotonic() - t0 < 15 and not hang["ok"] and hang["commands"][0]["timed_out"]
    gone = gpu_suite.run_part(gpu_suite.Part("gone", 1.0, [[sys.executable, "-c", "pass"]], needs="no_such_module_xyz"), 5, log)
    assert gone["ok"] and "not installed" in gone["skipped"]


def test_last_json_finds_the_scripts_report():
    text = 'progress\n{"a": 1}\nmore\n{\n  "b": [1, 2]\n}\n'
    assert gpu_suite.last_json(text) == {"b": [1, 2]} and gpu_suite.last_json("no json") is None


@pytest.mark.slow
def test_the_tiny_suite_runs_every_part_on_the_cpu(tmp_path):
    """``gpu_suite.py --tiny --device cpu``: every part runs (or says why it is skipped), at most 8 files."""
    out = tmp_path / "suite"
    rc = gpu_suite.main(["--out", str(out), "--tiny", "--device", "cpu", "--minutes", "3"])
    report = json.loads((out / "suite.json").read_text())
    assert list(report["parts"]) == ["tests", "nearest", "train", "prior", "recipe", "table"]
    failed = {k: v["commands"][-1]["error_tail"][-500:] for k, v in report["parts"].items() if not v["ok"]}
    assert rc == 0 and not failed, failed
    assert report["parts"]["recipe"]["commands"][-1]["report"]["bits_per_dim"] > 0
    sections = (out / "sections.md").read_text()
    assert "<!-- bench_gpu_train_cpu:start -->" in sections or "<!-- bench_gpu_train:start -->" in sections
    assert "<!-- paper_table:start -->" in sections
    assert len([p for p in out.rglob("*") if p.is_file()]) <= gpu_suite.MAX_FILES
