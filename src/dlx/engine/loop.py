"""The training loop, and the run around it.

``fit`` is what training is: epochs of batches → step → record → hooks, then the epoch's
validation → hooks, until ``max_epochs`` or a stop request. Everything else (TensorBoard, the
progress bar, checkpoints, early stopping, the profiler, a user's own features) is a callback
(``dlx.callbacks``); the parts are built once in ``dlx.engine.build.build_run``.

``run`` builds the parts, fits, tests the best checkpoint, maps how it ended to a status
(``OUTCOMES``), writes ``summary.json`` whatever happens and closes what it opened.
"""

from __future__ import annotations

import gc
import os
import signal as signal_module
import time
import traceback
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import torch

from dlx.engine import checkpoint, distributed, runlock
from dlx.engine.board import stderr_line
from dlx.engine.build import build_run
from dlx.engine.device import pick_device
from dlx.engine.distributed import Dist
from dlx.engine.nonfinite import Diverged
from dlx.engine.perf import Throughput, perf_summary
from dlx.engine.run import Run
from dlx.engine.signals import Interrupted
from dlx.engine.spec import parse
from dlx.errors import RunFailed, UsageError
from dlx.status import BROKEN, Status


def fit(run: Run) -> None:
    """Train from wherever ``run.state`` stands to ``trainer.max_epochs``, or until a callback
    asks to stop (checked once per epoch, after its hooks)."""
    state, hooks = run.state, run.callbacks
    hooks.on_fit_start(run)
    while state.epoch < run.trainer.max_epochs and run.stop_request is None:
        epoch = state.epoch
        run.start_epoch()
        hooks.on_epoch_start(run, epoch)
        for i, xb, yb in run.train_batches(epoch):
            x, y = run.inputs(xb, yb, run.augment)
            log = run.is_log_step(i)
            result = run.step(x, y, log)
            run.record(i, result)
            if log:  # a host sync, every log_every_n_steps steps
                hooks.on_log(run, run.log_figures(result))
            hooks.on_step_end(run, result)
            run.signals.check(sync_point=log)
        metrics = run.end_epoch(epoch)
        hooks.on_epoch_end(run, metrics)
        run.agree_on_stop()
    hooks.on_fit_end(run)


def fit_and_test(run: Run) -> str:
    """Fit, then (rank 0) test the best checkpoint; the run's status."""
    try:
        fit(run)
    except Interrupted:
        run.callbacks.on_interrupt(run)
        run.writer.wait()
        raise
    status = run.stop_request.status if run.stop_request else Status.COMPLETED
    if run.ctx.main and status != Status.PRUNED:  # a pruned trial is not worth a test
        run.tested = run.test()
        run.callbacks.on_test_end(run, run.tested)
    run.writer.wait()  # a checkpoint that could not be written fails the run
    return status


#: how a run that raised ends; any other exception is ``failed``, its traceback in error.log
OUTCOMES: dict[type[BaseException], Status] = {
    Interrupted: Status.INTERRUPTED,  # Ctrl-C / SIGTERM: last.pt saved, ``dlx resume`` continues
    KeyboardInterrupt: Status.INTERRUPTED,  # a second Ctrl-C: leave at once (re-raised)
    Diverged: Status.DIVERGED,
    RunFailed: Status.FAILED,
    UsageError: Status.FAILED,  # re-raised: the CLI prints one line, exit 2
}
#: outcomes the caller must see as exceptions
RERAISE = (UsageError, KeyboardInterrupt)


def run(cfg: Any, run_dir: Path, *, resume: bool = False, quiet: bool = False) -> dict[str, Any]:
    """Train as ``cfg`` says, in ``run_dir``; return the summary (also in summary.json).

    ``quiet`` leaves out the end-of-run table (in-process callers such as benchmarks). With
    ``trainer.devices=N`` (or under torchrun) this process is one rank of N; rank 0 alone
    writes the run dir's files.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if os.environ.get("RANK", "0") != "0":  # a rank rank 0 started: rank 0 holds the lock
        return _run(cfg, run_dir, resume, quiet)
    with runlock.hold(run_dir):  # refused if another process trains this dir now
        return _run(cfg, run_dir, resume, quiet)


def _run(cfg: Any, run_dir: Path, resume: bool, quiet: bool) -> dict[str, Any]:
    started = time.time()
    ctx, device, r, signal = Dist(), None, None, None
    summary: dict[str, Any] = {}
    with ExitStack() as stack:  # closes, last opened first, whatever happens
        try:
            spec = parse(cfg)
            device = pick_device(spec.trainer.device)
            ctx, run_dir = distributed.start(
                spec.trainer.devices, device, spec.batch_size, spec.config, run_dir, resume
            )
            stack.callback(distributed.finish, ctx)
            if ctx.enabled and device.type == "cuda":
                device = torch.device("cuda", ctx.local_rank)
            r = build_run(spec, ctx, device, run_dir, resume=resume, quiet=quiet)
            stack.callback(_quietly, r.callbacks.close, r, summary)
            stack.callback(_quietly, r.writer.close)  # files on disk before anything closes
            stack.callback(gc.unfreeze)  # set-up's objects collectable again (in-process sweeps)
            stack.enter_context(r.signals)
            status, error, signal = fit_and_test(r), None, None
        except BaseException as e:
            status, error, signal = _outcome(e, ctx, run_dir)
            if isinstance(e, KeyboardInterrupt):
                distributed.kill_workers(ctx)
            if isinstance(e, RERAISE):
                raise
        finally:
            summary.update(_summary(r, status, error, started, device, ctx, run_dir))
            if signal is not None:
                summary["signal"] = signal
                summary["stopped_in"] = r.phase if r is not None else "setup"
            if summary["status"] in BROKEN or error is not None:
                distributed.kill_workers(ctx)  # a rank that failed alone would leave the rest
            if ctx.main:
                checkpoint.write_json(run_dir / "summary.json", summary)
    return summary


def _outcome(e: BaseException, ctx: Dist, run_dir: Path) -> tuple[str, str | None, str | None]:
    """The status for exception ``e``, the error line and the signal for the summary."""
    status = next((s for kind, s in OUTCOMES.items() if isinstance(e, kind)), None)
    if status == Status.INTERRUPTED:
        if isinstance(e, Interrupted):
            return status, None, str(e)
        return status, None, signal_module.Signals(getattr(e, "signum", 2)).name  # SIGINT
    if status is not None:
        return status, str(e), None
    if ctx.main:  # anything else: the traceback in the run dir, one line in the summary
        (run_dir / "error.log").write_text(traceback.format_exc())
    else:
        stderr_line(f"rank {ctx.rank}: {traceback.format_exc()}")
    return Status.FAILED, f"{type(e).__name__}: {e}".splitlines()[0], None


def _summary(
    r: Run | None,
    status: str,
    error: str | None,
    started: float,
    device: Any,
    ctx: Dist,
    run_dir: Path,
) -> dict[str, Any]:
    """summary.json: the status, the best epoch's figures beside the test figures measured
    with its checkpoint (``metrics``), the final epoch's (``last``), performance."""
    out: dict[str, Any] = {
        "status": str(status),  # plain text in summary.json
        "epochs": 0,
        "best_epoch": 0,
        "params": 0,
        "duration_s": round(time.time() - started, 3),
        "metrics": {},
    }
    if r is not None:
        s = r.state
        out.update(epochs=s.epoch, best_epoch=s.best_epoch, params=r.params)
        out["best_value"] = s.best  # the monitored metric at best_epoch: a sweep's objective
        out["monitor"], out["mode"] = r.trainer.monitor, r.trainer.mode
        out["metrics"] = {**s.best_metrics, **r.tested}
        out["last"] = dict(s.metrics)
        if r.stop_request is not None:
            out["stop_reason"] = r.stop_request.reason
        if r.trainer.on_nonfinite == "skip":
            out["skipped_steps"] = s.skipped
    if error is not None:
        out["error"] = error
    out.update(perf_summary(r.speed if r is not None else Throughput(), device))
    if ctx.enabled:
        out["devices"] = ctx.world
    out["run_dir"] = str(run_dir)
    return out


def _quietly(close: Any, *args: Any) -> None:
    """Run a closing step; a failure there is said on one line, never replacing the run's own
    outcome (summary.json is written by then)."""
    try:
        close(*args)
    except Exception as e:
        stderr_line(f"while closing the run: {type(e).__name__}: {str(e).splitlines()[0]}")
