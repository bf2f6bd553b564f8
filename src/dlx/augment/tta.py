"""Test-time augmentation (``trainer.tta``): the mean of the logits of several views of x.

- ``none``: x alone;
- ``flip``: x and its horizontal mirror image;
- ``crops``: five crops (the four corners and the centre) of ``CROP_FRACTION`` of the side,
  each resized back to x's own size (bilinear), so that any model takes them;
- ``flip_crops``: the five crops and their five mirror images (ten views).

Every mode averages logits, view by view (memory as without TTA); an ensemble of runs then
averages the members' probabilities (``dlx.commands.ensemble``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor, nn

#: the side of each of the five crops, as a fraction of the image's (224 of 256)
CROP_FRACTION = 0.875


def five_crops(x: Tensor, fraction: float = CROP_FRACTION) -> list[Tensor]:
    """The four corner crops and the centre crop of ``x`` (N, C, H, W), each ``fraction`` of
    the side, resized back to (H, W)."""
    h, w = x.shape[-2:]
    ch, cw = max(1, round(h * fraction)), max(1, round(w * fraction))
    corners = [(0, 0), (0, w - cw), (h - ch, 0), (h - ch, w - cw)]
    centre = ((h - ch) // 2, (w - cw) // 2)
    return [
        F.interpolate(
            x[..., t : t + ch, left : left + cw], size=(h, w), mode="bilinear", align_corners=False
        )
        for t, left in [*corners, centre]
    ]


def mean_over(model: nn.Module, views: list[Tensor]) -> Tensor:
    """The mean of the model's logits over ``views``, one forward pass per view."""
    total = model(views[0])
    for v in views[1:]:
        total = total + model(v)
    return total / len(views)


TTA: dict[str, Callable[[nn.Module, Tensor], Tensor]] = {
    "none": lambda model, x: model(x),
    "flip": lambda model, x: (model(x) + model(x.flip(-1))) / 2,
    "crops": lambda model, x: mean_over(model, five_crops(x)),
    "flip_crops": lambda model, x: mean_over(
        model, [v for c in five_crops(x) for v in (c, c.flip(-1))]
    ),
}


def tta_forward(model: nn.Module, x: Tensor, mode: str = "none") -> Tensor:
    """The model's logits on ``x`` under test-time augmentation ``mode``."""
    return TTA[mode](model, x)
