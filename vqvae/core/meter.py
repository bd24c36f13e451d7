"""Training logs kept on the device between records, so a training step never waits for it."""

from __future__ import annotations

import torch


class Meter:
    """Sums of a step's logged tensors since the last record, read back to the host once per record.

    :meth:`add` takes a step's logs (0-d tensors and plain numbers) and only queues device additions; :meth:`record`
    returns the means of the tensors over the steps since the previous record (one transfer, the logging step's one
    host sync) with the latest plain numbers (the learning rate). A value logged only on some steps (PSNR, on
    logging steps) is the mean over the steps that logged it.
    """

    def __init__(self):
        self._sum: dict[str, torch.Tensor] = {}
        self._n: dict[str, int] = {}

    def add(self, logs: dict) -> None:
        for k, v in logs.items():
            if torch.is_tensor(v):
                v = v.detach().float()
                if k in self._sum:
                    self._sum[k].add_(v)
                else:
                    self._sum[k] = v.clone()
                self._n[k] = self._n.get(k, 0) + 1

    def record(self, logs: dict) -> dict:
        keys = list(self._sum)
        means = torch.stack([self._sum[k] / self._n[k] for k in keys]).tolist() if keys else []
        self._sum, self._n = {}, {}
        return {**{k: v for k, v in logs.items() if not torch.is_tensor(v)}, **dict(zip(keys, means))}
