"""Overhead as a user pays it: whole ``dlx train`` processes against ``handwritten.py``.

Two figures per case, both from whole processes:

- ``marginal``: each side timed from outside (wall and CPU seconds) at a small and a large
  epoch count; the difference over the extra epochs is the marginal epoch (start-up, the test
  pass and the end-of-run work cancel out). Each repeat runs the four processes back to back,
  alternating which side goes first; the figure is the median of the repeats' ratios;
- ``pace``: seconds per epoch in steady state from each process's own epoch-end clock (see
  ``pace``): a process's slow start does not enter it.

What each side includes:

- dlx: ``dlx train trainer.progress=false`` at the defaults (LeNet-5, digits, Adam, batch 32):
  the loop, the meter, TensorBoard events, ``metrics.csv``, ``last.pt``/``best.pt`` (at most
  every ``trainer.checkpoint_interval_s``; the ``*_every_epoch`` case writes every epoch),
  validation, provenance;
- the script: forward, backward, step and a validation pass, nothing else.

Start-up is the time from the process's launch to its first training step: the wall time of
the first ``train/loss`` event (``trainer.log_every_n_steps=1``) for dlx, the time the script
prints after its first step.
"""

from __future__ import annotations

import csv
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: case -> (dlx overrides, script arguments, small and large epoch counts, repeats)
CASES: dict[str, tuple[list[str], list[str], int, int, int]] = {
    "default": ([], [], 2, 22, 10),
    "batch256": (["data.batch_size=256"], ["--batch-size", "256"], 2, 32, 12),
    "resnet": (["model=resnet"], ["--model", "resnet"], 1, 4, 6),
    # checkpoints at every epoch end, as before trainer.checkpoint_interval_s
    "default_every_epoch": (["trainer.checkpoint_interval_s=0"], [], 2, 22, 10),
}


def dlx_cmd(overrides: list[str], epochs: int) -> list[str]:
    """``dlx train`` of ``epochs`` epochs with ``overrides``, the progress bar off."""
    return [
        sys.executable,
        "-m",
        "dlx",
        "train",
        "trainer.progress=false",
        f"trainer.max_epochs={epochs}",
        *overrides,
    ]


def _script(args: list[str], epochs: int) -> list[str]:
    return [sys.executable, str(HERE / "handwritten.py"), "--epochs", str(epochs), *args]


def timed(cmd: list[str], cwd: str) -> tuple[float, float]:
    """Wall and CPU seconds (user + system, all threads) of one whole process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, capture_output=True, check=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def _quartiles(values: list[float]) -> tuple[float, float, float]:
    q1, q2, q3 = statistics.quantiles(values, n=4) if len(values) > 1 else values * 3
    return q1, q2, q3


def marginal(case: str, repeats: int | None = None) -> dict[str, object]:
    """Marginal seconds per epoch of both sides and their ratio, wall and CPU time.

    Each repeat runs the four processes back to back (dlx and the script at the small epoch
    count, then both at the large one; which side goes first alternates), so one repeat's
    ratio compares processes seconds apart: the VM's drift, which moves both alike, mostly
    cancels in it. The figure is the median of the repeats' ratios, with its quartiles."""
    overrides, args, small, large, default_repeats = CASES[case]
    repeats = repeats or default_repeats
    per: dict[str, dict[str, list[float]]] = {k: {"dlx": [], "script": []} for k in ("wall", "cpu")}
    with tempfile.TemporaryDirectory() as cwd:
        for r in range(repeats):
            sides = [
                ("dlx", lambda e: dlx_cmd(overrides, e)),
                ("script", lambda e: _script(args, e)),
            ]
            order = sides if r % 2 == 0 else sides[::-1]
            runs: dict[tuple[str, int], tuple[float, float]] = {}
            for e in (small, large):
                for name, make in order:
                    runs[(name, e)] = timed(make(e), cwd)
            for j, kind in enumerate(("wall", "cpu")):
                for name in ("dlx", "script"):
                    extra = runs[(name, large)][j] - runs[(name, small)][j]
                    per[kind][name].append(extra / (large - small))
    out: dict[str, object] = {"epochs": f"{small} vs {large}, {repeats} paired repeats"}
    for kind, sides_ in per.items():
        ratios = [d / s for d, s in zip(sides_["dlx"], sides_["script"])]
        q1, q2, q3 = _quartiles(ratios)
        suffix = "" if kind == "wall" else "_cpu"
        out[f"dlx_epoch_s{suffix}"] = statistics.median(sides_["dlx"])
        out[f"script_epoch_s{suffix}"] = statistics.median(sides_["script"])
        out[f"ratio{suffix}"] = q2
        out[f"ratio{suffix}_q1"], out[f"ratio{suffix}_q3"] = q1, q3
        out[f"ratios{suffix}"] = [round(x, 4) for x in ratios]
    return out


def _per_epoch(stamps: list[float], skip: int) -> float:
    """Mean seconds per epoch from the end of epoch ``skip`` to the last: every epoch's work
    counts, the ones that write a checkpoint too."""
    return (stamps[-1] - stamps[skip - 1]) / (len(stamps) - skip)


def epoch_ends(run_dir: Path) -> list[float]:
    """A finished dlx run's epoch-end clock: ``metrics.csv``'s ``time_s``, one per epoch."""
    with open(run_dir / "metrics.csv", newline="") as f:
        return [float(row["time_s"]) for row in csv.DictReader(f)]


def _dlx_pace(overrides: list[str], epochs: int, run_dir: Path, skip: int) -> float:
    cmd = dlx_cmd([*overrides, f"hydra.run.dir={run_dir}"], epochs)
    subprocess.run(cmd, cwd=run_dir.parent, capture_output=True, check=True)
    return _per_epoch(epoch_ends(run_dir), skip)


def _script_pace(args: list[str], epochs: int, skip: int) -> float:
    out = subprocess.run(_script(args, epochs), capture_output=True, text=True, check=True)
    stamps = [float(x.split(" at ")[1]) for x in out.stdout.splitlines() if " at " in x]
    return _per_epoch(stamps, skip)


def pace(case: str, pairs: int | None = None, skip: int = 2) -> dict[str, object]:
    """Epoch pace: seconds per epoch in steady state (from the end of epoch ``skip`` to the
    end of the last), from the clock each whole process stamps at its epoch ends: dlx's
    ``metrics.csv`` ``time_s``, the script's printed stamp. It holds all of every epoch's work
    (steps, validation, checkpoints, logging, what other threads take from it) and none of
    start-up and teardown, so a process's slow start, which a difference of two whole
    processes takes in full, does not enter it. Pairs alternate their order, and the figure
    is the median of the pairs' ratios."""
    overrides, args, _, epochs, repeats = CASES[case]
    pairs = pairs or repeats
    dlx_s, script_s = [], []
    with tempfile.TemporaryDirectory() as cwd:
        for r in range(pairs):
            run_dir = Path(cwd) / f"r{r}"
            for side in ("dlx", "script") if r % 2 == 0 else ("script", "dlx"):
                if side == "dlx":
                    dlx_s.append(_dlx_pace(overrides, epochs, run_dir, skip))
                else:
                    script_s.append(_script_pace(args, epochs, skip))
    ratios = [d / s for d, s in zip(dlx_s, script_s)]
    q1, q2, q3 = _quartiles(ratios)
    return {
        "dlx_epoch_s": statistics.median(dlx_s),
        "script_epoch_s": statistics.median(script_s),
        "ratio": q2,
        "ratio_q1": q1,
        "ratio_q3": q3,
        "ratios": [round(x, 4) for x in ratios],
        "epochs": f"{epochs} epochs, {pairs} alternating pairs, first {skip} dropped",
    }


def _first_event_wall(run_dir: Path) -> float:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return acc.Scalars("train/loss")[0].wall_time


def startup(repeats: int = 5) -> dict[str, float]:
    """Median seconds from launch to the first training step, dlx and the script."""
    dlx, script = [], []
    with tempfile.TemporaryDirectory() as cwd:
        for r in range(repeats):
            t = time.time()
            run_dir = Path(cwd) / f"r{r}"
            first_step = [
                "trainer.log_every_n_steps=1",
                "trainer.limit_train_batches=2",
                f"hydra.run.dir={run_dir}",
            ]
            subprocess.run(
                dlx_cmd(first_step, 1),
                cwd=cwd,
                capture_output=True,
                check=True,
            )
            dlx.append(_first_event_wall(run_dir) - t)
            t = time.time()
            out = subprocess.run(_script([], 1), capture_output=True, text=True, check=True)
            script.append(float(out.stdout.split("first_step_at")[1]) - t)
    d, s = statistics.median(dlx), statistics.median(script)
    return {"dlx_first_step_s": d, "script_first_step_s": s, "extra_s": d - s}


def measure(cases: tuple[str, ...] = tuple(CASES)) -> dict[str, object]:
    out: dict[str, object] = {c: {**marginal(c), "pace": pace(c)} for c in cases}
    out["startup"] = startup()
    return out


if __name__ == "__main__":
    import json

    print(json.dumps(measure(tuple(sys.argv[1:]) or tuple(CASES)), indent=2))
