"""``model.init``: how every weight matrix and kernel of a model starts.

Each scheme sets the weights of every conv, linear, locally connected and recurrent layer and
sets their biases to zero; norm layers keep gamma = 1, beta = 0. ``fan_in`` is the number of
inputs one output sees (``in_channels * kh * kw`` for a conv, ``in_features`` for a linear
layer), ``fan_out`` the number of outputs one input reaches (``out_channels * kh * kw``).

=================  ===============================================  ===========================
``model.init``     weights                                          std
=================  ===============================================  ===========================
``default``        the family's own (torchvision's where it has      --
                   the model, else PyTorch's layer defaults)
``xavier_uniform`` U(-a, a), a = sqrt(6 / (fan_in + fan_out))       sqrt(2 / (fan_in+fan_out))
``xavier_normal``  N(0, 2 / (fan_in + fan_out))  (Glorot, 2010)      sqrt(2 / (fan_in+fan_out))
``kaiming_uniform`` U(-b, b), b = gain * sqrt(3 / fan_in)            gain / sqrt(fan_in)
``kaiming_normal`` N(0, gain² / fan_in)  (He et al., 2015)           gain / sqrt(fan_in)
``orthogonal``     a random orthogonal matrix (Saxe et al., 2014)   1 / sqrt(max(fan_in, out))
                   over (out, fan_in): orthonormal rows or columns
``normal``         N(0, ``model.init_std``²)                        ``init_std``
=================  ===============================================  ===========================

The Kaiming gain follows ``model.activation``: sqrt(2) for relu, relu6, elu, gelu and maxout
(each passes about half its input's variance, as ReLU does), sqrt(2 / (1 + 0.01²)) for
leaky_relu, 5/3 for tanh, 1 for sigmoid; recurrent layers (their gates squash with tanh and
sigmoid) use 1. A locally connected layer is initialised position by position, each position
like a conv with the same kernel.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from torch import Tensor, nn

from dlx.models.blocks import LocallyConnected2d

#: model.activation -> torch's (nonlinearity, negative slope) for the Kaiming gain
KAIMING: dict[str, tuple[str, float]] = {
    **{a: ("relu", 0.0) for a in ("relu", "relu6", "elu", "gelu", "maxout")},
    "leaky_relu": ("leaky_relu", 0.01),
    "tanh": ("tanh", 0.0),
    "sigmoid": ("sigmoid", 0.0),
    "linear": ("linear", 0.0),
}


def _kaiming(fn: Callable[..., Tensor]) -> Callable[[Tensor, str, float], None]:
    def init(w: Tensor, activation: str, std: float) -> None:
        nonlinearity, slope = KAIMING[activation]
        fn(w, a=slope, nonlinearity=nonlinearity)  # fan_in mode

    return init


#: scheme -> init of one weight tensor, given the activation (for Kaiming) and ``init_std``
SCHEMES: dict[str, Callable[[Tensor, str, float], None]] = {
    "xavier_uniform": lambda w, act, std: nn.init.xavier_uniform_(w),
    "xavier_normal": lambda w, act, std: nn.init.xavier_normal_(w),
    "kaiming_uniform": _kaiming(nn.init.kaiming_uniform_),
    "kaiming_normal": _kaiming(nn.init.kaiming_normal_),
    "orthogonal": lambda w, act, std: nn.init.orthogonal_(w),
    "normal": lambda w, act, std: nn.init.normal_(w, 0.0, std),
}


def _layers(model: nn.Module, activation: str) -> Iterator[tuple[list[Tensor], list[Tensor], str]]:
    """(conv-shaped weights, biases, activation for the gain) of every layer a scheme sets; a
    locally connected layer gives one weight per position."""
    for m in model.modules():
        if isinstance(m, nn.Conv1d | nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            yield [m.weight], [m.bias] if m.bias is not None else [], activation
        elif isinstance(m, LocallyConnected2d):
            yield m.kernels(), [m.bias] if m.bias is not None else [], activation
        elif isinstance(m, nn.RNNBase):
            params = dict(m.named_parameters())
            weights = [p for n, p in params.items() if n.startswith("weight")]
            biases = [p for n, p in params.items() if n.startswith("bias")]
            yield weights, biases, "linear"


def initialize(model: nn.Module, scheme: str, std: float, activation: str = "relu") -> nn.Module:
    """Apply ``model.init=scheme`` to ``model`` in place (``default`` leaves it); return it."""
    if scheme == "default":
        return model
    init = SCHEMES[scheme]
    for weights, biases, act in _layers(model, activation):
        for w in weights:
            init(w, act, std)
        for b in biases:
            nn.init.zeros_(b)
    return model
