"""Raw batches to model inputs: uint8 images -> [0, 1] -> augment -> normalise (-> a fixed
permutation of the pixels, ``data.permute``); sequences as they are (-> a fixed permutation of
their time steps, ``data.permute``: shuffled MNIST-1D).

The target is the objective's (``Objective.target``): the labels, or for a reconstruction the
clean image in [0, 1], taken after the data-movement augmentations (crop, flip) and before
those that corrupt the input (noise, blur, …): a denoising autoencoder's target."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from dlx.data.base import DataInfo


def pixel_order(pixels: int, seed: int) -> Tensor:
    """The fixed pixel permutation of ``data.permute``: drawn from ``seed`` alone."""
    return torch.randperm(pixels, generator=torch.Generator().manual_seed(seed))


class PermutePixels:
    """(N, C, H, W) -> the same images with their H*W pixels in ``order``."""

    def __init__(self, order: Tensor) -> None:
        self.order = order

    def __call__(self, x: Tensor) -> Tensor:
        return x.flatten(2)[:, :, self.order].view_as(x)


class PermuteSteps:
    """(N, T, F) -> the same sequences with their T steps in ``order``."""

    def __init__(self, order: Tensor) -> None:
        self.order = order

    def __call__(self, x: Tensor) -> Tensor:
        return x[:, self.order]


def _same(x: Tensor) -> Tensor:
    return x


def permutation(info: DataInfo, device: torch.device) -> Callable[[Tensor], Tensor]:
    """``data.permute``'s fixed order of an image's pixels or a sequence's steps (the same
    for every split and epoch), or nothing to do."""
    if info.permute_seed is None:
        return _same
    if info.kind == "image":
        return PermutePixels(pixel_order(info.image_size**2, info.permute_seed).to(device))
    return PermuteSteps(pixel_order(info.seq_len, info.permute_seed).to(device))


class Inputs:
    """Turns ``(x, y)`` batches of the data into what the model takes (sequences pass as
    they are)."""

    def __init__(
        self,
        info: DataInfo,
        device: torch.device,
        channels_last: bool,
        target: Callable[[Tensor, Tensor], Tensor] | None = None,
    ) -> None:
        self.image = info.kind == "image"
        self.target = target or (lambda image, y: y)
        shape = (1, -1, 1, 1)
        self.mean = torch.tensor(info.mean, device=device).view(shape)
        self.inv_std = 1 / torch.tensor(info.std, device=device).view(shape)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.permute = permutation(info, device)

    def __call__(self, x: Tensor, y: Tensor, augment: Any = None) -> tuple[Tensor, Tensor]:
        if not self.image:
            return self.permute(x), y
        if augment is not None:  # uint8 in (crop/flip move the bytes), floats in [0, 1] out
            clean = augment.move(x)
            x, y = augment.corrupt(clean, y)
        else:
            clean = x = x.float().div_(255)
        y = self.target(clean, y)
        x = self.permute((x - self.mean).mul_(self.inv_std))  # new: ``clean`` stays as it is
        return x.contiguous(memory_format=self.memory_format), y
