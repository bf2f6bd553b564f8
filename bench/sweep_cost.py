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

- ``joblib``: a 16-trial grid on two joblib workers over the same grid on one (each worker's
  torch threads divided from the cores, nothing set by hand: one worker trains on all cores,
  two on one core each), wall and CPU, for 1-epoch trials and for 6-epoch ones. Beside it, the
  floor no launcher can beat: a trial's throughput on one worker (all cores) over the two
  workers' summed throughput, from the trials' own ``samples_per_s``.
"""

from __future__ import annotations

import json
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


def joblib_sweep(n_jobs: int, epochs: int, trials: int = 16) -> tuple[float, float, float]:
    """Wall and CPU seconds of a ``trials``-trial grid of ``epochs``-epoch trials on ``n_jobs``
    joblib workers, and its trials' median training throughput (samples/s)."""
    with tempfile.TemporaryDirectory() as cwd:
        args = dlx_grid(trials, f"{cwd}/sweep")
        args[4:4] = ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={n_jobs}"]
        args = [a if a != "trainer.max_epochs=1" else f"trainer.max_epochs={epochs}" for a in args]
        wall, cpu = timed(args, cwd, dict(os.environ))
        summaries = Path(cwd, "sweep").glob("*/summary.json")
        speed = statistics.median(json.loads(p.read_text())["samples_per_s"] for p in summaries)
        return wall, cpu, speed


def parallel(epochs: int, repeats: int = 3) -> dict[str, object]:
    """Two joblib workers against one on the same 16 trials: medians of paired ratios."""
    runs: dict[int, list[tuple[float, float, float]]] = {1: [], 2: []}
    for r in range(repeats):
        for n_jobs in (1, 2) if r % 2 == 0 else (2, 1):
            runs[n_jobs].append(joblib_sweep(n_jobs, epochs))
    ones, twos = runs[1], runs[2]
    return {
        "epochs": epochs,
        "one_worker_s": statistics.median(o[0] for o in ones),
        "two_workers_s": statistics.median(t[0] for t in twos),
        "ratio": statistics.median(t[0] / o[0] for o, t in zip(ones, twos)),
        "ratios": [round(t[0] / o[0], 3) for o, t in zip(ones, twos)],
        "one_worker_cpu_s": statistics.median(o[1] for o in ones),
        "two_workers_cpu_s": statistics.median(t[1] for t in twos),
        "cpu_ratio": statistics.median(t[1] / o[1] for o, t in zip(ones, twos)),
        # the ratio long trials tend to: one worker's speed over two workers' summed speed
        "throughput_floor": statistics.median(o[2] / (2 * t[2]) for o, t in zip(ones, twos)),
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
    for j in (r["joblib"], r["joblib_long"]):
        out += [
            (
                f"16-trial grid of {j['epochs']}-epoch trials, 2 joblib workers / 1 (wall "
                f"{j['two_workers_s']:.1f} vs {j['one_worker_s']:.1f} s)",
                f"{j['ratio']:.2f}",
                "<= 0.6" if j["epochs"] == 1 else "",
            ),
            (
                f"  CPU ({j['two_workers_cpu_s']:.1f} vs {j['one_worker_cpu_s']:.1f} s); "
                "the floor for long trials (1 worker's samples/s over 2 workers')",
                f"{j['cpu_ratio']:.2f}; {j['throughput_floor']:.2f}",
                "",
            ),
        ]
    return out


def measure(repeats: int | None = None) -> dict[str, object]:
    out: dict[str, object] = {case: marginal(case, repeats) for case in CASES}
    out["joblib"] = parallel(1, repeats or 3)
    out["joblib_long"] = parallel(6, repeats or 3)
    return out


if __name__ == "__main__":
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else None
    print(json.dumps(measure(reps), indent=2))
