"""What a task minimises and what it reports: one ``Objective`` per task, chosen by name.

The task comes from the model when it has one (``model.task``: an autoencoder reconstructs
its input whatever the data's labels) and from the data otherwise (``DataInfo.task``). Each
objective names its epoch metrics (``names``: ``loss`` first) and the one ``trainer.monitor``
follows by default (``monitor``). The loop and evaluation only call ``loss``, ``stats`` (device
sums, no host sync) and ``summarise`` (host floats from the split's sums).

New tasks register with ``@register("name")``. An objective also says what the target is
(``target``: the label, or the clean image a reconstruction compares with), how several
models' outputs combine (``combine``: an ensemble) and which augmentations and test-time
augmentations make sense for it (``check_options``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from dlx.data.base import DataInfo
from dlx.engine.monitor import DEFAULT_MONITOR
from dlx.errors import UsageError

#: regression counts a prediction right within this distance of the target, the tolerance of
#: Hochreiter & Schmidhuber (1997) for the adding problem (their target spans [0, 1], this
#: sum [0, 2]: twice as strict here; predicting the mean scores acc ~0.08)
REGRESSION_TOLERANCE = 0.04
#: the smallest mse PSNR is computed from (a perfect reconstruction reads 100 dB, not inf)
MIN_MSE = 1e-10

#: the objectives by task name
OBJECTIVES: dict[str, Callable[..., Objective]] = {}


def register(task: str) -> Callable[[type[Objective]], type[Objective]]:
    def add(cls: type[Objective]) -> type[Objective]:
        OBJECTIVES[task] = cls
        cls.task = task
        return cls

    return add


class Objective:
    """Classification: cross-entropy (optionally label-smoothed) and top-1 accuracy."""

    #: the task's name (set by ``register``)
    task: str = "classification"
    #: the epoch metrics of each split, ``loss`` first
    names: tuple[str, ...] = ("loss", "acc")
    #: what ``trainer.monitor`` follows when left at its default
    monitor: str = "val/acc"
    #: how many sums ``stats`` returns
    width: int = 1
    #: the ``augment`` options the task allows (None: every one)
    augments: tuple[str, ...] | None = None
    #: whether ``trainer.tta`` may average views (the output does not move with the input)
    tta: bool = True

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

    def target(self, image: Tensor, y: Tensor) -> Tensor:
        """What the output is compared with, given the batch's clean image in [0, 1] (after
        the data-movement augmentations, before any corruption) and its labels: the labels."""
        return y

    def combine(self, outs: list[Tensor]) -> Tensor:
        """Several models' outputs as one (an ensemble): the log of the mean softmax
        probabilities, logits whose softmax is the averaged distribution."""
        probs = torch.stack([o.float().softmax(-1) for o in outs]).mean(0)
        return probs.clamp_min(torch.finfo(probs.dtype).tiny).log()

    def check_options(self, task: str, augment: list[str], tta: str) -> None:
        """A one-line ``UsageError`` for an ``augment`` option or ``trainer.tta`` that makes
        no sense for this task."""
        if self.augments is not None and (bad := [a for a in augment if a not in self.augments]):
            raise UsageError(
                f"augment={bad[0]}: not for a {task} task (the target would not follow the "
                f"input); choose from: {', '.join(self.augments)}"
            )
        if not self.tta and tta != "none":
            raise UsageError(f"trainer.tta={tta}: not for a {task} task; use trainer.tta=none")


register("classification")(Objective)


@register("regression")
class Regression(Objective):
    """Mean-squared error; a prediction within ``REGRESSION_TOLERANCE`` counts as right."""

    def loss(self, out: Tensor, y: Tensor) -> Tensor:
        return F.mse_loss(out.squeeze(-1).float(), y.float())

    def hits(self, out: Tensor, y: Tensor) -> Tensor:
        return (out.squeeze(-1).float() - y).abs() < REGRESSION_TOLERANCE

    def combine(self, outs: list[Tensor]) -> Tensor:
        return torch.stack([o.float() for o in outs]).mean(0)


def psnr(mse: float, peak: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB: 10 log10(peak^2 / mse) (mse 0.01 on [0, 1] -> 20)."""
    return 10 * math.log10(peak**2 / max(mse, MIN_MSE))


@register("reconstruction")
class Reconstruction(Objective):
    """An image back from the model: the mean-squared error between its output (in [0, 1],
    e.g. a sigmoid's) and the clean input image in [0, 1]. A denoising autoencoder gets the
    same target: the corrupting augmentations (``noise``, ``blur``, ``color``, ``cutout``)
    change the model's input alone, while ``crop`` and ``flip`` move target and input alike.

    ``*/mse`` is the mean over samples (and pixels) of the squared error; ``*/psnr`` is
    computed from the split's mean mse, ``10 log10(1 / mse)`` (not a mean of per-image PSNRs).
    """

    names = ("loss", "mse", "psnr")
    monitor = "val/mse"
    augments = ("crop", "flip", "color", "blur", "noise", "cutout")
    tta = False  # a view's output would have to be moved back first

    def target(self, image: Tensor, y: Tensor) -> Tensor:
        return image

    def loss(self, out: Tensor, y: Tensor) -> Tensor:
        return F.mse_loss(out.float(), y.float())

    def stats(self, out: Tensor, y: Tensor) -> Tensor:
        """The sum over the batch of each sample's mean squared error."""
        return (out.float() - y.float()).square().flatten(1).mean(1).sum().reshape(1)

    def summarise(self, split: str, loss: float, stats: list[float], n: int) -> dict[str, Any]:
        mse = stats[0] / max(n, 1)
        return {f"{split}/loss": loss, f"{split}/mse": mse, f"{split}/psnr": psnr(mse)}

    def combine(self, outs: list[Tensor]) -> Tensor:
        return torch.stack([o.float() for o in outs]).mean(0)


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
    """The model's task when it brings one (``model.task``), else the data's."""
    return getattr(model, "task", None) or info.task


def followed_monitor(monitor: str, objective: Objective | type[Objective]) -> str:
    """``trainer.monitor`` as a run follows it: left at its default (``val/acc``), the task's
    own (``val/mse`` of a reconstruction, ``val/ppl`` of a language model)."""
    return objective.monitor if monitor == DEFAULT_MONITOR else monitor


def planned_monitor(cfg: Any) -> str:
    """The metric a run of the composed ``cfg`` will monitor, known before anything is built
    (a sweep's direction): its model's task, else its data's (their options' ``task``)."""
    from dlx.data import DATASETS
    from dlx.models import MODELS

    task = MODELS.get(cfg.model.name).task or DATASETS.get(cfg.data.name).task
    return followed_monitor(str(cfg.trainer.monitor), OBJECTIVES[task or "classification"])
