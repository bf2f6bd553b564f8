"""The Hydra application behind ``dlx train``: one call of the task per run or sweep trial.

What happened is reported to the CLI through ``dlx.sweep.outcome`` (the summary, a usage error, the
signal that stopped a sweep); the return value is the objective a sweeper optimises.
"""

from __future__ import annotations

import copy
import os
import secrets
import sys
from pathlib import Path
from typing import Any

import hydra
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from dlx.errors import UsageError
from dlx.status import Status
from dlx.sweep import job, outcome, trials
from dlx.sweep.guard import CHECK_ONLY_ENV, Checked, Refused, check_run_dir

# A short random tag in run dir names, so two runs started in the same second never collide.
if not OmegaConf.has_resolver("dlx_uid"):
    OmegaConf.register_new_resolver("dlx_uid", lambda: secrets.token_hex(2), use_cache=True)


@hydra.main(config_path="pkg://dlx.conf", config_name="config", version_base="1.3")
def train(cfg: DictConfig) -> float | list[float] | None:
    """Hydra task: train once in Hydra's output dir; return the objective for sweepers."""
    from hydra.core.hydra_config import HydraConfig

    from dlx.engine.loop import run
    from dlx.sweep.guard import drop_unstarted

    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    trial = hc.mode == RunMode.MULTIRUN
    try:
        summary = sweep_trial(cfg, run_dir, hc) if trial else run(cfg, run_dir)
    except UsageError as e:  # reported by the CLI as one line, exit 2
        if not trial:
            drop_unstarted(run_dir)  # refused before training: no run dir left behind
        outcome.report(f"usage-{hc.job.num if trial else 0}.json", {"error": str(e)})
        return None
    if not trial:
        outcome.report("run.json", {**summary, "run_dir": str(run_dir)})
    elif summary.get("status") == Status.INTERRUPTED:
        # Ctrl-C / SIGTERM ends the whole sweep (exit 130/143), not just this trial
        outcome.report("interrupted.json", {"signal": summary.get("signal", "SIGINT")})
        print(
            f"sweep interrupted: run the same command with hydra.sweep.dir={run_dir.parent} "
            "to continue it",
            file=sys.stderr,
            flush=True,
        )
        raise KeyboardInterrupt
    names = list(cfg.trainer.get("objectives") or [])
    if names:  # a multi-objective sweep: one value per objective
        from dlx.sweep.objectives import values

        return values(summary, names, OmegaConf.to_container(cfg, resolve=True))
    return trials.objective(summary, cfg.trainer.get("monitor", "val/acc"))


def sweep_trial(cfg: DictConfig, run_dir: Path, hc: Any) -> dict[str, Any]:
    """One trial of a sweep: the recorded summary of a finished earlier run, else a run.

    The trial's lock is taken first: a restarted sweep waits for a trial that an orphaned
    worker of the dead one still trains (its watchdog stops it within seconds), then finds
    it recorded or resumes it, never trains it twice at once."""
    from dlx.engine import provenance, runlock
    from dlx.engine.loop import run
    from dlx.sweep import ctrl_c
    from dlx.sweep.guard import drop_unstarted
    from dlx.sweep.watchdog import GRACE_S, POLL_S, watch_main

    watch_main()
    overrides = list(hc.overrides.task)
    if outcome.stop_requested():  # Ctrl-C came before this trial started: no trace of it
        drop_unstarted(run_dir)
        raise KeyboardInterrupt
    with ctrl_c.in_trial(), runlock.hold(run_dir, wait_s=4 * (GRACE_S + POLL_S)):
        summary = job.recorded(run_dir, overrides)
        if summary is not None:
            return summary
        job.configure_job(hc.job.num, hc.launcher.get("n_jobs"))
        scope = provenance.SWEEP.set(str(Path(hc.sweep.dir).resolve()))  # one snapshot a sweep
        try:
            with outcome.training(hc.job.num):
                return run(cfg, run_dir, resume=job.start_trial(run_dir, overrides))
        finally:
            provenance.SWEEP.reset(scope)


def task_config(config: DictConfig) -> DictConfig:
    """``config`` without its ``hydra`` node: what the task function receives."""
    task = copy.deepcopy(config)
    with read_write(task), open_dict(task):
        del task["hydra"]
    return task


class RunGuard(Callback):
    """Hydra callback (``hydra.callbacks.dlx_guard``): check a single run before its dir."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        from dlx.engine.spec import check_overrides, parse

        try:
            task_overrides = OmegaConf.to_container(config.hydra.overrides.task, resolve=False)
            check_overrides([str(o) for o in task_overrides or []])
            task = task_config(config)
            parse(task)
            if os.environ.get(CHECK_ONLY_ENV) == "1":
                raise Checked
            if os.environ.get("RANK", "0") != "0":  # torchrun: rank 0's dir is the run's
                return
            overwrite = bool(OmegaConf.select(task, "trainer.overwrite", default=False))
            check_run_dir(Path(str(OmegaConf.select(config, "hydra.run.dir"))), overwrite)
        except UsageError as e:
            raise Refused(str(e)) from None
