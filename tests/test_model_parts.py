"""The models' parts: the maths of maxout, init, SE, local and dilated convs, GoogLeNet's
layout, plain nets, and the summary's MACs (sizes, shapes and gradients: test_models.py)."""

from __future__ import annotations

import math
import re

import pytest
import torch
from torch import nn

from dlx.commands.summary import model_summary
from dlx.data.base import DataInfo
from dlx.errors import UsageError
from dlx.models import MODELS, build_model
from dlx.models.blocks import LocallyConnected2d, SqueezeExcite, channel_shuffle
from dlx.models.googlenet import LAYOUT
from dlx.models.layers import Maxout
from dlx.models.resnet import BasicBlock
from test_models import convs, image_info, meta_build, n_params


def test_googlenet_is_the_papers_with_5x5_kernels() -> None:
    paper, tv = (
        meta_build({"name": "googlenet"}),
        meta_build({"name": "googlenet", "arch": "googlenet_torchvision"}),
    )
    inceptions = [entry[1] for entry in LAYOUT if isinstance(entry, tuple)]
    extra = sum(16 * r5 * n5 for _, _, _, r5, n5, _ in inceptions)  # 25 - 9 weights per pair
    assert n_params(paper) == n_params(tv) + extra == 7_005_832
    assert sum(c[2] == (5, 5) for c in convs(paper)) == 9  # one per Inception module


def test_factorize_replaces_large_kernels_by_small_and_asymmetric_ones() -> None:
    plain = meta_build({"name": "googlenet"})
    fact = meta_build({"name": "googlenet", "factorize": True})
    inception = [c[2] for c in convs(fact)[3:]]  # after the stem's three convs
    assert set(inception) == {(1, 1), (1, 3), (3, 1)}
    assert inception.count((1, 3)) == inception.count((3, 1)) == 9 * 3  # 3x3, 2 x (3x3 of 5x5)
    assert n_params(fact) < 0.75 * n_params(plain)
    y = build_model({"name": "googlenet", "factorize": True}, image_info(32))
    with torch.no_grad():
        assert y.eval()(torch.zeros(1, 1, 32, 32)).shape == (1, 10)


def test_squeeze_excite_weighs_channels() -> None:
    torch.manual_seed(0)
    se = SqueezeExcite(64, 16)
    assert n_params(se) == 64 * 4 + 4 + 4 * 64 + 64
    x = torch.randn(2, 64, 5, 5)
    scale = se(x) / x  # one factor per (sample, channel), in (0, 1)
    assert torch.allclose(scale, scale[:, :, :1, :1].expand_as(scale), atol=1e-5)
    assert scale.min() > 0 and scale.max() < 1
    model = build_model({"name": "resnet", "se": True}, image_info())
    assert sum(isinstance(m, SqueezeExcite) for m in model.modules()) == 9  # one per block


# --- MLP and maxout -------------------------------------------------------------------------
def test_softmax_regression_is_one_linear_layer() -> None:
    model = build_model({"name": "mlp", "hidden": []}, image_info(32, 3, 10))
    assert [type(m) for m in model] == [nn.Flatten, nn.Linear]
    assert n_params(model) == 3 * 32 * 32 * 10 + 10


def test_mlp_layers_and_norms() -> None:
    model = build_model({"name": "mlp", "hidden": [64, 32], "norm": "layer"}, image_info(8))
    assert [m.out_features for m in model.modules() if isinstance(m, nn.Linear)] == [64, 32, 10]
    assert sum(isinstance(m, nn.LayerNorm) for m in model.modules()) == 2
    seq = DataInfo(name="waves", kind="sequence", num_classes=3, seq_len=6, features=4)
    assert build_model({"name": "mlp"}, seq)(torch.randn(5, 6, 4)).shape == (5, 3)


def test_maxout_is_the_max_of_k_linear_pieces() -> None:
    torch.manual_seed(0)
    node = {"name": "mlp", "hidden": [7], "activation": "maxout", "maxout_pieces": 3}
    model = build_model(node, image_info(8))
    x = torch.randn(4, 1, 8, 8)
    lin = model.fc1.linear
    pieces = (x.flatten(1) @ lin.weight.T + lin.bias).view(4, 7, 3)  # unit c: rows 3c..3c+2
    assert torch.allclose(model.fc1(x.flatten(1)), pieces.amax(2), atol=1e-6)
    m = Maxout(2)
    assert torch.equal(m(torch.tensor([[1.0, 5.0, -3.0, -4.0]])), torch.tensor([[5.0, -3.0]]))


@pytest.mark.parametrize("k", [2, 4])
def test_maxout_has_k_times_the_weights(k: int) -> None:
    info = image_info(16)

    def hidden_params(node: dict) -> int:
        model = build_model(node, info)
        return n_params(model) - n_params(model.output)

    mlp = {"name": "mlp", "hidden": [32, 16]}
    assert hidden_params({**mlp, "activation": "maxout", "maxout_pieces": k}) == k * (
        hidden_params(mlp)
    )
    lenet, maxout = {"name": "lenet"}, {"activation": "maxout", "maxout_pieces": k}
    c1 = build_model({**lenet, **maxout}, info).c1
    assert n_params(c1) == k * n_params(build_model(lenet, info).c1)
    resnet = build_model({"name": "resnet", **maxout}, info)
    assert resnet.stage1[0].conv2.out_channels == 16 * k
    assert resnet(torch.randn(2, 1, 16, 16)).shape == (2, 10)


def test_residual_maxout_adds_the_shortcut_to_every_piece() -> None:
    torch.manual_seed(0)
    model = build_model({"name": "resnet", "activation": "maxout"}, image_info(8)).eval()
    block = model.stage1[0]
    x = torch.randn(1, 16, 8, 8)
    branch = block.branch(x).view(1, 16, 2, 8, 8)
    assert torch.allclose(block(x), (branch + x.unsqueeze(2)).amax(2), atol=1e-6)


@pytest.mark.parametrize("activation", ["leaky_relu", "elu", "relu6"])
def test_every_family_takes_the_new_activations(activation: str) -> None:
    kind = {"leaky_relu": nn.LeakyReLU, "elu": nn.ELU, "relu6": nn.ReLU6}[activation]
    for family in ("alexnet", "googlenet", "lenet", "mlp", "mobilenet", "nin", "resnet"):
        node = {"name": family, "activation": activation}
        model = meta_build(node, image_info(16))
        assert any(isinstance(m, kind) for m in model.modules()), family
        assert not any(type(m) is nn.ReLU for m in model.modules()), family


# --- init -----------------------------------------------------------------------------------
FAN = 1024  # the first layer of an MLP with hidden=[1024] on 32x32 images: 1024 x 1024
STD = {
    "xavier_uniform": math.sqrt(2 / (2 * FAN)),
    "xavier_normal": math.sqrt(2 / (2 * FAN)),
    "kaiming_uniform": math.sqrt(2 / FAN),  # gain sqrt(2) for relu
    "kaiming_normal": math.sqrt(2 / FAN),
    "orthogonal": 1 / math.sqrt(FAN),
    "normal": 0.05,
}


@pytest.mark.parametrize("scheme", sorted(STD))
def test_init_std_matches_the_formula(scheme: str) -> None:
    torch.manual_seed(0)
    node = {"name": "mlp", "hidden": [FAN], "init": scheme, "init_std": 0.05}
    layer = build_model(node, image_info(32)).fc1.linear
    w = layer.weight.detach()
    assert w.shape == (FAN, FAN)
    assert w.std().item() == pytest.approx(STD[scheme], rel=0.01)
    assert w.mean().abs().item() < 0.01 * STD[scheme] * 10
    assert torch.all(layer.bias == 0)
    if scheme == "orthogonal":
        assert torch.allclose(w @ w.T, torch.eye(FAN), atol=1e-4)
    if scheme.endswith("uniform"):
        bound = STD[scheme] * math.sqrt(3)
        assert w.abs().max().item() <= bound and w.abs().max().item() > 0.99 * bound


def test_kaiming_gain_follows_the_activation() -> None:
    torch.manual_seed(0)
    for act, gain in (("tanh", 5 / 3), ("sigmoid", 1.0), ("leaky_relu", math.sqrt(2 / 1.0001))):
        node = {"name": "mlp", "hidden": [FAN], "init": "kaiming_normal", "activation": act}
        w = build_model(node, image_info(32)).fc1.linear.weight
        assert w.std().item() == pytest.approx(gain / math.sqrt(FAN), rel=0.01), act


def test_init_reaches_convs_local_layers_and_recurrent_weights() -> None:
    torch.manual_seed(0)
    resnet = build_model({"name": "resnet", "init": "normal", "init_std": 0.02}, image_info())
    conv = resnet.stage3[0].conv1.conv.weight
    assert conv.std().item() == pytest.approx(0.02, rel=0.05)
    default = build_model({"name": "resnet"}, image_info()).stage3[0].conv1.conv.weight
    fan_out = 64 * 9  # torchvision's He-normal (fan-out) init is kept by init=default
    assert default.std().item() == pytest.approx(math.sqrt(2 / fan_out), rel=0.05)
    local = build_model({"name": "lenet", "conv": "local", "init": "orthogonal"}, image_info())
    kernels = local.c3.conv.kernels()  # per position (16, 6, 5, 5): orthonormal rows
    assert len(kernels) == 100
    rows = kernels[7].reshape(16, -1)
    assert torch.allclose(rows @ rows.T, torch.eye(16), atol=1e-5)
    lstm = build_model({"name": "lstm", "hidden_size": 32, "init": "orthogonal"}, image_info())
    hh = lstm.rnn.weight_hh_l0.detach()  # (4H, H): orthonormal columns
    assert torch.allclose(hh.T @ hh, torch.eye(32), atol=1e-5)
    assert torch.all(lstm.rnn.bias_hh_l0 == 0)


# --- local, shuffle, dilation, shortcuts ----------------------------------------------------
def test_locally_connected_equals_a_conv_when_its_kernels_are_tied() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3, padding=1)
    local = LocallyConnected2d(3, 4, 3, 6, padding=1)
    assert n_params(local) == 36 * 4 * (3 * 9) + 4 * 36
    with torch.no_grad():
        for k in local.kernels():
            k.copy_(conv.weight)
        local.bias.copy_(conv.bias.view(4, 1, 1).expand(4, 6, 6))
    x = torch.randn(2, 3, 6, 6)
    tied = local(x)
    assert torch.allclose(tied, conv(x), atol=1e-5)
    with torch.no_grad():  # untie one position: only that output pixel changes
        local.kernels()[6 * 2 + 3].add_(1.0)
    changed = (local(x) - tied).abs().sum(dim=(0, 1)) > 0
    assert changed[2, 3] and changed.sum() == 1


def test_lenet_local_sizes() -> None:
    model = build_model({"name": "lenet", "conv": "local"}, image_info(32))
    assert n_params(model.c1) == 28 * 28 * 6 * (25 + 1) == 122_304
    assert n_params(model.c3) == 10 * 10 * 16 * (150 + 1)
    s = model_summary(model, image_info(32))
    c1 = next(r for r in s.rows if r.name == "c1.conv")
    assert c1.macs == c1.params == 122_304  # every weight used once per sample


def test_channel_shuffle_interleaves_the_groups() -> None:
    x = torch.arange(6.0).view(1, 6, 1, 1)
    assert channel_shuffle(x, 2).flatten().tolist() == [0, 3, 1, 4, 2, 5]


def test_cifar_dilation_sets_each_stages_rate() -> None:
    model = build_model({"name": "resnet", "dilation": [1, 2, 5]}, image_info())
    rates = [
        {
            m.dilation
            for m in stage.modules()
            if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)
        }
        for stage in (model.stage1, model.stage2, model.stage3)
    ]
    assert rates == [{(1, 1)}, {(2, 2)}, {(5, 5)}]
    assert n_params(model) == 269_434  # dilation adds no weights


@pytest.mark.parametrize(
    ("dilation", "message"),
    [
        ([2, 4, 8], r"rates share the factor 2, .*gridding.*co-prime rates such as \[1,2,5\]"),
        ([3, 6, 9], r"rates share the factor 3"),
        ([1, 2], r"one dilation rate \(an integer >= 1\) per stage, 3 in all"),
        ([0, 1, 2], r"one dilation rate"),
        ([False, True, True], r"one dilation rate"),
    ],
)
def test_cifar_dilation_rule(dilation: list, message: str) -> None:
    text = str(dilation).replace(" ", "").replace("True", "true").replace("False", "false")
    with pytest.raises(UsageError, match=rf"^model\.dilation={re.escape(text)}: .*{message}"):
        MODELS.parse({"name": "resnet", "dilation": dilation})


def test_imagenet_dilation_takes_torchvisions_flags() -> None:
    with pytest.raises(UsageError, match=r"takes torchvision's replace_stride_with_dilation"):
        MODELS.parse({"name": "resnet", "arch": "resnet50", "dilation": [1, 2, 5]})
    with torch.device("meta"):
        node = {"name": "resnet", "arch": "resnet18", "dilation": [False, True, True]}
        features = build_model(node, image_info(224, 3)).forward_body  # stem and stages
        assert features(torch.zeros(1, 3, 224, 224)).shape == (1, 512, 28, 28)  # stride 8


def test_shortcut_none_makes_a_plain_net() -> None:
    torch.manual_seed(0)
    plain = build_model({"name": "resnet", "shortcut": "none"}, image_info(8)).eval()
    blocks = [m for m in plain.modules() if isinstance(m, BasicBlock)]
    assert len(blocks) == 9 and all(b.shortcut is None for b in blocks)
    x = torch.randn(1, 16, 8, 8)
    assert torch.allclose(blocks[0](x), torch.relu(blocks[0].branch(x)))
    residual = build_model({"name": "resnet"}, image_info(8))
    assert all(b.shortcut is not None for b in residual.modules() if isinstance(b, BasicBlock))
    assert n_params(plain) == n_params(residual)  # option A shortcuts have no weights
    r18 = {"name": "resnet", "arch": "resnet18"}
    no_proj = n_params(meta_build(r18)) - n_params(meta_build({**r18, "shortcut": "none"}))
    assert no_proj == sum((c * 2 * c) + 2 * (2 * c) for c in (64, 128, 256))  # 1x1 + BN
    with pytest.raises(UsageError, match=r"^model\.zero_init_residual=true needs shortcuts"):
        MODELS.parse({"name": "resnet", "shortcut": "none", "zero_init_residual": True})


# --- summary: what the variants cost --------------------------------------------------------
def test_depthwise_separable_macs_against_the_standard_conv() -> None:
    info = image_info(32)
    model = build_model({"name": "mobilenet", "arch": "mobilenet_v1"}, info)
    s = model_summary(model, info, depth=4)
    rows = {r.name: r for r in s.rows}
    dw, pw = rows["features.block2.depthwise.conv"], rows["features.block2.pointwise.conv"]
    _, cout, h, w = pw.output_shape
    cin = dw.output_shape[1]
    assert dw.macs == 9 * cin * h * w and pw.macs == cin * cout * h * w
    standard = 9 * cin * cout * h * w  # a 3x3 conv from cin to cout maps
    assert (dw.macs + pw.macs) / standard == pytest.approx(1 / cout + 1 / 9)
    assert s.total_params == n_params(model) == sum(r.params for r in s.rows)


def test_summary_compares_grouped_convs_with_ungrouped_ones() -> None:
    info = image_info(32)
    model = build_model({"name": "resnet", "arch": "resnext50_32x4d"}, info)
    s = model_summary(model, info)
    grouped = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    assert len(grouped) == 16 and {m.groups for m in grouped} == {32}
    assert s.grouped_as_standard == 32 * s.grouped_macs > 0
    plain = model_summary(build_model({"name": "resnet", "arch": "resnet50"}, info), info)
    assert plain.grouped_macs == plain.grouped_as_standard == 0
