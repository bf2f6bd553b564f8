"""Convolution variants the families share: squeeze-and-excitation, channel shuffle and the
locally connected (unshared) layer."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class SqueezeExcite(nn.Module):
    """Channel weighting (Hu, Shen & Sun, 2018, Fig. 2): global average pool ("squeeze"), an
    FC bottleneck of ``channels / reduction`` units with ReLU, an FC back to ``channels`` and
    a sigmoid ("excitation"); the map's channels are scaled by the result."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.squeeze = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, hidden, 1)  # a 1x1 conv on a 1x1 map: an FC layer
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, 1)
        self.gate = nn.Sigmoid()

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gate(self.fc2(self.relu(self.fc1(self.squeeze(x)))))


def channel_shuffle(x: Tensor, groups: int) -> Tensor:
    """(N, g*c, H, W) -> transpose the (g, c) channel grid, so that the next grouped or split
    op mixes channels from every group (Zhang et al., 2018, Fig. 1)."""
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class LocallyConnected2d(nn.Module):
    """A convolution whose weights are not shared: every output position has its own
    ``out_channels x in_channels x k x k`` kernel and its own bias (Goodfellow, Bengio &
    Courville, 2016, §9.5; Taigman et al., 2014). Parameters: ``positions * out * (in*k*k + 1)``,
    with ``positions = out_size²``, each used once per sample (MACs = weights)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        in_size: int,
        *,
        stride: int = 1,
        padding: int = 0,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.out_size = (in_size + 2 * padding - kernel_size) // stride + 1
        positions = self.out_size**2
        fan_in = in_channels * kernel_size**2
        self.weight = nn.Parameter(torch.empty(positions, out_channels, fan_in))
        self.bias = (
            nn.Parameter(torch.empty(out_channels, self.out_size, self.out_size)) if bias else None
        )
        bound = 1 / math.sqrt(fan_in)  # nn.Conv2d's default init, position by position
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def kernels(self) -> list[Tensor]:
        """Each position's kernel as a conv weight (out, in, k, k): views into ``weight``."""
        k = self.kernel_size
        shaped = self.weight.view(-1, self.out_channels, self.in_channels, k, k)
        return [shaped[i] for i in range(shaped.shape[0])]

    def forward(self, x: Tensor) -> Tensor:
        cols = F.unfold(x, self.kernel_size, padding=self.padding, stride=self.stride)
        out = torch.einsum("ncl,loc->nol", cols, self.weight)  # one kernel per position l
        out = out.reshape(x.shape[0], self.out_channels, self.out_size, self.out_size)
        return out if self.bias is None else out + self.bias

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, out_size={self.out_size}"
        )
