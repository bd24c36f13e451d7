"""Helpers of the benchmark scripts: Markdown sections of BENCHMARKS.md, the machine's name."""

from __future__ import annotations

import platform
from pathlib import Path


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def replace_section(path: Path, name: str, body: str) -> None:
    """Put ``body`` between ``<!-- name:start -->`` and ``<!-- name:end -->``, appending the section if absent."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    block = f"{start}\n{body.rstrip()}\n{end}"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)


def device_label(device: str | None = None) -> str:
    """``cuda: <GPU name>`` or ``CPU: <model>, <n> threads``, for the benchmark tables.

    ``device``: the device the figures were measured on ("cpu" labels the CPU even
    where CUDA is present); None: CUDA when there is one.
    """
    import torch

    if torch.cuda.is_available() and not str(device or "cuda").startswith("cpu"):
        return f"cuda: {torch.cuda.get_device_name()}"
    return f"CPU: {cpu_name()}, {torch.get_num_threads()} threads"
