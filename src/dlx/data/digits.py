"""The default dataset: UCI handwritten digits (1,797 8x8 images) shipped with scikit-learn."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from dlx.data import DATASETS
from dlx.data.base import (
    InMemoryData,
    SplitImageDataConfig,
    check_facts,
    split_images,
)
from dlx.errors import RunFailed
from dlx.registry import check


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """The UCI digits as scikit-learn ships them (pixels 0..16, labels 0..9).

    Read straight from scikit-learn's data file: the same values as
    ``sklearn.datasets.load_digits()`` without the second it takes to import scikit-learn.
    """
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise RunFailed(
            "data=digits needs scikit-learn, which ships the digits: pip install scikit-learn"
        )
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz"
    table = np.loadtxt(path, delimiter=",", dtype=np.float32)
    return table[:, :-1], table[:, -1].astype(np.int64)


@dataclass
class DigitsConfig(SplitImageDataConfig):
    image_size: int | None = field(default=32, metadata=check(ge=8, le=512))


@DATASETS.register("digits", DigitsConfig)
def digits(cfg: DigitsConfig, device: torch.device) -> InMemoryData:
    """The 8x8 digits as uint8 (N, 1, S, S) images, split by ``split_seed``."""
    check_facts(cfg, "digits", num_classes=10, channels=1)
    images, labels = load_digits()
    x = torch.from_numpy(images).mul(255 / 16).round().to(torch.uint8).view(-1, 1, 8, 8)
    y = torch.from_numpy(labels).long()
    return split_images("digits", x, y, cfg, device)
