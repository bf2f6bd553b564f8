"""AlexNet (Krizhevsky, Sutskever & Hinton, 2012, "ImageNet classification with deep CNNs").

Five conv layers (64-192-384-256-256 maps, torchvision's single-GPU widths) with three
max-pools, then a three-layer classifier with dropout before each of its hidden layers. At
224x224 with 3 channels and 1000 classes the model is torchvision's ``alexnet`` exactly
(61,100,840 parameters). The paper's local response normalisation is left out, as in
torchvision; ``model.norm`` adds a norm after every conv instead.

Adaptations, all documented choices rather than paper content:

* Small inputs (``image_size < 64``) get a small-input stem: conv1 is 3x3 with stride 1 and
  the max-pools are 2x2 (stride 2), so 8x8 images shrink to 1x1 rather than to nothing.
* The head average-pools the last map to at most 6x6 (torchvision's grid) and never
  upsamples, so a 32x32 image feeds 256*4*4 features to the classifier, not a replicated 6x6.
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
from dlx.models.layers import NORMS, ConvNormAct, UnitConfig, conv_out, require_image
from dlx.registry import check

SMALL_INPUT_BELOW = 64
HEAD_GRID = 6  # torchvision's adaptive-pool output at 224x224


@dataclass
class AlexNetConfig(UnitConfig):
    name: str = "alexnet"
    arch: str = field(default="alexnet", metadata=check(choices=["alexnet"]))
    norm: str = field(default="none", metadata=check(choices=NORMS))
    dropout: float = field(default=0.5, metadata=check(ge=0, lt=1))  # in the classifier
    classifier_width: int = field(default=4096, metadata=check(ge=1))


@MODELS.register("alexnet", AlexNetConfig)
def alexnet(cfg: AlexNetConfig, info: DataInfo) -> nn.Module:
    """AlexNet for ``info``'s channels, image size and classes."""
    require_image(info, "alexnet")
    small = info.image_size < SMALL_INPUT_BELOW
    k1, s1, p1 = (3, 1, 1) if small else (11, 4, 2)  # conv1 kernel, stride, padding
    pool_k = 2 if small else 3  # max-pool kernel; stride is always 2
    act = cfg.act()

    def conv(cin: int, cout: int, k: int, **kw: int) -> ConvNormAct:
        return ConvNormAct(cin, cout, k, norm=cfg.norm, activation=act, **kw)

    size = conv_out(info.image_size, k1, s1, p1)
    for _ in range(3):  # the three max-pools; the other convs keep the size
        size = conv_out(size, pool_k, 2)
    grid = min(HEAD_GRID, size)
    width = cfg.classifier_width
    features = nn.Sequential(
        OrderedDict(
            conv1=conv(info.channels, 64, k1, stride=s1, padding=p1),
            pool1=nn.MaxPool2d(pool_k, 2),
            conv2=conv(64, 192, 5, padding=2),
            pool2=nn.MaxPool2d(pool_k, 2),
            conv3=conv(192, 384, 3, padding=1),
            conv4=conv(384, 256, 3, padding=1),
            conv5=conv(256, 256, 3, padding=1),
            pool5=nn.MaxPool2d(pool_k, 2),
        )
    )
    classifier = nn.Sequential(
        OrderedDict(
            drop6=nn.Dropout(cfg.dropout),
            fc6=nn.Linear(256 * grid * grid, width * act.pieces),
            act6=act.module(),
            drop7=nn.Dropout(cfg.dropout),
            fc7=nn.Linear(width, width * act.pieces),
            act7=act.module(),
            fc8=nn.Linear(width, info.num_classes),
        )
    )
    model = nn.Sequential(
        OrderedDict(
            features=features,
            avgpool=nn.AdaptiveAvgPool2d(grid),
            flatten=nn.Flatten(),
            classifier=classifier,
        )
    )
    return initialize(model, cfg.init, cfg.init_std, act.name)
