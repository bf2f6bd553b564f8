"""``trainer.save_top_k=N``: keep the checkpoints of the N best epochs by ``trainer.monitor``
as ``checkpoints/epoch=E-<monitor>=V.pt`` (``val/acc`` → ``val_acc``); ``best.pt`` stays the
best. Each file is a full checkpoint whose ``model`` entry holds the weights validation
measured (the EMA's with ``regularization=[ema]``): the input to averaging and ensembles."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dlx.callbacks import Callback

if TYPE_CHECKING:
    from dlx.engine.run import Run


def file_name(epoch: int, monitor: str, value: float) -> str:
    return f"epoch={epoch}-{monitor.replace('/', '_')}={value:.4f}.pt"


class TopK(Callback):
    """Writes an epoch's checkpoint when it ranks among the ``k`` best so far and removes
    the one it pushes out (ties: the earlier epoch stays). Saving is a collective under DDP,
    so it runs on every rank; rank 0 writes and removes."""

    every_rank = True
    state_key = "top_k"

    def __init__(self, k: int, monitor: str, mode: str) -> None:
        self.k, self.monitor, self.mode = k, monitor, mode
        self.kept: list[dict[str, Any]] = []  # best first: {"epoch", "value", "file"}

    def ranks(self, value: float) -> bool:
        """Whether ``value`` enters the top k."""
        if len(self.kept) < self.k:
            return True
        worst = self.kept[-1]["value"]
        return value > worst if self.mode == "max" else value < worst

    def on_epoch_end(self, run: Run, metrics: dict[str, float]) -> None:
        value, epoch = metrics[self.monitor], run.state.epoch
        if not self.ranks(value):
            return
        name = file_name(epoch, self.monitor, value)
        evaluated = run.eval_model
        run.save(name, None if evaluated is run.compiled else evaluated.state_dict())
        self.kept.append({"epoch": epoch, "value": value, "file": name})
        sign = -1 if self.mode == "max" else 1
        self.kept.sort(key=lambda e: (sign * e["value"], e["epoch"]))
        for dropped in self.kept[self.k :]:
            if run.ctx.main:  # on the writer's thread: after the file's own write, in order
                path = run.run_dir / "checkpoints" / dropped["file"]
                run.writer.call(lambda path=path: path.unlink(missing_ok=True))
        del self.kept[self.k :]

    def state_dict(self) -> dict[str, Any]:
        return {"kept": [dict(e) for e in self.kept]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.kept = [dict(e) for e in state["kept"]]
