"""``CallbackList``: calls one hook on every callback that defines it, in order."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dlx.callbacks import Callback

if TYPE_CHECKING:
    from dlx.engine.run import Run
    from dlx.engine.state import StepResult

HOOKS = (
    "on_fit_start",
    "on_epoch_start",
    "on_step_end",
    "on_log",
    "on_epoch_end",
    "on_save",
    "on_interrupt",
    "on_fit_end",
    "on_test_end",
)


class CallbackList:
    """The run's callbacks. Each hook is called only on the callbacks that override it (a
    step with no per-step callback pays nothing); ``close`` runs on all, in reverse."""

    def __init__(self, callbacks: list[Callback]) -> None:
        self.items = list(callbacks)
        self._bound: dict[str, list[Callable[..., None]]] = {
            hook: [
                getattr(c, hook)
                for c in self.items
                if getattr(type(c), hook) is not getattr(Callback, hook)
            ]
            for hook in HOOKS
        }

    def _call(self, hook: str, *args: Any) -> None:
        for fn in self._bound[hook]:
            fn(*args)

    def wants(self, hook: str) -> bool:
        """Whether any callback overrides ``hook``."""
        return bool(self._bound[hook])

    def stateful(self) -> dict[str, Callback]:
        """The callbacks that keep state in checkpoints, by their checkpoint entry."""
        return {c.state_key: c for c in self.items if c.state_key is not None}

    def on_fit_start(self, run: Run) -> None:
        self._call("on_fit_start", run)

    def on_epoch_start(self, run: Run, epoch: int) -> None:
        self._call("on_epoch_start", run, epoch)

    def on_step_end(self, run: Run, result: StepResult) -> None:
        for fn in self._bound["on_step_end"]:
            fn(run, result)

    def on_log(self, run: Run, scalars: dict[str, float]) -> None:
        self._call("on_log", run, scalars)

    def on_epoch_end(self, run: Run, metrics: dict[str, float]) -> None:
        self._call("on_epoch_end", run, metrics)

    def on_save(self, run: Run, name: str) -> None:
        self._call("on_save", run, name)

    def on_interrupt(self, run: Run) -> None:
        self._call("on_interrupt", run)

    def on_fit_end(self, run: Run) -> None:
        self._call("on_fit_end", run)

    def on_test_end(self, run: Run, metrics: dict[str, float]) -> None:
        self._call("on_test_end", run, metrics)

    def close(self, run: Run, summary: dict[str, Any]) -> None:
        """Every callback's ``close``, last first; one that fails does not stop the rest."""
        errors = []
        for c in reversed(self.items):
            try:
                c.close(run, summary)
            except Exception as e:  # the run's own outcome stays what it was
                errors.append(e)
        if errors:
            raise errors[0]
