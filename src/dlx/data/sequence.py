"""Synthetic sequence tasks, generated from a seed and held in memory.

The adding problem (Hochreiter & Schmidhuber, 1997; in the form of Le et al., 2015): each
sample is ``seq_len`` steps of two features, a value drawn from U[0, 1] and a marker that is 1
at exactly two steps, one in each half of the sequence; the target is the sum of the two
marked values. Predicting 1 (the mean) gives an MSE of about 0.167, the baseline to beat.

The copy (memory) task (Hochreiter & Schmidhuber, 1997; in the form of Arjovsky et al., 2016):
each sample is ``length`` symbols drawn uniformly from an alphabet of ``alphabet`` (K), then
``delay - 1`` blanks, a marker, and ``length`` more blanks: ``T = delay + 2 * length`` steps,
each a one-hot of K + 2 tokens (the symbols, blank, marker). The target at every step is one
of K + 1 classes: blank, except at the last ``length`` steps, which must repeat the symbols.
The loss is the mean cross-entropy over all T steps; a memoryless model that outputs blank
until the marker and then a uniform guess scores ``length * log(K) / (delay + 2 * length)``
nats (``copy_baseline``), the baseline to beat. ``acc`` is the per-step accuracy on the
``length`` recalled symbols only (chance: 1/K).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from dlx.data import DATASETS
from dlx.data.base import DataInfo, InMemoryData
from dlx.registry import check


@dataclass
class AddingConfig:
    name: str = "adding"
    batch_size: int = field(default=128, metadata=check(ge=1))
    seq_len: int = field(default=50, metadata=check(ge=2))
    num_train: int = field(default=10000, metadata=check(ge=1))
    num_val: int = field(default=1000, metadata=check(ge=0))
    num_test: int = field(default=1000, metadata=check(ge=0))
    split_seed: int = field(default=0, metadata=check(ge=0))


def adding_problem(n: int, seq_len: int, seed: int | list[int]) -> tuple[Tensor, Tensor]:
    """``n`` samples: x float32 (n, seq_len, 2) of (value, marker), y float32 (n,)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    values = rng.random((n, seq_len), dtype=np.float32)
    half = seq_len // 2
    first = rng.integers(0, half, size=n)
    second = rng.integers(half, seq_len, size=n)
    markers = np.zeros((n, seq_len), dtype=np.float32)
    rows = np.arange(n)
    markers[rows, first] = 1
    markers[rows, second] = 1
    x = torch.from_numpy(np.stack([values, markers], axis=-1))
    y = torch.from_numpy(values[rows, first] + values[rows, second])
    return x, y


@DATASETS.register("adding", AddingConfig, task="regression")
def adding(cfg: AddingConfig, device: torch.device) -> InMemoryData:
    """Train/val/test sets of the adding problem, each from its own stream of ``split_seed``."""
    sizes = {"train": cfg.num_train, "val": cfg.num_val, "test": cfg.num_test}
    splits = {
        split: adding_problem(n, cfg.seq_len, [cfg.split_seed, i])
        for i, (split, n) in enumerate(sizes.items())
    }
    info = DataInfo(
        name="adding",
        kind="sequence",
        task="regression",
        num_classes=1,
        seq_len=cfg.seq_len,
        features=2,
        sizes=sizes,
    )
    return InMemoryData(info, splits, cfg.batch_size, device)


@dataclass
class CopyConfig:
    name: str = "copy"
    batch_size: int = field(default=128, metadata=check(ge=1))
    length: int = field(default=10, metadata=check(ge=1))  # symbols to remember
    delay: int = field(default=20, metadata=check(ge=1))  # steps from the last symbol to the marker
    alphabet: int = field(default=8, metadata=check(ge=2))  # K symbols
    num_train: int = field(default=10000, metadata=check(ge=1))
    num_val: int = field(default=1000, metadata=check(ge=0))
    num_test: int = field(default=1000, metadata=check(ge=0))
    split_seed: int = field(default=0, metadata=check(ge=0))


def copy_baseline(length: int, alphabet: int, delay: int) -> float:
    """The memoryless cross-entropy (nats per step): blanks right, the symbols guessed."""
    return length * math.log(alphabet) / (delay + 2 * length)


def copy_task(
    n: int, length: int, delay: int, alphabet: int, seed: int | list[int]
) -> tuple[Tensor, Tensor]:
    """``n`` samples: x float32 (n, T, K + 2) one-hot tokens, y int64 (n, T) (blank = K)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    steps, blank, marker = delay + 2 * length, alphabet, alphabet + 1
    symbols = torch.from_numpy(rng.integers(0, alphabet, size=(n, length)))
    tokens = torch.full((n, steps), blank, dtype=torch.int64)
    tokens[:, :length] = symbols
    tokens[:, length + delay - 1] = marker
    y = torch.full((n, steps), blank, dtype=torch.int64)
    y[:, -length:] = symbols
    return F.one_hot(tokens, alphabet + 2).float(), y


@DATASETS.register("copy", CopyConfig, task="sequence_classification")
def copy(cfg: CopyConfig, device: torch.device) -> InMemoryData:
    """Train/val/test sets of the copy task, each from its own stream of ``split_seed``."""
    sizes = {"train": cfg.num_train, "val": cfg.num_val, "test": cfg.num_test}
    splits = {
        split: copy_task(n, cfg.length, cfg.delay, cfg.alphabet, [cfg.split_seed, i])
        for i, (split, n) in enumerate(sizes.items())
    }
    info = DataInfo(
        name="copy",
        kind="sequence",
        task="sequence_classification",
        num_classes=cfg.alphabet + 1,
        seq_len=cfg.delay + 2 * cfg.length,
        features=cfg.alphabet + 2,
        sizes=sizes,
        per_step=True,
        scored_steps=cfg.length,
    )
    return InMemoryData(info, splits, cfg.batch_size, device)
