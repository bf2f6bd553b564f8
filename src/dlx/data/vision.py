"""The classic image benchmarks, read by torchvision's own dataset classes and held in memory.

Files sit under ``data.root`` in torchvision's layout (``ROOT/MNIST/raw/``,
``ROOT/cifar-10-batches-py/``, ``ROOT/train_32x32.mat`` ...); ``data.download=true`` lets
torchvision fetch them. The val split is carved from the official train split by
``val_fraction`` (seeded); test is the official test split.
"""

from __future__ import annotations

import gzip
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor

from dlx.data import DATASETS
from dlx.data.base import (
    DataInfo,
    ImageDataConfig,
    InMemoryData,
    channel_stats,
    check_facts,
    resize,
    split_indices,
)
from dlx.errors import UsageError


@dataclass(frozen=True)
class VisionSpec:
    """How one torchvision dataset class is called and what its arrays look like."""

    cls: str  # class name in torchvision.datasets
    folder: str  # where torchvision keeps the files, relative to data.root
    num_classes: int
    channels: int
    image_size: int  # native size: the default for data.image_size
    layout: Literal["NHW", "NHWC", "NCHW"]  # layout of the dataset's ``data`` array
    labels: str = "targets"  # attribute holding the labels
    split_arg: Literal["train", "split"] = "train"  # train=True/False or split="train"/"test"


SPECS: dict[str, VisionSpec] = {
    "mnist": VisionSpec("MNIST", "MNIST/raw", 10, 1, 28, "NHW"),
    "fashion_mnist": VisionSpec("FashionMNIST", "FashionMNIST/raw", 10, 1, 28, "NHW"),
    "kmnist": VisionSpec("KMNIST", "KMNIST/raw", 10, 1, 28, "NHW"),
    "cifar10": VisionSpec("CIFAR10", "cifar-10-batches-py", 10, 3, 32, "NHWC"),
    "cifar100": VisionSpec("CIFAR100", "cifar-100-python", 100, 3, 32, "NHWC"),
    "svhn": VisionSpec("SVHN", ".", 10, 3, 32, "NCHW", labels="labels", split_arg="split"),
}

_TO_NCHW = {
    "NHW": lambda x: x.unsqueeze(1),
    "NHWC": lambda x: x.permute(0, 3, 1, 2),
    "NCHW": lambda x: x,
}


def unpack_gz(cls: type, where: Path, root: str) -> None:
    """The MNIST family's files as published (``NAME.gz``): each decompressed beside its
    ``.gz``, as torchvision's own download does, where the plain file is missing."""
    for name, _ in getattr(cls, "resources", []):
        gz, plain = where / name, where / name.removesuffix(".gz")
        if not name.endswith(".gz") or not gz.is_file() or plain.exists():
            continue
        part = plain.with_name(plain.name + ".part")
        try:
            with gzip.open(gz) as src, open(part, "wb") as dst:
                shutil.copyfileobj(src, dst)
            part.replace(plain)
        except (OSError, EOFError) as e:
            part.unlink(missing_ok=True)
            raise UsageError(
                f"data.root={root}: cannot decompress {gz} to {plain} ({e}); "
                "gunzip it where dlx can read it"
            ) from None


def wanted_files(cls: type) -> str:
    """The file names torchvision's ``cls`` reads, for a missing-files message."""
    if hasattr(cls, "resources"):  # the MNIST family
        names = [n.removesuffix(".gz") for n, _ in cls.resources]
        return ", ".join(names) + " (or the same names with .gz, as published)"
    if hasattr(cls, "split_list"):  # SVHN
        return ", ".join(cls.split_list[s][1] for s in ("train", "test"))
    names = [n for n, _ in [*cls.train_list, *cls.test_list]] + [cls.meta["filename"]]
    return ", ".join(names) + f" (unpacked from {cls.filename})"


def load_split(spec: VisionSpec, root: str, download: bool, train: bool) -> tuple[Tensor, Tensor]:
    """One official split as uint8 images (N, C, H, W) and int64 labels (N,)."""
    import numpy as np
    import torchvision.datasets

    cls = getattr(torchvision.datasets, spec.cls)
    if spec.split_arg == "train":
        split: dict[str, object] = {"train": train}
    else:
        split = {"split": "train" if train else "test"}
    path = Path(root).expanduser()
    where = path / spec.folder
    unpack_gz(cls, where, root)
    try:
        ds = cls(str(path), download=download, **split)
    except (RuntimeError, OSError) as e:
        if download:
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise UsageError(
                f"data.root={root}: could not download {spec.cls} into {where} ({reason})"
            ) from None
        raise UsageError(
            f"data.root={root}: {spec.cls} not found: {where} must hold {wanted_files(cls)}; "
            "put the files there or add data.download=true"
        ) from None
    x = _TO_NCHW[spec.layout](torch.as_tensor(np.asarray(ds.data))).contiguous()
    y = torch.as_tensor(np.asarray(getattr(ds, spec.labels)), dtype=torch.long)
    return x, y


def vision(cfg: ImageDataConfig, device: torch.device) -> InMemoryData:
    """Build the dataset named ``cfg.name`` from ``SPECS``."""
    spec = SPECS[cfg.name]
    check_facts(cfg, cfg.name, num_classes=spec.num_classes, channels=spec.channels)
    size = spec.image_size if cfg.image_size is None else cfg.image_size
    x, y = load_split(spec, cfg.root, cfg.download, train=True)
    x_test, y_test = load_split(spec, cfg.root, cfg.download, train=False)
    x, x_test = resize(x, size), resize(x_test, size)
    train, val, _ = split_indices(len(y), (cfg.val_fraction, 0.0), cfg.split_seed)
    splits = {"train": (x[train], y[train]), "val": (x[val], y[val]), "test": (x_test, y_test)}
    mean, std = channel_stats(splits["train"][0])
    info = DataInfo(
        name=cfg.name,
        kind="image",
        num_classes=spec.num_classes,
        channels=spec.channels,
        image_size=size,
        mean=mean,
        std=std,
        sizes={k: len(v[1]) for k, v in splits.items()},
    )
    return InMemoryData(info, splits, cfg.batch_size, device)


for _name in SPECS:
    DATASETS.register(_name, ImageDataConfig)(vision)
