"""``regularization=[ema]`` and ``regularization=[swa]``: weight averaging as callbacks.

EMA updates its average after every optimizer step (on the device, no host sync) and is the
model validation evaluates from the start, so ``best.pt`` holds the average's weights and the
test measures them. SWA averages the weights at the end of each epoch from ``swa_start`` on
(at ``swa_lr`` when set), then, when training ends, recomputes the average's BN statistics
over the training batches, validates it and saves it as ``best.pt``: the average is tested.
Both run on every rank (their ranks hold the same weights) and are kept in checkpoints.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from dlx.callbacks import Callback
from dlx.engine.averaging import EMA, SWA, has_batchnorm, recompute_bn, set_lr
from dlx.errors import UsageError

if TYPE_CHECKING:
    from torch import Tensor

    from dlx.engine.run import Run
    from dlx.engine.state import StepResult
    from dlx.regularization import EMAConfig, SWAConfig


class EMAWeights(Callback):
    """``ema ← decay · ema + (1 − decay) · w`` after each step; the average is evaluated."""

    every_rank = True
    state_key = "ema"

    def __init__(self, run: Run, cfg: EMAConfig) -> None:
        self.ema = EMA(run.model, cfg.decay)

    def on_fit_start(self, run: Run) -> None:
        run.eval_model = self.ema.module  # val, best.pt (its weights), hence the test

    def on_step_end(self, run: Run, result: StepResult) -> None:
        self.ema.update()

    def state_dict(self) -> dict[str, Any]:
        return self.ema.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.ema.load_state_dict(state)


def swa_start(cfg: SWAConfig, max_epochs: int) -> int:
    """The first epoch (1-based) averaged: ``swa_start``, else the last quarter's first."""
    if cfg.swa_start is None:
        return max_epochs - max(1, round(0.25 * max_epochs)) + 1
    if cfg.swa_start > max_epochs:
        raise UsageError(
            f"regularization.swa.swa_start={cfg.swa_start}: after the last epoch; allowed: "
            f"1..{max_epochs} (trainer.max_epochs={max_epochs})"
        )
    return cfg.swa_start


class SWAWeights(Callback):
    """The equal-weight average of the end-of-epoch weights from epoch ``start`` on."""

    every_rank = True
    state_key = "swa"

    def __init__(self, run: Run, cfg: SWAConfig) -> None:
        self.start = swa_start(cfg, run.trainer.max_epochs)
        self.lr = cfg.swa_lr
        self.swa = SWA(run.model)
        self._active = False  # in an averaged epoch with an SWA lr to hold

    def on_epoch_start(self, run: Run, epoch: int) -> None:
        self._active = self.lr is not None and epoch + 1 >= self.start
        if self._active:
            set_lr(run.optimizer, self.lr)

    def on_step_end(self, run: Run, result: StepResult) -> None:
        if self._active:  # the schedule moved the lr after this step: the next one uses swa_lr
            set_lr(run.optimizer, self.lr)

    def on_epoch_end(self, run: Run, metrics: dict[str, float]) -> None:
        if run.state.epoch >= self.start:
            self.swa.update(run.model)

    def on_fit_end(self, run: Run) -> None:
        """BN statistics of the average, its val figures, ``best.pt`` := the average."""
        from dlx.engine import distributed

        say = print if run.ctx.main else (lambda *a: None)
        if self.swa.n_averaged == 0:
            say(f"swa: training ended before epoch {self.start}; nothing averaged, best.pt kept")
            return
        module = self.swa.module
        if has_batchnorm(module):
            with run.autocast():
                recompute_bn(module, self._train_inputs(run))
        run.eval_model = module
        val = distributed.from_rank0(run.ctx, run.validate(), run.device)
        state = run.state
        train = {k: v for k, v in state.metrics.items() if k.startswith("train/")}
        state.best_metrics = {**train, **val}
        state.best = state.best_metrics[run.trainer.monitor]  # checked when the run was built
        state.best_epoch = state.epoch
        run.save("best.pt", module.state_dict())
        run.board.scalars({f"swa/{k}": v for k, v in val.items()}, state.step)
        figures = "  ".join(f"{k} {v:.4g}" for k, v in val.items())
        say(f"swa: {self.swa.n_averaged} epochs averaged (from epoch {self.start}); {figures}")

    def _train_inputs(self, run: Run) -> Iterator[Tensor]:
        """One pass over this rank's training batches as model inputs, not augmented."""
        batches = run.data.batches("train", drop_last=True)
        rank, world = run.ctx.rank, run.ctx.world
        for i, (xb, yb) in enumerate(batches):
            if i >= run.steps_per_epoch:
                return
            if world > 1:
                xb, yb = xb[rank::world], yb[rank::world]
            yield run.inputs(xb, yb)[0]

    def state_dict(self) -> dict[str, Any]:
        return self.swa.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.swa.load_state_dict(state)
