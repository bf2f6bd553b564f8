"""Callbacks: the features of a run, each a small class the loop calls at named points.

The loop (``dlx.fit``) says only what training is; TensorBoard, the progress bar,
checkpoints, early stopping, the profiler and a user's own features are callbacks::

    class PrintLoss(Callback):
        def on_epoch_end(self, run: Run, metrics: dict[str, float]) -> None:
            print(run.state.epoch, metrics["train/loss"])

A user adds theirs from the config: ``trainer.callbacks=[my.module.PrintLoss]`` (a dotted
class path, called without arguments) or a Hydra node with ``_target_`` and its arguments.

Hook order within one point is the list's order; ``close`` runs in reverse, always, once.
Under DDP a callback runs on rank 0 only unless its class sets ``every_rank = True``.
A callback that sets ``state_key`` has its ``state_dict()`` saved in every checkpoint and
given back to ``load_state_dict()`` on resume. To end training after this epoch, call
``run.request_stop(status, reason)`` (``stopped_early``, ``pruned``): the loop checks once,
after ``on_epoch_end``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from dlx.engine.run import Run
    from dlx.engine.state import StepResult


class Callback:
    """Hook points of a run. Override the ones you need; every default does nothing."""

    #: run on every DDP rank (default: rank 0 alone, the rank that logs and writes files)
    every_rank: ClassVar[bool] = False
    #: the checkpoint entry of this callback's ``state_dict()``; None: it keeps no state
    state_key: ClassVar[str | None] = None

    def on_fit_start(self, run: Run) -> None:
        """The parts are built and a resume is loaded; no epoch has started."""

    def on_epoch_start(self, run: Run, epoch: int) -> None:
        """Epoch ``epoch`` (0-based) starts (also when a resume enters it mid-way)."""

    def on_log(self, run: Run, scalars: dict[str, float]) -> None:
        """A log step (``trainer.log_every_n_steps``): the step's figures, read to the host.
        Comes before that step's ``on_step_end``."""

    def on_step_end(self, run: Run, result: StepResult) -> None:
        """An optimizer step is done (and logged). Called every step: never read a tensor here
        (a host sync); keep what you need and read it in ``on_log`` or ``on_epoch_end``."""

    def on_epoch_end(self, run: Run, metrics: dict[str, float]) -> None:
        """Epoch done and validated: ``metrics`` holds its train and val figures."""

    def on_save(self, run: Run, name: str) -> None:
        """A checkpoint ``name`` (``last.pt``, ``best.pt``) was just written."""

    def on_interrupt(self, run: Run) -> None:
        """Ctrl-C or SIGTERM stopped training (``last.pt`` is saved)."""

    def on_fit_end(self, run: Run) -> None:
        """Training is over (all epochs, or a stop request); the test comes next."""

    def on_test_end(self, run: Run, metrics: dict[str, float]) -> None:
        """The best checkpoint was tested: ``metrics`` holds ``test/*``."""

    def close(self, run: Run, summary: dict[str, Any]) -> None:
        """The run is over, however it ended; ``summary`` is what summary.json holds."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass
