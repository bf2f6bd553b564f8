"""VGG (Simonyan & Zisserman, 2015, "Very deep convolutional networks for large-scale image
recognition"): five stages of 3x3 convs (64-128-256-512-512 maps), each closed by a 2x2 max-pool,
then a three-layer classifier with dropout.

``arch`` picks the paper's configurations A, B, D, E (vgg11, vgg13, vgg16, vgg19); ``norm=batch``
gives torchvision's ``vgg*_bn``. At 224x224 with 3 channels and 1000 classes every arch is
torchvision's exactly (vgg16: 138,357,544 parameters), and so is its weight init.

Adaptations for small images, documented choices rather than paper content:

* A stage's max-pool is skipped when the map is already 1x1, so 8x8 inputs build
  (8 -> 4 -> 2 -> 1 -> 1 -> 1).
* The head average-pools to at most 7x7 (torchvision's grid) and never upsamples, so a 32x32
  image feeds 512 features to the classifier, not a 7x7 replica of one pixel.
* ``classifier_width`` (default 4096, the paper's) sets the hidden FC width; a smaller value
  makes small-image runs cheap.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from torch import nn

from dlx.data.base import DataInfo
from dlx.models import MODELS
from dlx.models.init import initialize
from dlx.models.layers import NORMS, ConvNormAct, UnitConfig, init_conv_linear, require_image
from dlx.registry import check

STAGE_WIDTHS = (64, 128, 256, 512, 512)
# arch -> convs per stage (the paper's Table 1, configurations A, B, D, E)
ARCHS: dict[str, tuple[int, ...]] = {
    "vgg11": (1, 1, 2, 2, 2),
    "vgg13": (2, 2, 2, 2, 2),
    "vgg16": (2, 2, 3, 3, 3),
    "vgg19": (2, 2, 4, 4, 4),
}
HEAD_GRID = 7  # torchvision's adaptive-pool output at 224x224


@dataclass
class VGGConfig(UnitConfig):
    name: str = "vgg"
    arch: str = field(default="vgg16", metadata=check(choices=ARCHS))
    norm: str = field(default="none", metadata=check(choices=NORMS))
    dropout: float = field(default=0.5, metadata=check(ge=0, lt=1))  # in the classifier
    classifier_width: int = field(default=4096, metadata=check(ge=1))


@MODELS.register("vgg", VGGConfig)
def vgg(cfg: VGGConfig, info: DataInfo) -> nn.Module:
    """VGG for ``info``'s channels, image size and classes."""
    require_image(info, "vgg")
    act = cfg.act()
    stages: OrderedDict[str, nn.Module] = OrderedDict()
    cin, size = info.channels, info.image_size
    for i, (width, depth) in enumerate(zip(STAGE_WIDTHS, ARCHS[cfg.arch]), start=1):
        stage: OrderedDict[str, nn.Module] = OrderedDict()
        for j in range(1, depth + 1):
            stage[f"conv{j}"] = ConvNormAct(cin, width, 3, padding=1, norm=cfg.norm, activation=act)
            cin = width
        if size > 1:
            stage["pool"] = nn.MaxPool2d(2, 2)
            size //= 2
        stages[f"stage{i}"] = nn.Sequential(stage)
    grid = min(HEAD_GRID, size)
    width = cfg.classifier_width
    classifier = nn.Sequential(
        OrderedDict(
            fc6=nn.Linear(cin * grid * grid, width * act.pieces),
            act6=act.module(),
            drop6=nn.Dropout(cfg.dropout),
            fc7=nn.Linear(width, width * act.pieces),
            act7=act.module(),
            drop7=nn.Dropout(cfg.dropout),
            fc8=nn.Linear(width, info.num_classes),
        )
    )
    model = nn.Sequential(
        OrderedDict(
            features=nn.Sequential(stages),
            avgpool=nn.AdaptiveAvgPool2d(grid),
            flatten=nn.Flatten(),
            classifier=classifier,
        )
    )
    init_conv_linear(model)
    return initialize(model, cfg.init, cfg.init_std, act.name)
