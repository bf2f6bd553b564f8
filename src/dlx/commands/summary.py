"""A model's layer table (output shapes, parameters, MACs) from one forward pass of torchinfo.

``model_summary`` returns the numbers; ``print_summary`` prints them as a Rich table followed
by totals, ending with the line ``Total params: N``. Where a model has grouped or depthwise
convs, a line beside the totals compares their MACs with what the same convs would take
ungrouped (``groups=1``): the saving behind ResNeXt's groups and MobileNet's and ShuffleNet's
depthwise convs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from dlx.data.base import DataInfo

if TYPE_CHECKING:
    from rich.console import Console


@dataclass(frozen=True)
class LayerRow:
    """One module of the table. ``params`` and ``macs`` count what the rows below it do not
    (a module at the depth limit counts its whole subtree), so the rows add up to the totals."""

    name: str  # dotted path in the model, e.g. "stage1.0.conv1"
    type: str  # class name
    depth: int
    output_shape: tuple[int, ...]
    params: int
    macs: int


@dataclass(frozen=True)
class ModelSummary:
    input_shape: tuple[int, ...]  # with a batch of one
    rows: list[LayerRow]
    total_params: int
    trainable_params: int
    macs: int  # multiply-accumulates for one sample
    grouped_macs: int = 0  # the weights' MACs of every conv with groups > 1
    grouped_as_standard: int = 0  # what those convs would cost ungrouped (groups x as many)


def _path(layer: Any) -> str:
    names = []
    while layer is not None and layer.depth > 0:
        names.append(layer.var_name)
        layer = layer.parent_info
    return ".".join(reversed(names))


def _leaf_macs(layer: Any) -> int:
    if layer.is_leaf_layer:
        return layer.macs
    return sum(_leaf_macs(child) for child in layer.children)


def model_summary(
    model: nn.Module, info: DataInfo, device: str | torch.device = "cpu", depth: int = 3
) -> ModelSummary:
    """Run one zero sample shaped like ``info.input_shape`` through ``model`` (in eval mode, on
    ``device``; torchinfo moves the model there) and tabulate modules down to ``depth``."""
    from torchinfo import summary  # heavy import; only the summary command needs it

    shape = (1, *info.input_shape)
    stats = summary(model, input_data=info.zeros(), device=device, depth=depth, verbose=0)
    rows = []
    for layer in stats.summary_list:
        if not 0 < layer.depth <= depth:
            continue
        whole = layer.is_leaf_layer or layer.depth == depth  # no rows below this one
        own = layer.num_params if whole else layer.leftover_params()
        rows.append(
            LayerRow(
                name=_path(layer),
                type=layer.class_name,
                depth=layer.depth,
                output_shape=tuple(layer.output_size),
                params=0 if layer.is_recursive else own,
                macs=_leaf_macs(layer) if whole else 0,
            )
        )
    grouped = [
        (layer.module.weight.numel() * math.prod(layer.output_size[2:]), layer.module.groups)
        for layer in stats.summary_list
        if isinstance(layer.module, nn.Conv2d) and layer.module.groups > 1
    ]
    params = list(model.parameters())
    return ModelSummary(
        input_shape=shape,
        rows=rows,
        total_params=sum(p.numel() for p in params),
        trainable_params=sum(p.numel() for p in params if p.requires_grad),
        macs=stats.total_mult_adds,
        grouped_macs=sum(macs for macs, _ in grouped),
        grouped_as_standard=sum(macs * groups for macs, groups in grouped),
    )


def print_summary(
    model: nn.Module, info: DataInfo, console: Console, device: str | torch.device = "cpu"
) -> ModelSummary:
    """Print the layer table and the totals; the last line printed is ``Total params: N``."""
    from rich.table import Table
    from rich.text import Text

    s = model_summary(model, info, device)
    table = Table(title=f"{type(model).__name__} on input {s.input_shape}", show_edge=False)
    table.add_column("Layer", overflow="ellipsis")  # indented by depth: the last name suffices
    table.add_column("Type", no_wrap=True, overflow="ellipsis", max_width=20)
    table.add_column("Output", no_wrap=True)  # per sample: the batch dim is left out
    table.add_column("Params", justify="right", no_wrap=True)
    table.add_column("MACs", justify="right", no_wrap=True)
    for row in s.rows:
        table.add_row(
            Text("  " * (row.depth - 1) + row.name.rsplit(".", 1)[-1]),
            Text(row.type),
            Text("x".join(map(str, row.output_shape[1:]))),
            f"{row.params:,}" if row.params else "--",
            f"{row.macs:,}" if row.macs else "--",
        )
    console.print(table)
    console.print(f"MACs: {s.macs:,} per sample", highlight=False)
    if s.grouped_macs:
        console.print(
            f"Grouped convs: {s.grouped_macs:,} MACs; ungrouped: {s.grouped_as_standard:,} "
            f"({s.grouped_as_standard / s.grouped_macs:.1f}x)",
            highlight=False,
        )
    console.print(f"Trainable params: {s.trainable_params:,}", highlight=False)
    console.print(f"Total params: {s.total_params:,}", highlight=False)
    return s
