"""A sweep trial's cost as a user pays it: whole ``dlx train -m`` processes against
``handwritten_sweep.py`` (the same trials in one process, plain PyTorch and plain Optuna).

- ``grid``: ``dlx train -m optim.lr=a,b,…`` of 1-epoch LeNet trials on the digits against the
  script's ``grid`` over the same lrs;
- ``tpe``: ``dlx train -m sweep=tpe hydra.sweeper.n_trials=N`` against the script's plain
  ``optuna.create_study(...).optimize`` with the same TPE sampler and search space.

Each side runs at a small and a large trial count; the difference over the extra trials is the
marginal trial (start-up and the end of the sweep cancel out). Both sides get one intra-op
thread (``OMP_NUM_THREADS=1``); CPU time is user + system of the whole process, the main
figure on a shared machine; wall time beside it. Each repeat runs the four processes back to
back, alternating which side goes first; the figures are medians over the repeats.

- ``joblib``: the wall time of a 16-trial grid on two joblib workers over one worker (each
  worker's torch threads divided from the cores: nothing set by hand).
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "handwritten_sweep.py"
ONE_EPOCH = ["trainer.max_epochs=1", "trainer.progress=false"]
TRAIN_M = ["-m", "dlx", "train", "-m"]


def lrs(n: int) -> list[str]:
    """``n`` learning rates spread log-evenly over 3e-4 .. 3e-3."""
    return [f"{3e-4 * 10 ** (i / max(1, n - 1)):.6g}" for i in range(n)]


def dlx_grid(n: int, sweep_dir: str) -> list[str]:
    lr = ",".join(lrs(n))
    return [*TRAIN_M, f"optim.lr={lr}", *ONE_EPOCH, f"hydra.sweep.dir={sweep_dir}"]


def script_grid(n: int, sweep_dir: str) -> list[str]:
    return [str(SCRIPT), "grid", "--lr", *lrs(n)]


def dlx_tpe(n: int, sweep_dir: str) -> list[str]:
    return [
        *TRAIN_M,
        "sweep=tpe",
        f"hydra.sweeper.n_trials={n}",
        "hydra.sweeper.sampler.seed=0",
        *ONE_EPOCH,
        f"hydra.sweep.dir={sweep_dir}",
    ]


def script_tpe(n: int, sweep_dir: str) -> list[str]:
    return [str(SCRIPT), "tpe", "--trials", str(n), "--seed", "0"]


#: case -> (dlx command, script command, small and large trial counts, repeats)
CASES = {
    "grid": (dlx_grid, script_grid, 2, 10, 5),
    "tpe": (dlx_tpe, script_tpe, 2, 10, 5),
}


def timed(args: list[str], cwd: str, env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds (user + system, all threads) of one whole Python process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, check=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def marginal(case: str, repeats: int | None = None) -> dict[str, object]:
    """Marginal wall and CPU seconds per trial of both sides, and their ratios (medians)."""
    make_dlx, make_script, small, large, default_repeats = CASES[case]
    repeats = repeats or default_repeats
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    per = {k: {"dlx": [], "script": []} for k in ("wall", "cpu")}
    with tempfile.TemporaryDirectory() as cwd:
        for r in range(repeats):
            sides = [("dlx", make_dlx), ("script", make_script)]
            runs = {}
            for n in (small, large):
                for name, make in sides if r % 2 == 0 else sides[::-1]:
                    runs[(name, n)] = timed(make(n, f"{cwd}/{name}-{r}-{n}"), cwd, env)
            for j, kind in enumerate(("wall", "cpu")):
                for name in ("dlx", "script"):
                    extra = runs[(name, large)][j] - runs[(name, small)][j]
                    per[kind][name].append(extra / (large - small))
    out: dict[str, object] = {"trials": f"{small} vs {large}, {repeats} alternating repeats"}
    for kind, sides_ in per.items():
        ratios = [d / s for d, s in zip(sides_["dlx"], sides_["script"])]
        out[f"dlx_trial_{kind}_s"] = statistics.median(sides_["dlx"])
        out[f"script_trial_{kind}_s"] = statistics.median(sides_["script"])
        out[f"ratio_{kind}"] = statistics.median(ratios)
        out[f"ratios_{kind}"] = [round(x, 3) for x in ratios]
    return out


def joblib_wall(n_jobs: int, trials: int = 16) -> float:
    """Wall seconds of a ``trials``-trial 1-epoch grid on ``n_jobs`` joblib workers."""
    with tempfile.TemporaryDirectory() as cwd:
        args = dlx_grid(trials, f"{cwd}/sweep")
        args[4:4] = ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={n_jobs}"]
        return timed(args, cwd, dict(os.environ))[0]


def parallel(repeats: int = 3) -> dict[str, object]:
    """Two joblib workers against one on the same 16 trials: the median of paired ratios."""
    ones, twos = [], []
    for r in range(repeats):
        for n_jobs in (1, 2) if r % 2 == 0 else (2, 1):
            (ones if n_jobs == 1 else twos).append(joblib_wall(n_jobs))
    ratios = [t / o for o, t in zip(ones, twos)]
    return {
        "one_worker_s": statistics.median(ones),
        "two_workers_s": statistics.median(twos),
        "ratio": statistics.median(ratios),
        "ratios": [round(x, 3) for x in ratios],
    }


def rows(r: dict) -> list[tuple[str, str, str]]:
    """``bench/run.py``'s table rows of ``measure()``'s result."""
    out = []
    for case, what in (("grid", "grid"), ("tpe", "Optuna TPE")):
        c = r[case]
        out += [
            (
                f"{what} sweep trial, dlx / script CPU ({c['dlx_trial_cpu_s'] * 1e3:.0f} vs "
                f"{c['script_trial_cpu_s'] * 1e3:.0f} ms a 1-epoch trial; marginal, median)",
                f"{c['ratio_cpu']:.2f}",
                "<= 1.5",
            ),
            (
                f"  wall ({c['dlx_trial_wall_s'] * 1e3:.0f} vs "
                f"{c['script_trial_wall_s'] * 1e3:.0f} ms)",
                f"{c['ratio_wall']:.2f}",
                "",
            ),
        ]
    j = r["joblib"]
    out.append(
        (
            f"16-trial grid, 2 joblib workers / 1 (wall {j['two_workers_s']:.1f} vs "
            f"{j['one_worker_s']:.1f} s)",
            f"{j['ratio']:.2f}",
            "<= 0.6",
        )
    )
    return out


def measure(repeats: int | None = None) -> dict[str, object]:
    out: dict[str, object] = {case: marginal(case, repeats) for case in CASES}
    out["joblib"] = parallel(repeats or 3)
    return out


if __name__ == "__main__":
    import json

    reps = int(sys.argv[1]) if len(sys.argv) > 1 else None
    print(json.dumps(measure(reps), indent=2))
