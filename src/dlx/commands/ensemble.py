"""``dlx eval RUN_DIR RUN_DIR… [OVERRIDES]``: an ensemble of finished runs.

Each member is its run's best checkpoint built from its own config (members may be different
models); the overrides apply to every member. The members must share their data (the same
``data`` config but for how it is read: batch size, workers, download), so that they see the
same test split. On that split each member is evaluated alone (under ``trainer.tta``) and then
the ensemble: the members' outputs combined by their task's objective — the mean of their
softmax probabilities for classification (``Objective.combine``; its loss is the
cross-entropy of that mean), the mean output for regression and reconstruction.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor, nn

from dlx.augment.tta import tta_forward
from dlx.engine.objective import Objective
from dlx.errors import UsageError

#: data keys that say how the data is read, not which: members may differ in them
READING_KEYS = ("batch_size", "num_workers", "download")


class Ensemble(nn.Module):
    """The members' outputs (each under test-time augmentation ``tta``) combined into one."""

    def __init__(self, members: list[nn.Module], objective: Objective, tta: str = "none") -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.objective = objective
        self.tta = tta

    def forward(self, x: Tensor) -> Tensor:
        return self.objective.combine([tta_forward(m, x, self.tta) for m in self.members])


def data_of(cfg: Any) -> dict[str, Any]:
    """What identifies a run's data: its ``data`` config without the reading keys."""
    from omegaconf import OmegaConf

    node = OmegaConf.to_container(cfg.data, resolve=True)
    return {k: v for k, v in node.items() if k not in READING_KEYS}


def check_same_data(members: list[tuple[Path, Any]]) -> None:
    """One ``UsageError`` line naming the first member whose data differs, and in what."""
    first, cfg0 = members[0]
    ref = data_of(cfg0)
    for run_dir, cfg in members[1:]:
        data = data_of(cfg)
        for key in sorted(set(ref) | set(data), key=lambda k: (k != "name", k)):
            if data.get(key) != ref.get(key):
                raise UsageError(
                    f"RUN_DIR={run_dir}: data.{key}={data.get(key)} but {first} has "
                    f"data.{key}={ref.get(key)}; ensemble members must share their data "
                    "(name, classes, split)"
                )


def evaluate_ensemble(members: list[tuple[Path, Any]]) -> list[tuple[str, dict[str, float]]]:
    """``(run dir, test metrics)`` of each member in order, then ``("ensemble", …)``."""
    from dlx.data import build_data
    from dlx.engine.device import autocast_for, pick_device
    from dlx.engine.evaluate import evaluate, load_model
    from dlx.engine.inputs import Inputs
    from dlx.engine.objective import build_objective, task_of
    from dlx.registry import to_schema
    from dlx.trainer import TrainerConfig

    check_same_data(members)
    cfg0 = members[0][1]
    trainer = to_schema(cfg0.trainer, TrainerConfig, "trainer")
    device = pick_device(trainer.device)
    data = build_data(cfg0.data, device)
    models = [load_model(cfg, d, data.info, device) for d, cfg in members]
    tasks = [task_of(m, data.info) for m in models]
    for (run_dir, _), task in zip(members[1:], tasks[1:], strict=True):
        if task != tasks[0]:
            raise UsageError(
                f"RUN_DIR={run_dir}: a {task} model but {members[0][0]} is a {tasks[0]} one; "
                "ensemble members must share their task"
            )
    objective = build_objective(data.info, tasks[0])
    objective.check_options(tasks[0], [], trainer.tta)
    inputs = Inputs(data.info, device, channels_last=False, target=objective.target)
    autocast = autocast_for(device, trainer.precision)

    def test(model: nn.Module, tta: str) -> dict[str, float]:
        return evaluate(model, data, "test", inputs, objective, autocast, tta=tta)

    out = [(str(d), test(m, trainer.tta)) for (d, _), m in zip(members, models, strict=True)]
    out.append(("ensemble", test(Ensemble(models, objective, trainer.tta), "none")))
    return out


def print_ensemble(members: list[tuple[Path, Any]]) -> list[tuple[str, dict[str, float]]]:
    """``dlx eval`` of several runs: a table, one row per member (its model) and the
    ensemble's last."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    rows = evaluate_ensemble(members)
    names = list(rows[-1][1])
    models = [str(cfg.model.name) for _, cfg in members] + [f"{len(members)} members"]
    table = Table(title="ensemble of best.pt (test split)", title_justify="left")
    for col in ("member", "model", *names):
        table.add_column(col, justify="right" if col in names else "left")
    for (label, metrics), model in zip(rows, models, strict=True):
        table.add_row(escape(label), model, *(f"{metrics[k]:.4f}" for k in names))
    console = Console()
    if not console.is_terminal:
        console.width = max(console.width, 200)
    console.print(table)
    return rows
