"""Data loaded once per process for every run that asks for the same data.

The trials of a sweep that run in one process (the basic launcher, or one joblib worker that
runs several) ask for the same dataset again and again: reading, resizing and splitting it is
the same work every time. ``build_data`` keeps what a dataset's builder returned, keyed by
the whole ``cfg.data`` node and the device, and gives each later run with the same key its
own ``InMemoryData`` over the same tensors (no run changes a batch it was given in place: the
loop turns uint8 images into new float tensors). Datasets that read from disk while they
train (image folders, loaders with workers) are built afresh each time.

Only the last ``SIZE`` datasets stay, so a sweep over ``data=...`` holds one or two at a time.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from dlx.data.base import InMemoryData

#: datasets kept at most (the most recently used ones)
SIZE = 2


class DataCache:
    """The built datasets of this process, by data config and device."""

    def __init__(self, size: int = SIZE) -> None:
        self.size = size
        self.kept: OrderedDict[str, InMemoryData] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: str, build: Callable[[], Any]) -> Any:
        """A run's own copy of the dataset under ``key``; ``build()`` it when not kept."""
        if key in self.kept:
            self.kept.move_to_end(key)
            self.hits += 1
            return fresh_view(self.kept[key])
        self.misses += 1
        before = rng_states()
        data = build()
        # a build that drew from the global random state could not be replayed by a hit
        if isinstance(data, InMemoryData) and same_states(before, rng_states()):
            self.kept[key] = data
            while len(self.kept) > self.size:
                self.kept.popitem(last=False)
            return fresh_view(data)
        return data

    def clear(self) -> None:
        self.kept.clear()


def fresh_view(data: InMemoryData) -> InMemoryData:
    """A new ``InMemoryData`` over the same tensors: a run may replace its splits or its
    info (``train_fraction``, reading keys) without touching the kept one."""
    view = copy.copy(data)
    view.splits = dict(data.splits)
    return view


def key_of(cfg: Any, device: Any) -> str:
    """The cache key of a parsed data config (its schema dataclass, or a mapping) on
    ``device``: every key of it, so any change of the data config is another dataset."""
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        plain: Any = {"type": type(cfg).__qualname__, **dataclasses.asdict(cfg)}
    else:
        plain = dict(cfg)
    return json.dumps({"data": plain, "device": str(device)}, sort_keys=True, default=str)


def rng_states() -> tuple[Any, Any, Any]:
    """The global random states a builder could draw from: torch's, NumPy's, Python's."""
    import random

    import numpy as np
    import torch

    return torch.random.get_rng_state(), np.random.get_state(), random.getstate()


def same_states(a: tuple[Any, Any, Any], b: tuple[Any, Any, Any]) -> bool:
    import numpy as np
    import torch

    (ta, na, pa), (tb, nb, pb) = a, b
    numpy_same = na[0] == nb[0] and np.array_equal(na[1], nb[1]) and na[2:] == nb[2:]
    return bool(torch.equal(ta, tb)) and numpy_same and pa == pb


#: this process's cache (a worker process that runs several trials keeps its own)
CACHE = DataCache()
