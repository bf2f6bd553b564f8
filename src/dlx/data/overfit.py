"""``trainer.overfit_batches=N``: the first N training batches, for training and validation.

A model that cannot drive its loss to zero on a few batches it sees over and over is broken:
the check Karpathy's recipe and Lightning's ``overfit_batches`` make. The batches come in the
same order every epoch and unaugmented; the test split stays the real one.
"""

from __future__ import annotations

from collections.abc import Iterator

from torch import Tensor

from dlx.data.base import DataModule


class OverfitData:
    """``data`` seen through its first ``n`` training batches (train and val alike)."""

    def __init__(self, data: DataModule, n: int) -> None:
        self.data, self.info = data, data.info
        self.batch_size: int = data.batch_size  # type: ignore[attr-defined]
        self.n = min(n, data.num_batches("train", drop_last=True))

    def num_batches(self, split: str, *, drop_last: bool = False) -> int:
        if split == "test":
            return self.data.num_batches(split, drop_last=drop_last)
        return self.n

    def batches(
        self,
        split: str,
        *,
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = False,
        start: int = 0,
        batch_size: int | None = None,
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """The test split as it is; otherwise the first ``n`` training batches' samples, in
        a fixed order, cut into batches of ``batch_size``."""
        if split == "test":
            yield from self.data.batches(split, drop_last=drop_last, batch_size=batch_size)
            return
        total, bs = self.n * self.batch_size, batch_size or self.batch_size
        count = total // bs if split == "train" else -(-total // bs)
        for i, (x, y) in enumerate(self.data.batches("train", start=start, batch_size=bs), start):
            if i >= count:
                return
            end = total - i * bs  # the last validation batch stops at the n-th batch's end
            yield (x[:end], y[:end]) if end < len(y) else (x, y)
