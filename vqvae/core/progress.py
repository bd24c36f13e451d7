"""Progress for the phases of a command that take more than a few seconds (evaluation, encoding, decoding).

One helper, so every family's batch loops show the same kind of bar, and only when the work is long enough
to be worth one: a bar over ``range(0, n, batch_size)`` with ``desc``, silent when ``desc`` is ``None`` or the
loop has at most ``min_batches`` batches.
"""

from __future__ import annotations

from tqdm import tqdm


def batches(n: int, batch_size: int, desc: str | None = None, min_batches: int = 20):
    """The batch starts ``0, batch_size, ...`` below ``n``, behind a progress bar named ``desc`` when the loop is long."""
    starts = range(0, n, batch_size)
    return tqdm(starts, desc=desc, leave=False, dynamic_ncols=True, disable=desc is None or len(starts) <= min_batches)

