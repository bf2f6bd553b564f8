"""Augmentation: the ``augment`` config group, several options at once, applied to whole
batches on the training device with a draw per sample.

Choose a list, each option's keys under ``augment.<name>.``:
``'augment=[flip,crop,cutout]' augment.cutout.size=0.25``. Presets are files of the group
that set several options: ``standard`` (flip + crop), ``strong`` (flip + crop +
trivialaugment + cutout + cutmix); ``'augment=[standard,mixup]'`` adds to one.

Whatever order the list names them in, options apply in this fixed order (``ORDER``):

1. geometric: ``crop`` (pad + random window), ``flip``, ``rotate``, ``affine``;
2. learned policies: ``autoaugment``, ``randaugment``, ``trivialaugment``;
3. colour: ``color``, ``blur``, ``noise``;
4. erasing: ``cutout``;
5. multi-sample: ``mixup``, then ``cutmix`` (soft targets).

That is the order of torchvision's reference recipes: crops and flips first, policies on the
cropped image, erasing after, batch mixing last. The loop feeds the uint8 batch: the leading
data-movement options (``crop``, ``flip``) run first as one composed gather on the bytes
(exact, and 4x less memory traffic than on floats), then the batch becomes floats in [0, 1]
(before normalisation) for the rest; every op keeps shape, dtype and range. A float batch in
[0, 1] may be fed too (same result). Evaluation is never augmented; the
opt-in ``trainer.tta=flip`` averages the logits of x and its mirror image (``dlx.augment.tta``).

In-memory datasets are augmented here, batched on the device. Datasets read through a
DataLoader (``imagefolder``) get each option's torchvision v2 twin per sample in the loader's
workers instead, and only the batch-level ``mixup``/``cutmix`` run here.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from dlx.augment.base import AUGMENTS, Op, Remap, Rng
from dlx.augment.geometric import remap
from dlx.data.base import DataInfo

ORDER = [
    "crop",
    "flip",
    "rotate",
    "affine",
    "autoaugment",
    "randaugment",
    "trivialaugment",
    "color",
    "blur",
    "noise",
    "cutout",
    "mixup",
    "cutmix",
]
#: options that need a whole batch: they stay on the device even on the DataLoader path
BATCH_ONLY = ("mixup", "cutmix")

__all__ = ["AUGMENTS", "ORDER", "Augmenter", "build_augment", "split_augment"]


class Augmenter:
    """The chosen ops in ``ORDER``, drawing from seeded generators: one on the training
    device (per-sample parameters) and one on the CPU (choices the host must know).

    The leading ops that are pure data movement (``Op.remap``) run as one composed gather,
    drawing exactly what they would one by one: same seed, same batch, bit for bit.
    """

    def __init__(self, ops: list[tuple[str, Op]], device: torch.device, seed: int) -> None:
        self.ops = ops
        k = 0
        while k < len(ops) and ops[k][1].remap is not None:
            k += 1
        self.moves, self.rest = [op for _, op in ops[:k]], [op for _, op in ops[k:]]
        self.device = torch.device(device)
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.cpu_generator = torch.Generator().manual_seed(seed)
        self.rng = Rng(self.generator, self.cpu_generator)

    @property
    def names(self) -> list[str]:
        return [n for n, _ in self.ops]

    def __call__(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """Augment ``x``: uint8 (N, C, H, W) images, or floats in [0, 1]; floats come back.

        The leading data-movement ops (crop, flip) run as one gather on the uint8 bytes,
        before the conversion to floats that the other ops work on.
        """
        return self.corrupt(self.move(x), y)

    def move(self, x: Tensor) -> Tensor:
        """The leading data-movement ops (crop, flip) as one gather; floats in [0, 1] out.
        What a reconstruction's target follows (``Inputs``)."""
        if self.moves:
            n, _, h, w = x.shape
            m: Remap | None = None
            for op in self.moves:
                step = op.remap((n, h, w), self.rng, x.device)
                m = step if m is None else m.then(step)
            x = remap(x, m)
        return x.float().div_(255) if x.dtype == torch.uint8 else x

    def corrupt(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """The other ops, on floats in [0, 1]; ``x`` itself is left as it is (every op
        returns a new tensor)."""
        for op in self.rest:
            x, y = op.batch(x, y, self.rng)
        return x, y

    def fork(self, seed: int) -> Augmenter:
        """The same ops with fresh generators: draws that leave this one's streams alone."""
        return Augmenter(self.ops, self.device, seed)

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "cpu": self.cpu_generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        if "cpu" in state:
            self.cpu_generator.set_state(state["cpu"])


def parse_ops(node: Any, info: DataInfo) -> list[tuple[str, Op]]:
    """The options ``node`` (``cfg.augment``) chooses, checked and built, in ``ORDER``."""
    names = list(node.keys()) if node else []
    for n in names:
        AUGMENTS.get(n)  # unknown names fail here, with the allowed list
    ops = []
    for n in sorted(names, key=ORDER.index):
        cfg = AUGMENTS.parse(node[n], n, prefix=f"augment.{n}")
        ops.append((n, AUGMENTS.get(n).builder(cfg, info)))
    return ops


def split_augment(
    node: Any, info: DataInfo, device: torch.device, seed: int, per_sample: bool = False
) -> tuple[Augmenter | None, Any]:
    """The pipeline ``cfg.augment`` describes, split between the device and the samples.

    Returns the batched ``Augmenter`` (None when nothing runs on the device) and, with
    ``per_sample`` (data read through a DataLoader), the per-sample options as one torchvision
    v2 transform for the loader's workers (None without such options); the batch-level
    ``mixup``/``cutmix`` stay on the device.
    """
    ops = parse_ops(node, info)
    sample = None
    if per_sample and ops:
        from torchvision.transforms import v2

        per = [op.sample for n, op in ops if n not in BATCH_ONLY]
        sample = v2.Compose(per) if per else None
        ops = [(n, op) for n, op in ops if n in BATCH_ONLY]
    return (Augmenter(ops, device, seed) if ops else None), sample


def build_augment(node: Any, info: DataInfo, device: torch.device, seed: int) -> Augmenter | None:
    """Every option of ``cfg.augment`` batched on ``device`` (None when none is chosen)."""
    return split_augment(node, info, device, seed)[0]
