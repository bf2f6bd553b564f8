"""Overhead as a user pays it: whole ``dlx train`` processes against ``handwritten.py``.

Each side runs as its own process, timed from outside, at a small and a large epoch count; the
difference over the extra epochs is the marginal epoch (start-up, the test pass and the
end-of-run work cancel out). Runs alternate (dlx first, then the script first) and medians are
taken, since this VM's speed drifts from minute to minute. What each side includes:

- dlx: ``dlx train trainer.progress=false`` at the defaults (LeNet-5, digits, Adam, batch 32):
  the loop, the meter, TensorBoard events, ``last.pt``/``best.pt`` every epoch, validation;
- the script: forward, backward, step and a validation pass, nothing else.

Start-up is the time from the process's launch to its first training step: the wall time of
the first ``train/loss`` event (``trainer.log_every_n_steps=1``) for dlx, the time the script
prints after its first step.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: case -> (dlx overrides, script arguments, small and large epoch counts, repeats)
CASES: dict[str, tuple[list[str], list[str], int, int, int]] = {
    "default": ([], [], 2, 22, 6),
    "batch256": (["data.batch_size=256"], ["--batch-size", "256"], 2, 32, 6),
    "resnet": (["model=resnet"], ["--model", "resnet"], 1, 4, 3),
}


def _dlx(overrides: list[str], epochs: int, cwd: str) -> list[str]:
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


def wall(cmd: list[str], cwd: str) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, capture_output=True, check=True)
    return time.perf_counter() - t


def marginal(case: str) -> dict[str, float]:
    """Marginal seconds per epoch of both sides, and their ratio."""
    overrides, args, small, large, repeats = CASES[case]
    times: dict[tuple[str, int], list[float]] = {}
    with tempfile.TemporaryDirectory() as cwd:
        for r in range(repeats):
            sides = [
                ("dlx", lambda e: _dlx(overrides, e, cwd)),
                ("script", lambda e: _script(args, e)),
            ]
            for name, make in sides if r % 2 == 0 else sides[::-1]:
                for e in (small, large):
                    times.setdefault((name, e), []).append(wall(make(e), cwd))
    med = {k: statistics.median(v) for k, v in times.items()}
    per = {n: (med[(n, large)] - med[(n, small)]) / (large - small) for n in ("dlx", "script")}
    return {
        "dlx_epoch_s": per["dlx"],
        "script_epoch_s": per["script"],
        "ratio": per["dlx"] / per["script"],
        "epochs": f"{small} vs {large}, {repeats} alternating repeats",
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
            subprocess.run(
                [
                    *_dlx(
                        [
                            "trainer.log_every_n_steps=1",
                            "trainer.limit_train_batches=2",
                            f"hydra.run.dir={run_dir}",
                        ],
                        1,
                        cwd,
                    )
                ],
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
    out: dict[str, object] = {c: marginal(c) for c in cases}
    out["startup"] = startup()
    return out


if __name__ == "__main__":
    import json

    print(json.dumps(measure(tuple(sys.argv[1:]) or tuple(CASES)), indent=2))
