"""The real ``dlx`` command, timed: what the sweep and target benchmarks run."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path


def timed_dlx(*args: str, cwd: str | Path) -> float:
    """Run ``python -m dlx ARGS`` in ``cwd`` (it must succeed); its wall time in seconds."""
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "dlx", *args], cwd=cwd, capture_output=True, check=True)
    return time.perf_counter() - t
