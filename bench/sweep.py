"""Sweep scaling: the same 4-trial grid with one joblib worker and with two, on this machine's
cores (trials divide the torch threads between them)."""

from __future__ import annotations

import tempfile

from cli import timed_dlx

GRID = ["optim.lr=0.003,0.001,0.0003,0.0001", "trainer.max_epochs=10", "trainer.progress=false"]


def wall(n_jobs: int) -> float:
    with tempfile.TemporaryDirectory() as d:
        return timed_dlx(
            "train",
            "-m",
            "hydra/launcher=joblib",
            f"hydra.launcher.n_jobs={n_jobs}",
            f"hydra.sweep.dir={d}/sweep",
            *GRID,
            cwd=d,
        )


def measure() -> dict[str, float]:
    one, two = wall(1), wall(2)
    return {"sweep_4_trials_1_job_s": one, "sweep_4_trials_2_jobs_s": two, "speedup": one / two}


if __name__ == "__main__":
    print(measure())
