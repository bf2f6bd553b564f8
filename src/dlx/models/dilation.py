"""Dilated stages for the ResNet family: torchvision's replace-stride-with-dilation for the
ImageNet forms, per-stage rates under the hybrid-dilation rule for the CIFAR forms."""

from __future__ import annotations

import math
from typing import Any

from dlx.errors import UsageError


def stage_rates(
    given: list[Any] | None, stages: int, imagenet: bool, arch: str, prefix: str
) -> list[tuple[int, int, int]]:
    """Per stage: (stride, the first block's first rate, every other conv's rate).

    ImageNet forms take torchvision's ``replace_stride_with_dilation``: three flags for stages
    2-4; a flagged stage keeps its resolution and doubles the rate instead (its first block
    still starts at the previous rate). CIFAR forms take one rate per stage (strides kept);
    rates sharing a factor > 1 would only ever read a sub-grid of the input (gridding), which
    the hybrid-dilation rule (Wang et al., 2018) avoids, so they are refused.
    """
    strides = [1] + [2] * (stages - 1)
    if given is None:
        return [(s, 1, 1) for s in strides]
    text = str(given).replace(" ", "").replace("True", "true").replace("False", "false")
    key = f"{prefix}.dilation={text}"
    if imagenet:
        if len(given) != stages - 1 or not all(isinstance(f, bool) for f in given):
            raise UsageError(
                f"{key}: {arch} takes torchvision's replace_stride_with_dilation, "
                f"{stages - 1} true/false flags for stages 2-{stages}, e.g. [false,true,true]"
            )
        plan, rate = [(1, 1, 1)], 1
        for flag in given:
            plan.append((1, rate, rate * 2) if flag else (2, rate, rate))
            rate = plan[-1][2]
        return plan
    if len(given) != stages or not all(type(r) is int and r >= 1 for r in given):
        raise UsageError(
            f"{key}: {arch} takes one dilation rate (an integer >= 1) per stage, "
            f"{stages} in all, e.g. [1,2,5]"
        )
    factor = math.gcd(*given)
    if factor > 1:
        raise UsageError(
            f"{key}: the rates share the factor {factor}, so the stacked convs read only a "
            f"1-in-{factor} sub-grid of pixels (gridding); use co-prime rates such as [1,2,5]"
        )
    return [(s, r, r) for s, r in zip(strides, given)]
