"""The Hydra application behind ``dlx train``: one call of the task per run or sweep trial.

What happened is reported to the CLI through ``dlx.sweep.outcome`` (the summary, a usage error, the
signal that stopped a sweep); the return value is the objective a sweeper optimises.
"""

from __future__ import annotations

import secrets
import sys
from pathlib import Path
from typing import Any

import hydra
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from dlx.sweep import outcome
from dlx.sweep import trials as sweep

# A short random tag in run dir names, so two runs started in the same second never collide.
if not OmegaConf.has_resolver("dlx_uid"):
    OmegaConf.register_new_resolver("dlx_uid", lambda: secrets.token_hex(2), use_cache=True)


@hydra.main(config_path="pkg://dlx.conf", config_name="config", version_base="1.3")
def train(cfg: DictConfig) -> float | list[float] | None:
    """Hydra task: train once in Hydra's output dir; return the objective for sweepers."""
    from hydra.core.hydra_config import HydraConfig

    from dlx.engine.loop import run
    from dlx.errors import UsageError

    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    trial = hc.mode == RunMode.MULTIRUN
    try:
        summary = sweep_trial(cfg, run_dir, hc) if trial else run(cfg, run_dir)
    except UsageError as e:  # reported by the CLI as one line, exit 2
        outcome.report(f"usage-{hc.job.num if trial else 0}.json", {"error": str(e)})
        return None
    if not trial:
        outcome.report("run.json", {**summary, "run_dir": str(run_dir)})
    elif summary.get("status") == "interrupted":
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
    return sweep.objective(summary, cfg.trainer.get("monitor", "val/acc"))


def sweep_trial(cfg: DictConfig, run_dir: Path, hc: Any) -> dict[str, Any]:
    """One trial of a sweep: the recorded summary of a finished earlier run, else a run."""
    from dlx.engine.loop import run

    overrides = list(hc.overrides.task)
    summary = sweep.recorded(run_dir, overrides)
    if summary is not None:
        return summary
    sweep.configure_job(hc.job.num, hc.launcher.get("n_jobs"))
    return run(cfg, run_dir, resume=sweep.start_trial(run_dir, overrides))
