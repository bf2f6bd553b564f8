"""CLI start-up: ``dlx --help`` must answer at once (torch and tensorboard are imported only
where a command needs them)."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time


def timed(args: list[str], repeats: int) -> float:
    """Median wall seconds of ``python -m dlx ARGS``."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "dlx", *args], capture_output=True, check=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def measure(repeats: int = 7) -> dict[str, float]:
    return {
        "dlx_help_s": timed(["--help"], repeats),
        "dlx_train_help_s": timed(["train", "--help"], max(3, repeats // 2)),
    }


if __name__ == "__main__":
    print(measure())
