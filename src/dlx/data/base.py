"""What every dataset gives the training loop: a description and batches on the device."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from dlx.errors import UsageError
from dlx.registry import check


@dataclass(frozen=True)
class DataInfo:
    """Shape of the task, from which models are built.

    Images come as uint8 tensors (N, C, H, W) with H == W == image_size; the loop turns them
    into floats in [0, 1], augments them, then normalises them with ``mean``/``std``.
    Sequences come as float tensors (N, seq_len, features); text as token ids (N, seq_len)
    (int64) over ``vocab``. With ``per_step`` the targets are one per time step, (N, seq_len):
    a recurrent model then emits (N, seq_len, num_classes), and only the last ``scored_steps``
    steps (0: all) count for the accuracy. Images are read as sequences (by the recurrent
    models) row by row or pixel by pixel (``sequence``); ``permute_seed`` set, their pixels
    (a sequence's steps) come in a fixed order drawn from it (``dlx.engine.inputs``), the same
    for every split.
    """

    name: str
    kind: Literal["image", "sequence", "text"]
    num_classes: int  # 1 for a regression task; the vocabulary's size for text
    task: str = "classification"  # an ``OBJECTIVES`` name
    channels: int = 1
    image_size: int = 0
    seq_len: int = 0
    features: int = 0
    mean: tuple[float, ...] = field(default=(0.5,))
    std: tuple[float, ...] = field(default=(0.5,))
    sizes: dict[str, int] = field(default_factory=dict)  # samples per split
    per_step: bool = False
    scored_steps: int = 0
    sequence: Literal["rows", "pixels"] = "rows"
    permute_seed: int | None = None
    vocab: tuple[str, ...] = ()  # text: index -> character (``UNK`` for unseen ones)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one sample as the model sees it."""
        if self.kind == "image":
            return (self.channels, self.image_size, self.image_size)
        if self.kind == "text":
            return (self.seq_len,)
        return (self.seq_len, self.features)

    def zeros(self, n: int = 1) -> Tensor:
        """``n`` blank samples as the model takes them: token ids for text, floats otherwise."""
        dtype = torch.int64 if self.kind == "text" else torch.float32
        return torch.zeros((n, *self.input_shape), dtype=dtype)


class DataModule(Protocol):
    """Train/val/test splits that yield ``(x, y)`` batches already on the training device."""

    info: DataInfo

    def num_batches(self, split: str, *, drop_last: bool = False) -> int: ...

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
        """Batches of ``split`` (``train``/``val``/``test``), of ``batch_size`` samples
        (default ``data.batch_size``).

        With ``shuffle`` the order is a permutation drawn from ``seed`` alone, so an epoch's
        order can be drawn again after a resume; ``start`` skips that many batches.
        """
        ...


def count_batches(n: int, batch_size: int, drop_last: bool) -> int:
    """Batches of ``n`` samples; ``drop_last`` drops a short last one (unless it is the only)."""
    if drop_last and n >= batch_size:
        return n // batch_size
    return -(-n // batch_size)


class InMemoryData:
    """Small datasets held whole as tensors on the training device; batches are index views."""

    def __init__(
        self,
        info: DataInfo,
        splits: dict[str, tuple[Tensor, Tensor]],
        batch_size: int,
        device: torch.device,
    ) -> None:
        self.info = info
        self.batch_size = batch_size
        self.device = device
        self.splits = {
            name: (x.to(device, non_blocking=True), y.to(device, non_blocking=True))
            for name, (x, y) in splits.items()
        }

    def __len__(self) -> int:
        return sum(len(y) for _, y in self.splits.values())

    def num_batches(self, split: str, *, drop_last: bool = False) -> int:
        return count_batches(len(self.splits[split][1]), self.batch_size, drop_last)

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
        x, y = self.splits[split]
        n, bs = len(y), batch_size or self.batch_size
        count = count_batches(n, bs, drop_last)
        if shuffle:
            g = torch.Generator().manual_seed(seed)
            order = torch.randperm(n, generator=g).to(self.device, non_blocking=True)
            for i in range(start, count):
                idx = order[i * bs : (i + 1) * bs]
                yield x[idx], y[idx]
        else:
            for i in range(start, count):
                yield x[i * bs : (i + 1) * bs], y[i * bs : (i + 1) * bs]


def keep_train_fraction(data: Any, fraction: float, seed: int) -> None:
    """Keep a seeded ``fraction`` of ``data``'s training split (at least one sample), in
    place: the same subset for every run of one ``seed``, nested as the fraction grows."""
    if fraction >= 1:
        return
    if not isinstance(data, InMemoryData):
        raise UsageError(f"data.train_fraction={fraction}: data={data.info.name} keeps it at 1.0")
    x, y = data.splits["train"]
    g = torch.Generator().manual_seed(seed + 7919)  # not the split's own permutation
    keep = torch.randperm(len(y), generator=g)[: max(1, round(len(y) * fraction))]
    keep = keep.sort().values.to(x.device)
    data.splits["train"] = (x[keep], y[keep])
    data.info = replace(data.info, sizes={**data.info.sizes, "train": len(keep)})


# --- shared by the image datasets -----------------------------------------------------------
@dataclass
class ReadingConfig:
    """How the recurrent models read an image: ``sequence=rows`` (H steps of C*W features)
    or ``pixels`` (H*W steps of C); ``permute`` shuffles the pixel order by a fixed
    permutation drawn from ``permute_seed`` (null: ``split_seed``), for every model and split.
    """

    sequence: str = field(default="rows", metadata=check(choices=["rows", "pixels"]))
    permute: bool = False
    permute_seed: int | None = field(default=None, metadata=check(ge=0))


def reading(info: DataInfo, cfg: Any) -> DataInfo:
    """``info`` with the reading keys of ``cfg`` (a ``ReadingConfig``) filled in."""
    seed = cfg.permute_seed if cfg.permute_seed is not None else getattr(cfg, "split_seed", 0)
    return replace(info, sequence=cfg.sequence, permute_seed=seed if cfg.permute else None)


@dataclass
class ImageDataConfig(ReadingConfig):
    """Keys shared by the image datasets.

    ``num_classes`` and ``channels`` state facts about a fixed dataset: left null they are
    filled in, set to anything else they are an error (see ``check_facts``).
    ``image_size`` null keeps the dataset's own size.
    """

    name: str = "digits"
    root: str = "data"
    download: bool = False
    batch_size: int = field(default=128, metadata=check(ge=1))
    num_classes: int | None = field(default=None, metadata=check(ge=1))
    image_size: int | None = field(default=None, metadata=check(ge=8, le=512))
    channels: int | None = field(default=None, metadata=check(choices=[1, 3]))
    # > 0: best.pt and the monitor follow val/* (0 would leave them nothing to follow)
    val_fraction: float = field(default=0.1, metadata=check(gt=0, lt=1))
    # a seeded subset of the training split (val and test stay whole): small-data studies
    train_fraction: float = field(default=1.0, metadata=check(gt=0, le=1))
    split_seed: int = 0
    num_workers: int = field(default=2, metadata=check(ge=0))  # loader processes, if any


@dataclass
class SplitImageDataConfig(ImageDataConfig):
    """Image data with no official test split: val and test are both carved from the train set."""

    test_fraction: float = field(default=0.15, metadata=check(ge=0, lt=1))


def check_facts(cfg: Any, dataset: str, **facts: int) -> None:
    """Raise ``UsageError`` if a config key such as ``num_classes`` contradicts the dataset."""
    for key, true in facts.items():
        given = getattr(cfg, key)
        if given is not None and given != true:
            raise UsageError(
                f"data.{key}={given}: {dataset} has {key}={true}; "
                f"set data.{key}={true} or leave it out"
            )


def resize(x: Tensor, size: int, chunk: int = 4096) -> Tensor:
    """Resize a uint8 batch (N, C, H, W) to size x size with antialiased bilinear filtering.

    Works through ``chunk`` images at a time so that the float copies stay small.
    """
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    out = torch.empty((*x.shape[:2], size, size), dtype=torch.uint8, device=x.device)
    for i in range(0, len(x), chunk):
        part = x[i : i + chunk].float()
        y = F.interpolate(part, size=(size, size), mode="bilinear", antialias=True)
        out[i : i + chunk] = y.round_().clamp_(0, 255)
    return out


def split_indices(n: int, fractions: tuple[float, float], seed: int) -> tuple[Tensor, ...]:
    """A seeded permutation of range(n) cut into train / val / test by the given fractions."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val, n_test = round(n * fractions[0]), round(n * fractions[1])
    return order[n_val + n_test :], order[:n_val], order[n_val : n_val + n_test]


def channel_stats(x: Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of a uint8 batch (N, C, H, W), scaled to [0, 1].

    Exact and cheap: computed from each channel's histogram of the 256 byte values.
    """
    hist = [torch.bincount(x[:, c].flatten(), minlength=256) for c in range(x.shape[1])]
    hist = torch.stack(hist).double()
    levels = torch.arange(256, dtype=torch.float64) / 255
    n = hist.sum(1)
    mean = hist @ levels / n
    std = (hist @ levels.square() / n - mean.square()).clamp_(min=0).sqrt()
    return tuple(mean.tolist()), tuple(std.tolist())


def split_images(
    name: str, x: Tensor, y: Tensor, cfg: SplitImageDataConfig, device: torch.device
) -> InMemoryData:
    """Labelled uint8 images (N, 1, S, S) of ``num_classes=10``, resized to
    ``cfg.image_size`` and split by ``cfg``'s fractions and seed, on ``device`` (the bundled
    digit sets)."""
    size = x.shape[-1] if cfg.image_size is None else cfg.image_size
    x = resize(x, size)
    train, val, test = split_indices(len(y), (cfg.val_fraction, cfg.test_fraction), cfg.split_seed)
    splits = {"train": (x[train], y[train]), "val": (x[val], y[val]), "test": (x[test], y[test])}
    mean, std = channel_stats(splits["train"][0])
    info = DataInfo(
        name=name,
        kind="image",
        num_classes=10,
        channels=1,
        image_size=size,
        mean=mean,
        std=std,
        sizes={k: len(v[1]) for k, v in splits.items()},
    )
    return InMemoryData(info, splits, cfg.batch_size, device)
