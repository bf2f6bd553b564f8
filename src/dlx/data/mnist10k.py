"""Genuine MNIST offline: the 10,000 images of the official MNIST test set (LeCun, Cortes &
Burges; CC BY-SA 3.0), shipped inside the package as the original gzipped IDX files
(``dlx/data/mnist_t10k/``, with their source note) and split by ``split_seed`` into
train / val / test: 7,000 / 1,000 / 2,000 at the default fractions (0.1 val, 0.2 test).

Real 28x28 handwriting where the 8x8 digits are too small for a claim to show, with nothing
to download."""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from dlx.data import DATASETS
from dlx.data.base import (
    InMemoryData,
    SplitImageDataConfig,
    check_facts,
    split_images,
)
from dlx.registry import check

#: the shipped files
FILES = Path(__file__).parent / "mnist_t10k"
IMAGES = FILES / "t10k-images-idx3-ubyte.gz"
LABELS = FILES / "t10k-labels-idx1-ubyte.gz"
#: IDX type codes (the third byte of the magic number) -> numpy dtype (big-endian)
IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (LeCun's format: 0, 0, type, ndim, then ndim big-endian int32 sizes and
    the data), gzipped or not, as a numpy array of its shape."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if raw[:2] != b"\0\0" or raw[2] not in IDX_TYPES:
        raise ValueError(f"{path}: not an IDX file")
    ndim = raw[3]
    shape = tuple(int(s) for s in np.frombuffer(raw, ">i4", count=ndim, offset=4))
    data = np.frombuffer(raw, IDX_TYPES[raw[2]], offset=4 + 4 * ndim)
    return data.reshape(shape).astype(data.dtype.newbyteorder("="))


def load_mnist10k() -> tuple[Tensor, Tensor]:
    """The 10,000 test images as uint8 (N, 1, 28, 28) and their int64 labels (N,)."""
    x = torch.from_numpy(read_idx(IMAGES).copy()).unsqueeze(1)
    y = torch.from_numpy(read_idx(LABELS).astype(np.int64))
    return x, y


@dataclass
class Mnist10kConfig(SplitImageDataConfig):
    name: str = "mnist10k"
    test_fraction: float = field(default=0.2, metadata=check(ge=0, lt=1))


@DATASETS.register("mnist10k", Mnist10kConfig)
def mnist10k(cfg: Mnist10kConfig, device: torch.device) -> InMemoryData:
    """The shipped MNIST images as uint8 (N, 1, S, S), split by ``split_seed``."""
    check_facts(cfg, "mnist10k", num_classes=10, channels=1)
    x, y = load_mnist10k()
    return split_images("mnist10k", x, y, cfg, device)
