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
from typing import TYPE_CHECKING, Any

from torch import Tensor, nn

from dlx.augment.tta import tta_forward
from dlx.engine.objective import Objective
from dlx.errors import UsageError

if TYPE_CHECKING:
    from dlx.engine.spec import RunSpec

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


def data_of(spec: RunSpec) -> dict[str, Any]:
    """What identifies a run's data: its ``data`` config without the reading keys."""
    return {k: v for k, v in spec.config["data"].items() if k not in READING_KEYS}


def check_same_data(members: list[tuple[Path, RunSpec]]) -> None:
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


def evaluate_ensemble(members: list[tuple[Path, RunSpec]]) -> list[tuple[str, dict[str, float]]]:
    """``(run dir, test metrics)`` of each member in order, then ``("ensemble", …)``."""
    from dlx.engine.build import build, trained_model
    from dlx.engine.device import pick_device
    from dlx.engine.evaluate import evaluate
    from dlx.engine.objective import task_of

    check_same_data(members)
    spec0 = members[0][1]
    p = build(spec0, pick_device(spec0.trainer.device), train=False)
    models = [trained_model(spec, d, p.info, p.device) for d, spec in members]
    tasks = [task_of(m, p.info) for m in models]
    for (run_dir, _), task in zip(members[1:], tasks[1:], strict=True):
        if task != tasks[0]:
            raise UsageError(
                f"RUN_DIR={run_dir}: a {task} model but {members[0][0]} is a {tasks[0]} one; "
                "ensemble members must share their task"
            )
    tta = spec0.trainer.tta

    def test(model: nn.Module, tta: str) -> dict[str, float]:
        return evaluate(model, p.data, "test", p.inputs, p.objective, p.autocast, tta=tta)

    out = [(str(d), test(m, tta)) for (d, _), m in zip(members, models, strict=True)]
    out.append(("ensemble", test(Ensemble(models, p.objective, tta), "none")))
    return out


def print_ensemble(members: list[tuple[Path, RunSpec]]) -> list[tuple[str, dict[str, float]]]:
    """``dlx eval`` of several runs: a table, one row per member (its model) and the
    ensemble's last."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    rows = evaluate_ensemble(members)
    names = list(rows[-1][1])
    models = [str(spec.model.name) for _, spec in members] + [f"{len(members)} members"]
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
