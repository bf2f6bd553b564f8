"""The model catalogue: torchvision-exact sizes, shapes from 8x8 to 224x224, knobs, summary."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path
from typing import Any

import pytest
import torch
import torchvision
from omegaconf import OmegaConf
from rich.console import Console
from torch import nn

import dlx
from dlx.commands.summary import model_summary, print_summary
from dlx.data.base import DataInfo
from dlx.errors import UsageError
from dlx.models import MODELS, build_model
from dlx.models.layers import group_count

CONV_FAMILIES = ["alexnet", "lenet", "nin", "resnet", "vgg"]

#: every family module under src/dlx/models/ (the registry finds them by itself)
FAMILIES = (
    "alexnet", "autoencoder", "charlm", "cnn1d", "googlenet", "lenet", "lstm", "mlp", "mobilenet",
    "nin", "resnet", "shufflenet", "vgg",
)  # fmt: skip


def image_info(size: int = 32, channels: int = 1, classes: int = 10) -> DataInfo:
    return DataInfo(
        name="images", kind="image", num_classes=classes, channels=channels, image_size=size
    )


def sequence_info(task: str = "classification", seq_len: int = 12, features: int = 3) -> DataInfo:
    classes = 1 if task == "regression" else 4
    return DataInfo(
        name="waves",
        kind="sequence",
        num_classes=classes,
        task=task,  # type: ignore[arg-type]
        seq_len=seq_len,
        features=features,
    )


def text_info(vocab: str = "abc ") -> DataInfo:
    chars = ("<unk>", *sorted(vocab))
    return DataInfo(
        name="text", kind="text", num_classes=len(chars), task="language_model", seq_len=8,
        per_step=True, vocab=chars,
    )  # fmt: skip


def info_for(family: str) -> DataInfo:
    """Data a family reads: text for the language model, sequences for the 1-D CNN, 16x16
    images for the others."""
    if family == "cnn1d":
        return sequence_info(seq_len=40, features=1)
    return text_info() if family == "charlm" else image_info(16)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count(model: nn.Module, kind: type[nn.Module]) -> int:
    return sum(isinstance(m, kind) for m in model.modules())


def imagenet_count(node: dict[str, Any]) -> int:
    """Parameters at 224x224, 3 channels, 1000 classes, built on the meta device (no memory)."""
    with torch.device("meta"):
        return n_params(build_model(node, image_info(224, 3, 1000)))


def meta_build(node: dict[str, Any], info: DataInfo | None = None) -> nn.Module:
    """The model at 224x224x3 with 1000 classes (or ``info``) on the meta device: no memory."""
    with torch.device("meta"):
        return build_model(node, info or image_info(224, 3, 1000))


def torchvision_model(name: str, **kw: Any) -> nn.Module:
    with torch.device("meta"):
        return getattr(torchvision.models, name)(weights=None, **kw)


def convs(model: nn.Module) -> list[tuple[Any, ...]]:
    """Every conv's shape and wiring, in module order: two nets with equal lists are laid out
    alike (the order of the convs within each block included)."""
    return [
        (m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, m.dilation, m.groups)
        for m in model.modules()
        if isinstance(m, nn.Conv2d)
    ]


# --- sizes ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("node", "reference"),
    [
        ({"name": "alexnet"}, "alexnet"),
        ({"name": "vgg", "arch": "vgg11"}, "vgg11"),
        ({"name": "vgg", "arch": "vgg16"}, "vgg16"),
        ({"name": "vgg", "arch": "vgg16", "norm": "batch"}, "vgg16_bn"),
        ({"name": "resnet", "arch": "resnet18"}, "resnet18"),
        ({"name": "resnet", "arch": "resnet34"}, "resnet34"),
        ({"name": "resnet", "arch": "resnet50"}, "resnet50"),
    ],
)
def test_imagenet_sizes_match_torchvision(node: dict[str, Any], reference: str) -> None:
    with torch.device("meta"):
        expected = n_params(getattr(torchvision.models, reference)(weights=None))
    assert imagenet_count(node) == expected


CANONICAL = [  # (our node, torchvision's builder and its arguments)
    ({"name": "resnet", "arch": "resnext50_32x4d"}, "resnext50_32x4d", {}),
    ({"name": "resnet", "arch": "resnext101_32x8d"}, "resnext101_32x8d", {}),
    ({"name": "resnet", "arch": "wide_resnet50_2"}, "wide_resnet50_2", {}),
    (
        {"name": "resnet", "arch": "resnet50", "dilation": [False, True, True]},
        "resnet50",
        {"replace_stride_with_dilation": [False, True, True]},
    ),
    ({"name": "mobilenet", "arch": "mobilenet_v2"}, "mobilenet_v2", {}),
    ({"name": "shufflenet", "arch": "shufflenet_v2_x0_5"}, "shufflenet_v2_x0_5", {}),
    ({"name": "shufflenet", "arch": "shufflenet_v2_x1_0"}, "shufflenet_v2_x1_0", {}),
    ({"name": "shufflenet", "arch": "shufflenet_v2_x2_0"}, "shufflenet_v2_x2_0", {}),
    (
        {"name": "googlenet", "arch": "googlenet_torchvision"},
        "googlenet",
        {"aux_logits": False, "init_weights": False},
    ),
]


@pytest.mark.parametrize(("node", "name", "kw"), CANONICAL, ids=[c[1] for c in CANONICAL])
def test_layout_and_size_are_torchvisions(node: dict, name: str, kw: dict) -> None:
    ours, theirs = meta_build(node), torchvision_model(name, **kw)
    assert convs(ours) == convs(theirs)
    assert n_params(ours) == n_params(theirs)


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        ({"name": "alexnet"}, 61_100_840),
        ({"name": "vgg", "arch": "vgg16"}, 138_357_544),
        ({"name": "resnet", "arch": "resnet18"}, 11_689_512),
        ({"name": "resnet", "arch": "resnet50"}, 25_557_032),
        ({"name": "resnet", "arch": "resnext50_32x4d"}, 25_028_904),
        ({"name": "mobilenet", "arch": "mobilenet_v2"}, 3_504_872),
        ({"name": "shufflenet", "arch": "shufflenet_v2_x1_0"}, 2_278_604),
        ({"name": "googlenet", "arch": "googlenet_torchvision"}, 6_624_904),
        ({"name": "mobilenet", "arch": "mobilenet_v1"}, 4_231_976),  # the paper's 4.2M
        ({"name": "resnet", "arch": "resnet50", "se": True}, 28_088_024),  # Hu et al.: 28.1M
    ],
    ids=lambda v: "-".join(map(str, v.values())) if isinstance(v, dict) else "",
)
def test_imagenet_sizes_pinned(node: dict[str, Any], expected: int) -> None:
    assert imagenet_count(node) == expected


@pytest.mark.parametrize(
    ("arch", "millions"),  # He et al. 2016, Table 6
    [("resnet20", 0.27), ("resnet32", 0.46), ("resnet44", 0.66), ("resnet56", 0.85)],
)
def test_cifar_resnets_have_the_papers_sizes(arch: str, millions: float) -> None:
    model = build_model({"name": "resnet", "arch": arch}, image_info(32, 3, 10))
    assert round(n_params(model) / 1e6, 2) == millions
    assert count(model, nn.Conv2d) == int(arch.removeprefix("resnet")) - 1  # option A: no 1x1s


def test_resnet110_has_the_papers_size() -> None:
    model = build_model({"name": "resnet", "arch": "resnet110"}, image_info(32, 3, 10))
    assert round(n_params(model) / 1e6, 1) == 1.7


# --- shapes and gradients -------------------------------------------------------------------
SMALL_NODES = [
    {"name": "lenet"},
    {"name": "lenet", "arch": "lenet5_classic"},
    {"name": "alexnet", "classifier_width": 32},
    {"name": "vgg", "arch": "vgg11", "classifier_width": 32, "norm": "batch"},
    {"name": "nin"},
    {"name": "resnet"},
    {"name": "resnet", "arch": "resnet18"},
    {"name": "lstm", "hidden_size": 16},
]


NEW_NODES = [
    {"name": "mlp"},
    {"name": "mlp", "hidden": [], "init": "xavier_uniform"},
    {"name": "mobilenet", "arch": "mobilenet_v1", "width_mult": 0.25},
    {"name": "mobilenet", "width_mult": 0.25},
    {"name": "shufflenet", "arch": "shufflenet_v2_x0_5", "activation": "maxout"},
    {"name": "googlenet", "factorize": True},
    {"name": "lenet", "conv": "local", "activation": "maxout"},
    {"name": "resnet", "arch": "resnext50_32x4d", "se": True},
    {"name": "resnet", "arch": "resnet18", "dilation": [False, False, True]},
    {"name": "resnet", "dilation": [1, 2, 5], "shortcut": "none", "activation": "elu"},
    {"name": "resnet", "activation": "maxout", "maxout_pieces": 3, "se": True},
    {"name": "mobilenet", "arch": "mobilenet_v1", "width_mult": 0.25, "activation": "maxout"},
]
NEW_IDS = ["-".join(str(v) for v in n.values()).replace(" ", "") for n in NEW_NODES]
#: (node, size, channels): the classic families at three sizes on 1 and 3 channels, the
#: newer entries (maxout, SE, dilation, grouped and local convs) at two
FORWARD_BACKWARD = [
    *((n, size, c) for n in SMALL_NODES for size in (8, 16, 32) for c in (1, 3)),
    *((n, size, c) for n in NEW_NODES for size, c in ((8, 3), (16, 1))),
]


@pytest.mark.parametrize(
    ("node", "size", "channels"),
    FORWARD_BACKWARD,
    ids=lambda v: (
        "-".join(map(str, v.values())).replace(" ", "") if isinstance(v, dict) else str(v)
    ),
)
def test_forward_and_backward(node: dict[str, Any], size: int, channels: int) -> None:
    torch.manual_seed(0)
    model = build_model(node, image_info(size, channels, classes=5))
    y = model(torch.randn(2, channels, size, size))
    assert y.shape == (2, 5)
    y.square().mean().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize(
    "node",
    [
        {"name": "lenet"},
        {"name": "alexnet"},
        {"name": "vgg", "arch": "vgg19"},
        {"name": "nin"},
        {"name": "resnet", "arch": "resnet50"},
        {"name": "resnet", "arch": "resnet20", "stem": "imagenet"},
        {"name": "lstm"},
    ],
    ids=lambda n: "-".join(map(str, n.values())),
)
def test_output_shape_at_every_size(node: dict[str, Any]) -> None:
    """Shapes only (meta tensors carry no data), so the big models and sizes stay cheap."""
    for size in (8, 9, 15, 28, 31, 33, 63, 64, 65, 100, 224):
        with torch.device("meta"):
            model = build_model(node, image_info(size, 3, classes=7))
            assert model(torch.zeros(2, 3, size, size)).shape == (2, 7), size


@pytest.mark.parametrize("node", NEW_NODES, ids=NEW_IDS)
def test_builds_from_8_to_224_on_1_and_3_channels(node: dict) -> None:
    sizes = [(8, 1), (8, 3), (15, 3), (32, 1), (63, 1), (64, 3), (224, 1), (224, 3)]
    for size, channels in sizes:  # meta tensors: shapes without the compute
        with torch.device("meta"):
            model = build_model(node, image_info(size, channels, classes=7))
            y = model(torch.zeros(2, channels, size, size))
        assert y.shape == (2, 7), (size, channels)


def test_vgg_skips_pools_once_the_map_is_one_pixel() -> None:
    pools = {
        size: count(build_model({"name": "vgg", "arch": "vgg11"}, image_info(size)), nn.MaxPool2d)
        for size in (8, 32)
    }
    assert pools == {8: 3, 32: 5}


def test_small_images_feed_the_classifier_without_upsampling() -> None:
    vgg = build_model({"name": "vgg", "arch": "vgg11", "classifier_width": 8}, image_info(32))
    alex = build_model({"name": "alexnet", "classifier_width": 8}, image_info(32))
    assert vgg.classifier.fc6.in_features == 512  # 1x1 map, not a replicated 7x7
    assert alex.classifier.fc6.in_features == 256 * 4 * 4
    assert alex.features.conv1.conv.kernel_size == (3, 3)  # small-input stem


def test_lenet_is_the_papers_at_32() -> None:
    model = build_model({"name": "lenet"}, image_info(32))
    assert model.c5.in_features == 16 * 5 * 5
    assert n_params(model) == 61_706


# --- recurrent models -----------------------------------------------------------------------
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_recurrent_cells_on_sequences(cell: str, bidirectional: bool) -> None:
    node = {"name": "lstm", "cell": cell, "hidden_size": 8, "bidirectional": bidirectional}
    info = sequence_info()
    model = build_model(node, info)
    assert type(model.rnn) is {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[cell]
    assert model.head.in_features == 8 * (2 if bidirectional else 1)
    y = model(torch.randn(5, info.seq_len, info.features))
    assert y.shape == (5, 4)
    y.sum().backward()


def test_recurrent_regression_gives_one_output() -> None:
    node = {"name": "lstm", "num_layers": 2, "dropout": 0.2, "hidden_size": 8}
    info = sequence_info("regression")
    model = build_model(node, info)
    assert model.rnn.dropout == 0.2
    assert model(torch.randn(3, info.seq_len, info.features)).shape == (3, 1)


def test_bidirectional_head_sees_the_first_step() -> None:
    """The backward direction's final state has read step 0 last, so it must depend on it."""
    torch.manual_seed(0)
    info = sequence_info(seq_len=30)
    node = {"name": "lstm", "hidden_size": 8, "bidirectional": True}
    model = build_model(node, info).eval()
    x = torch.randn(1, 30, 3, requires_grad=True)
    model(x).sum().backward()
    assert x.grad[0, 0].abs().sum() > 1e-3


def test_images_are_read_row_by_row() -> None:
    model = build_model({"name": "lstm"}, image_info(8, channels=2))
    x = torch.arange(2 * 2 * 8 * 8, dtype=torch.float).reshape(2, 2, 8, 8)
    seq = model.view(x)
    assert seq.shape == (2, 8, 16)
    assert torch.equal(seq[1, 3], torch.cat([x[1, 0, 3], x[1, 1, 3]]))
    assert model.rnn.input_size == 16


# --- wrong data -----------------------------------------------------------------------------
@pytest.mark.parametrize("family", CONV_FAMILIES)
def test_conv_models_refuse_sequences(family: str) -> None:
    with pytest.raises(UsageError) as err:
        build_model({"name": family}, sequence_info())
    assert str(err.value) == f"model={family} needs image data; data=waves is a sequence task"


def test_recurrent_model_refuses_other_data() -> None:
    info = DataInfo(name="graphs", kind="graph", num_classes=2)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match=r"^model=lstm needs image or sequence data; data=graphs"):
        build_model({"name": "lstm"}, info)


# --- knobs ----------------------------------------------------------------------------------
@pytest.mark.parametrize("family", CONV_FAMILIES)
def test_norm_choice_sets_the_norm_modules(family: str) -> None:
    info = image_info(16)
    plain = build_model({"name": family, "norm": "none"}, info)
    assert count(plain, nn.BatchNorm2d) == count(plain, nn.GroupNorm) == 0
    batch = build_model({"name": family, "norm": "batch"}, info)
    assert count(batch, nn.BatchNorm2d) > 0
    layer = build_model({"name": family, "norm": "layer"}, info)
    assert count(layer, nn.BatchNorm2d) == 0
    assert {m.num_groups for m in layer.modules() if isinstance(m, nn.GroupNorm)} == {1}
    group = build_model({"name": family, "norm": "group"}, info)
    assert count(group, nn.GroupNorm) == count(batch, nn.BatchNorm2d)
    assert all(m.num_groups > 1 for m in group.modules() if isinstance(m, nn.GroupNorm))


def test_group_count_keeps_two_channels_per_group() -> None:
    assert [group_count(c) for c in (6, 16, 64, 96, 192, 512)] == [3, 8, 32, 32, 32, 32]


@pytest.mark.parametrize(
    ("node", "tanhs"),
    [
        ({"name": "lenet"}, 4),  # C1, C3, C5, F6
        ({"name": "alexnet"}, 7),  # 5 convs, 2 hidden FCs
        ({"name": "vgg", "arch": "vgg11"}, 10),  # 8 convs, 2 hidden FCs
        ({"name": "nin"}, 8),  # 9 convs but the last (the logits)
        ({"name": "resnet", "arch": "resnet20"}, 19),  # stem + 2 per block
    ],
)
def test_activation_choice_sets_the_activations(node: dict[str, Any], tanhs: int) -> None:
    model = build_model({**node, "activation": "tanh"}, image_info(16))
    assert count(model, nn.Tanh) == tanhs
    assert count(model, nn.ReLU) == 0
    assert count(build_model(node, image_info(16)), nn.ReLU) == tanhs


def test_lenet_arch_gives_its_own_activation_unless_overridden() -> None:
    classic = build_model({"name": "lenet", "arch": "lenet5_classic"}, image_info())
    assert count(classic, nn.Sigmoid) == 4 and count(classic, nn.AvgPool2d) == 2
    node = {"name": "lenet", "arch": "lenet5_classic", "activation": "relu"}
    relu = build_model(node, image_info())
    assert count(relu, nn.ReLU) == 4 and count(relu, nn.Sigmoid) == 0
    assert count(relu, nn.AvgPool2d) == 2  # pooling stays the arch's


@pytest.mark.parametrize("key", ["norm", "activation"])
def test_unknown_choice_names_the_key(key: str) -> None:
    with pytest.raises(UsageError, match=rf"^model\.{key}=bogus: not allowed"):
        MODELS.parse({"name": "vgg", "arch": "vgg11", key: "bogus"})
    with pytest.raises(UsageError, match=rf"^model\.{key}=bogus"):
        build_model({"name": "resnet", key: "bogus"}, image_info())


@pytest.mark.parametrize("norm", ["batch", "none"])
def test_zero_init_residual(norm: str) -> None:
    def last_scales(model: nn.Module) -> list[torch.Tensor]:
        blocks = [m for m in model.modules() if hasattr(m, "last")]
        picks = [b.last()[1].weight if norm == "batch" else b.last()[0].weight for b in blocks]
        return picks

    node = {"name": "resnet", "arch": "resnet50", "norm": norm}
    with torch.device("meta"):
        assert len(last_scales(build_model(node, image_info()))) == 16
    zeroed = build_model({**node, "arch": "resnet20", "zero_init_residual": True}, image_info())
    assert all(torch.all(w == 0) for w in last_scales(zeroed))
    default = build_model({**node, "arch": "resnet20"}, image_info())
    assert not any(torch.all(w == 0) for w in last_scales(default))


@pytest.mark.parametrize("family", FAMILIES)
def test_builders_read_dropout_from_the_schema(family: str) -> None:
    """A regularizer overrides ``dropout`` on the parsed schema before building."""
    cfg = MODELS.parse({"name": family})
    cfg.dropout = 0.3
    model = MODELS.get(family).builder(cfg, info_for(family))
    rates = {m.p for m in model.modules() if isinstance(m, nn.Dropout)}
    assert rates == {0.3}


# --- configs --------------------------------------------------------------------------------
@pytest.mark.parametrize("family", FAMILIES)
def test_yaml_mirrors_the_schema(family: str) -> None:
    text = (Path(dlx.__file__).parent / "conf" / "model" / f"{family}.yaml").read_text()
    assert text.startswith("# ")
    schema = MODELS.get(family).schema
    assert OmegaConf.to_container(OmegaConf.create(text)) == dataclasses.asdict(schema())


def test_every_family_is_registered() -> None:
    assert MODELS.names() == sorted(FAMILIES)
    assert {"mlp", "mobilenet", "shufflenet", "googlenet"} <= set(FAMILIES)


# --- summary --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("node", "info"),
    [
        ({"name": "lenet"}, image_info()),
        ({"name": "resnet"}, image_info(16, 3)),
        ({"name": "lstm", "bidirectional": True}, sequence_info()),
    ],
    ids=["lenet", "resnet", "lstm"],
)
def test_summary_ends_with_total_params(node: dict[str, Any], info: DataInfo) -> None:
    model = build_model(node, info)
    console = Console(file=io.StringIO(), width=120)
    print_summary(model, info, console)
    lines = console.file.getvalue().rstrip("\n").splitlines()
    assert lines[-1] == f"Total params: {n_params(model):,}"
    assert any(line.startswith("MACs: ") for line in lines)


def test_summary_rows_add_up() -> None:
    info = image_info(32)
    model = build_model({"name": "lenet"}, info)
    s = model_summary(model, info)
    assert s.input_shape == (1, 1, 32, 32)
    assert s.total_params == 61_706 == sum(r.params for r in s.rows)
    assert s.macs == sum(r.macs for r in s.rows) > 0
    conv1 = next(r for r in s.rows if r.name == "c1.conv")
    assert conv1.output_shape == (1, 6, 28, 28)
    assert conv1.macs == 6 * 26 * 28 * 28  # (5*5*1 weights + bias) per output pixel
