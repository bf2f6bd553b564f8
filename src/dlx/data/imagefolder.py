"""A user's own images in class folders, read through torchvision ``ImageFolder`` and a DataLoader.

Layout: ``ROOT/train/<class>/*.png|jpg`` and optionally ``ROOT/val/`` and ``ROOT/test/`` with
the same class folders; a split without its folder is carved from train by ``val_fraction`` /
``test_fraction`` (seeded by ``split_seed``). Images are decoded per batch by ``num_workers``
processes, so the set can be larger than memory.

Per-sample augmentation draws from a seed of its own for each (epoch, image): the same image
in the same epoch gets the same draw whatever the worker, the number of workers or the batch a
resumed run starts from, so a resume continues exactly.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler, Subset

from dlx.data import DATASETS
from dlx.data.base import (
    DataInfo,
    SplitImageDataConfig,
    channel_stats,
    check_facts,
    count_batches,
    split_indices,
)
from dlx.errors import UsageError
from dlx.registry import check

if TYPE_CHECKING:
    from torchvision.datasets import ImageFolder


@dataclass
class ImageFolderConfig(SplitImageDataConfig):
    """``channels`` is a choice here (1: grayscale conversion); ``num_classes`` is counted."""

    name: str = "imagefolder"
    image_size: int = field(default=32, metadata=check(ge=8, le=512))
    channels: int = field(default=3, metadata=check(choices=[1, 3]))
    stats_samples: int = field(default=500, metadata=check(ge=0))  # images for mean/std


class TrainPipeline:
    """The train split's per-sample transform: the fixed ``base`` then the optional ``extra``.

    ``extra`` is the hook for per-sample augmentation (``torchvision.transforms.v2`` on uint8
    ``tv_tensors.Image``); set it through ``FolderData.train_transform``.
    """

    def __init__(self, base: Callable[[Any], Tensor]) -> None:
        self.base = base
        self.extra: Callable[[Tensor], Tensor] | None = None

    def __call__(self, img: Any) -> Tensor:
        x = self.base(img)
        return x if self.extra is None else self.extra(x)


class _Batches(Sampler[list[tuple[int, int]]]):
    """A batch sampler whose batches of (index, seed) are set before each pass (one
    DataLoader per split)."""

    def __init__(self) -> None:
        self.batches: list[list[tuple[int, int]]] = []

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class _Seeded(Dataset):
    """``dataset[index]`` with torch's CPU generator seeded by the item's own seed, and put
    back afterwards (the process's stream is left as it was)."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, item: tuple[int, int]) -> Any:
        index, seed = item
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.dataset[index]


def sample_seed(epoch_seed: int, index: int) -> int:
    """The seed of image ``index``'s augmentation in the pass seeded ``epoch_seed``."""
    return hash((epoch_seed, index)) % 2**63


class FolderData:
    """Splits of image folders, decoded by DataLoader workers, batches moved to ``device``.

    Each split keeps one DataLoader (workers persist across epochs when ``num_workers`` > 0),
    so run one pass over a split at a time.
    """

    def __init__(
        self,
        info: DataInfo,
        splits: dict[str, Dataset],
        train_pipeline: TrainPipeline,
        batch_size: int,
        num_workers: int,
        device: torch.device,
    ) -> None:
        self.info = info
        self.splits = splits
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.device = device
        self._pipeline = train_pipeline
        self._loaders: dict[str, tuple[DataLoader, _Batches, torch.Generator]] = {}

    @property
    def train_transform(self) -> Callable[[Tensor], Tensor] | None:
        """Per-sample transform applied to train images after decoding (None: none)."""
        return self._pipeline.extra

    @train_transform.setter
    def train_transform(self, fn: Callable[[Tensor], Tensor] | None) -> None:
        self._pipeline.extra = fn
        self._loaders.clear()  # workers hold a copy of the dataset: start fresh ones

    def num_batches(self, split: str, *, drop_last: bool = False) -> int:
        return count_batches(len(self.splits[split]), self.batch_size, drop_last)

    def _loader(self, split: str) -> tuple[DataLoader, _Batches, torch.Generator]:
        if split not in self._loaders:
            batches, gen = _Batches(), torch.Generator()
            loader = DataLoader(
                _Seeded(self.splits[split]),
                batch_sampler=batches,
                num_workers=self.num_workers,
                pin_memory=self.device.type == "cuda",
                persistent_workers=self.num_workers > 0,
                generator=gen,  # worker seeds come from here, not from the global RNG
            )
            self._loaders[split] = (loader, batches, gen)
        return self._loaders[split]

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
        loader, sampler, gen = self._loader(split)
        n, bs = len(self.splits[split]), batch_size or self.batch_size
        if shuffle:
            order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        else:
            order = torch.arange(n)
        count = count_batches(n, bs, drop_last)
        sampler.batches = [
            [(j, sample_seed(seed, j)) for j in order[i * bs : (i + 1) * bs].tolist()]
            for i in range(start, count)
        ]
        gen.manual_seed(seed)
        for x, y in loader:
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)


def _open(
    path: Path, root: str, transform: Callable[[Any], Tensor], classes: list[str] | None
) -> ImageFolder:
    """An ImageFolder over ``path``; its class folders must equal ``classes`` when given."""
    from torchvision.datasets import ImageFolder

    try:
        ds = ImageFolder(str(path), transform=transform)
    except FileNotFoundError as e:
        reason = str(e).splitlines()[0]
        raise UsageError(
            f"data.root={root}: cannot read {path} ({reason}); "
            f"expected {path}/<class>/<image>.png|jpg"
        ) from None
    if classes is not None and ds.classes != classes:
        raise UsageError(
            f"data.root={root}: the class folders of {path} differ from those of train "
            f"({', '.join(sorted(set(ds.classes) ^ set(classes)))})"
        )
    return ds


@DATASETS.register("imagefolder", ImageFolderConfig)
def imagefolder(cfg: ImageFolderConfig, device: torch.device) -> FolderData:
    """Class folders under ``cfg.root`` as uint8 (B, C, S, S) batches."""
    from torchvision.transforms import v2

    root = Path(cfg.root).expanduser()
    gray = [v2.Grayscale(num_output_channels=1)] if cfg.channels == 1 else []
    base = v2.Compose(
        [v2.Resize(cfg.image_size), v2.CenterCrop(cfg.image_size), *gray, v2.ToImage()]
    )
    pipeline = TrainPipeline(base)
    train_all = _open(root / "train", cfg.root, pipeline, None)
    classes = train_all.classes
    check_facts(cfg, "imagefolder", num_classes=len(classes))
    given = {
        s: _open(root / s, cfg.root, base, classes) for s in ("val", "test") if (root / s).is_dir()
    }
    fractions = (
        0.0 if "val" in given else cfg.val_fraction,
        0.0 if "test" in given else cfg.test_fraction,
    )
    train, val, test = split_indices(len(train_all), fractions, cfg.split_seed)
    eval_view = copy.copy(train_all)  # the carved val/test: same files, no augmentation
    eval_view.transform = base
    splits: dict[str, Dataset] = {
        "train": Subset(train_all, train.tolist()),
        "val": given["val"] if "val" in given else Subset(eval_view, val.tolist()),
        "test": given["test"] if "test" in given else Subset(eval_view, test.tolist()),
    }
    mean, std = _stats(eval_view, train, cfg)
    info = DataInfo(
        name="imagefolder",
        kind="image",
        num_classes=len(classes),
        channels=cfg.channels,
        image_size=cfg.image_size,
        mean=mean,
        std=std,
        sizes={k: len(v) for k, v in splits.items()},
    )
    return FolderData(info, splits, pipeline, cfg.batch_size, cfg.num_workers, device)


def _stats(
    ds: Dataset, train: Tensor, cfg: ImageFolderConfig
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean/std estimated from up to ``stats_samples`` seeded train images."""
    if cfg.stats_samples == 0 or len(train) == 0:
        return (0.5,) * cfg.channels, (0.5,) * cfg.channels
    g = torch.Generator().manual_seed(cfg.split_seed)
    pick = train[torch.randperm(len(train), generator=g)[: cfg.stats_samples]]
    return channel_stats(torch.stack([ds[i][0] for i in pick.tolist()]))
