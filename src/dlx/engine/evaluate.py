"""Evaluation: a model's metrics on a split (its objective's), and ``dlx eval`` of a run."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dlx.augment.tta import tta_forward
from dlx.data.base import DataModule
from dlx.engine.inputs import Inputs
from dlx.engine.objective import Objective, build_objective, task_of


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    data: DataModule,
    split: str,
    inputs: Inputs,
    objective: Objective,
    autocast: Callable[[], AbstractContextManager[object]],
    limit: int | None = None,
    tta: str = "none",
    check_stop: Callable[[], None] | None = None,
    batch_size: int | None = None,
) -> dict[str, float]:
    """The objective's metrics (mean loss, accuracy, …) of ``model`` on ``split`` (never
    augmented; ``tta`` opt-in), in batches of ``batch_size`` (default the data's);
    ``check_stop`` is called after each batch (it raises to stop, e.g. on Ctrl-C).
    ``limit`` counts batches of the data's own size."""
    model.eval()
    device = inputs.mean.device
    loss_sum = torch.zeros((), device=device)
    stats = torch.zeros(objective.width, device=device)
    n = 0
    if limit is not None:  # limit_val_batches counts batches of data.batch_size
        batch_size = None
    for i, (xb, yb) in enumerate(data.batches(split, batch_size=batch_size)):
        if limit is not None and i >= limit:
            break
        x, y = inputs(xb, yb)
        with autocast():
            out = tta_forward(model, x, tta)
        loss_sum += objective.loss(out, y) * len(y)
        stats += objective.stats(out, y)
        n += len(y)
        if check_stop is not None:
            check_stop()
    sums = torch.cat([loss_sum.reshape(1), stats]).tolist()  # one host transfer
    return objective.summarise(split, sums[0] / max(n, 1), sums[1:], n)


def load_model(
    cfg: Any, run_dir: Path, info: Any, device: Any, which: str = "best.pt"
) -> nn.Module:
    """The run's model (its own ``cfg.model``, for data shaped like ``info``) with the weights
    of ``checkpoints/which``, on ``device``; a mismatch is one ``RunFailed`` line."""
    from dlx.engine import checkpoint
    from dlx.errors import RunFailed
    from dlx.models import build_model

    state = checkpoint.load(Path(run_dir) / "checkpoints" / which)
    model = build_model(cfg.model, info).to(device)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:
        raise RunFailed(
            f"checkpoint {run_dir}/checkpoints/{which}: does not fit model={cfg.model.name} "
            f"({str(e).splitlines()[0]})"
        ) from None
    return model


def evaluate_run(cfg: Any, run_dir: Path, which: str = "best.pt") -> dict[str, float]:
    """Metrics of the run's ``which`` checkpoint on the val and test splits (``dlx eval``)."""
    from dlx.data import build_data
    from dlx.engine.device import autocast_for, pick_device
    from dlx.errors import UsageError
    from dlx.registry import to_schema
    from dlx.trainer import TrainerConfig

    trainer = to_schema(cfg.trainer, TrainerConfig, "trainer")
    device = pick_device(trainer.device)
    data = build_data(cfg.data, device)
    if trainer.tta != "none" and data.info.kind != "image":  # as dlx train refuses it
        raise UsageError(
            f"trainer.tta={trainer.tta}: data={data.info.name} is a sequence task; "
            "use trainer.tta=none"
        )
    model = load_model(cfg, run_dir, data.info, device, which)
    task = task_of(model, data.info)
    objective = build_objective(data.info, task)
    objective.check_options(task, [], trainer.tta)
    inputs = Inputs(data.info, device, channels_last=False, target=objective.target)
    autocast = autocast_for(device, trainer.precision)
    metrics = evaluate(model, data, "val", inputs, objective, autocast, tta=trainer.tta)
    metrics.update(evaluate(model, data, "test", inputs, objective, autocast, tta=trainer.tta))
    return metrics
