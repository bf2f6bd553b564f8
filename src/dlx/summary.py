"""A model's layer table (output shapes, parameters, MACs) from one forward pass of torchinfo.

``model_summary`` returns the numbers; ``print_summary`` prints them as a Rich table followed
by totals, ending with the line ``Total params: N``.
"""

from __future__ import annotations

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
    stats = summary(model, input_data=torch.zeros(shape), device=device, depth=depth, verbose=0)
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
    params = list(model.parameters())
    return ModelSummary(
        input_shape=shape,
        rows=rows,
        total_params=sum(p.numel() for p in params),
        trainable_params=sum(p.numel() for p in params if p.requires_grad),
        macs=stats.total_mult_adds,
    )


def print_summary(
    model: nn.Module, info: DataInfo, console: Console, device: str | torch.device = "cpu"
) -> ModelSummary:
    """Print the layer table and the totals; the last line printed is ``Total params: N``."""
    from rich.table import Table
    from rich.text import Text

    s = model_summary(model, info, device)
    table = Table(title=f"{type(model).__name__} on input {s.input_shape}")
    for column, justify in (
        ("Layer", "left"),
        ("Type", "left"),
        ("Output shape", "left"),
        ("Params", "right"),
        ("MACs", "right"),
    ):
        table.add_column(column, justify=justify)
    for row in s.rows:
        table.add_row(
            Text("  " * (row.depth - 1) + row.name),
            Text(row.type),
            Text(str(row.output_shape)),
            f"{row.params:,}" if row.params else "--",
            f"{row.macs:,}" if row.macs else "--",
        )
    console.print(table)
    console.print(f"MACs: {s.macs:,} per sample", highlight=False)
    console.print(f"Trainable params: {s.trainable_params:,}", highlight=False)
    console.print(f"Total params: {s.total_params:,}", highlight=False)
    return s
