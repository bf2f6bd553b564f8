"""What a task minimises and what it reports: one ``Objective`` per task, chosen by name.

The task comes from the model when it has one (``model.task``: an autoencoder reconstructs
its input whatever the data's labels) and from the data otherwise (``DataInfo.task``). Each
objective names its epoch metrics (``names``: ``loss`` first) and the one ``trainer.monitor``
follows by default (``monitor``). The loop and evaluation only call ``loss``, ``stats`` (device
sums, no host sync) and ``summarise`` (host floats from the split's sums).

New tasks register with ``@OBJECTIVES.register("name")``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from dlx.data.base import DataInfo

#: regression counts a prediction right within this distance of the target, the tolerance of
#: Hochreiter & Schmidhuber (1997) for the adding problem
REGRESSION_TOLERANCE = 0.04

#: the objectives by task name
OBJECTIVES: dict[str, Callable[..., Objective]] = {}


def register(task: str) -> Callable[[type[Objective]], type[Objective]]:
    def add(cls: type[Objective]) -> type[Objective]:
        OBJECTIVES[task] = cls
        return cls

    return add


class Objective:
    """Classification: cross-entropy (optionally label-smoothed) and top-1 accuracy."""

    #: the epoch metrics of each split, ``loss`` first
    names: tuple[str, ...] = ("loss", "acc")
    #: what ``trainer.monitor`` follows when left at its default
    monitor: str = "val/acc"
    #: how many sums ``stats`` returns
    width: int = 1

    def __init__(self, info: DataInfo, label_smoothing: float = 0.0) -> None:
        self.info = info
        self.smoothing = label_smoothing

    def loss(self, out: Tensor, y: Tensor) -> Tensor:
        return F.cross_entropy(out.float(), y, label_smoothing=self.smoothing)

    def hits(self, out: Tensor, y: Tensor) -> Tensor:
        """A bool per sample: top-1 right (against the argmax of soft targets: mixup, cutmix)."""
        target = y.argmax(-1) if y.is_floating_point() else y
        return out.argmax(-1) == target

    def stats(self, out: Tensor, y: Tensor) -> Tensor:
        """The batch's sums that ``summarise`` needs beyond the loss (a 1-D float tensor on
        the device, no sync): here the number of hits."""
        return self.hits(out, y).sum(dtype=torch.float32).reshape(1)

    def summarise(self, split: str, loss: float, stats: list[float], n: int) -> dict[str, Any]:
        """``split``'s metrics from its mean loss and the summed ``stats`` of ``n`` samples."""
        return {f"{split}/loss": loss, f"{split}/acc": stats[0] / max(n, 1)}

    def metric_names(self, splits: tuple[str, ...] = ("train", "val")) -> list[str]:
        """``train/loss``, ``train/acc``, … : what may be monitored."""
        return [f"{s}/{name}" for s in splits for name in self.names]


register("classification")(Objective)


@register("regression")
class Regression(Objective):
    """Mean-squared error; a prediction within ``REGRESSION_TOLERANCE`` counts as right."""

    def loss(self, out: Tensor, y: Tensor) -> Tensor:
        return F.mse_loss(out.squeeze(-1).float(), y.float())

    def hits(self, out: Tensor, y: Tensor) -> Tensor:
        return (out.squeeze(-1).float() - y).abs() < REGRESSION_TOLERANCE


@register("sequence_classification")
class SequenceClassification(Objective):
    """Classification at every time step: outputs (N, T, K), targets (N, T). The loss is the
    mean cross-entropy over all steps; ``acc`` counts the last ``info.scored_steps`` steps of
    each sequence (0: all of them), e.g. only the recalled symbols of the copy task."""

    width = 2  # hits, scored steps

    def loss(self, out: Tensor, y: Tensor) -> Tensor:
        return F.cross_entropy(
            out.flatten(0, 1).float(), y.flatten(), label_smoothing=self.smoothing
        )

    def stats(self, out: Tensor, y: Tensor) -> Tensor:
        k = self.info.scored_steps or y.shape[1]
        hits = out[:, -k:].argmax(-1) == y[:, -k:]
        scored = torch.full((1,), float(hits.numel()), device=out.device)
        return torch.cat([hits.sum(dtype=torch.float32).reshape(1), scored])

    def summarise(self, split: str, loss: float, stats: list[float], n: int) -> dict[str, Any]:
        return {f"{split}/loss": loss, f"{split}/acc": stats[0] / max(stats[1], 1.0)}


@register("language_model")
class LanguageModel(SequenceClassification):
    """Next-character prediction: per-character cross-entropy (nats), ``ppl`` = exp of the
    mean per-character loss (every window has the same length, so the mean over samples is
    the mean over characters), ``acc`` the share of next characters guessed right."""

    names = ("loss", "ppl", "acc")
    monitor = "val/ppl"

    def summarise(self, split: str, loss: float, stats: list[float], n: int) -> dict[str, Any]:
        ppl = math.exp(loss) if loss < 700 else math.inf
        return {
            f"{split}/loss": loss,
            f"{split}/ppl": ppl,
            f"{split}/acc": stats[0] / max(stats[1], 1.0),
        }


def build_objective(info: DataInfo, task: str | None = None, **kwargs: Any) -> Objective:
    """The objective of ``task`` (default the data's own)."""
    return OBJECTIVES[task or info.task](info, **kwargs)


def task_of(model: Any, info: DataInfo) -> str:
    """The model's task when it declares one (``model.task``), else the data's."""
    return getattr(model, "task", None) or info.task
