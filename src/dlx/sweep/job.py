"""A sweep's trial, inside the Hydra task, before it trains: skip it when an earlier run of
the sweep finished it, resume it from its ``last.pt``, divide the cores and GPUs among
parallel jobs."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from dlx.engine import checkpoint
from dlx.errors import UsageError
from dlx.sweep.trials import FINAL
from dlx.sweep.warm import workers_of

#: the record of which overrides ran in a trial dir (guards a re-used sweep dir)
TRIAL_FILE = "trial.json"


def recorded(run_dir: Path, overrides: list[str]) -> dict[str, Any] | None:
    """The summary of a finished earlier run of this trial, or None: run it (again).

    A dir that holds a different trial (the sweep dir re-used for another sweep) is refused.
    """
    record = run_dir / TRIAL_FILE
    if record.is_file():
        before = json.loads(record.read_text()).get("overrides")
        if sorted(before or []) != sorted(overrides):
            raise UsageError(
                f"hydra.sweep.dir: {run_dir} holds a trial of another sweep ({' '.join(before)}); "
                "re-run a sweep with its own command, or pick a new hydra.sweep.dir"
            )
    summary_file = run_dir / "summary.json"
    if not summary_file.is_file():
        return None
    try:
        summary = json.loads(summary_file.read_text())
    except json.JSONDecodeError:
        return None
    return summary if summary.get("status") in FINAL else None


def start_trial(run_dir: Path, overrides: list[str]) -> bool:
    """Prepare ``run_dir`` for a (re-)run; True to resume from its ``last.pt``.

    A trial killed before its first checkpoint restarts from scratch: its event files go,
    so TensorBoard does not see two sessions in one trial.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    checkpoint.write_json(run_dir / TRIAL_FILE, {"overrides": list(overrides)})
    if (run_dir / "checkpoints" / "last.pt").is_file():
        return True
    for events in run_dir.glob("events.out.tfevents.*"):
        events.unlink()
    return False


def threads_per_job(n_jobs: int | None, cpus: int) -> int | None:
    """Torch threads for one of ``n_jobs`` parallel jobs on ``cpus`` cores (joblib's
    ``n_jobs``: -1 all cores, -2 all but one …); None: one job at a time, leave torch be."""
    if n_jobs is None:
        return None
    workers = workers_of(n_jobs, cpus)
    if workers <= 1:
        return None
    return max(1, cpus // workers)


def gpu_for_job(job_num: int, n_gpus: int, n_jobs: int | None) -> int | None:
    """The GPU index for job ``job_num`` when parallel jobs share several GPUs: round-robin."""
    if n_gpus <= 1 or n_jobs is None or n_jobs == 1:
        return None
    return job_num % n_gpus


def configure_job(job_num: int, n_jobs: int | None) -> None:
    """Divide the cores among parallel jobs (unless ``OMP_NUM_THREADS`` sets the threads: joblib's
    worker processes get ``cores // n_jobs`` there) and give each job its own GPU when several
    are visible (``torch.cuda.set_device``: a launcher's worker process runs several jobs,
    so ``CUDA_VISIBLE_DEVICES`` could not be changed once CUDA is initialised)."""
    import torch

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads = threads_per_job(n_jobs, cpus or 1)
    if threads is not None and "OMP_NUM_THREADS" not in os.environ:  # set: torch read it
        torch.set_num_threads(threads)
    gpu = gpu_for_job(job_num, torch.cuda.device_count(), n_jobs)
    if gpu is not None:
        torch.cuda.set_device(gpu)
