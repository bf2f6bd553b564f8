"""Throughput and peak memory, for ``summary.json`` (``samples_per_s``, ``peak_mem_mb``).

``samples_per_s`` counts the training samples (all ranks together) over the seconds spent in
training steps; validation, testing and set-up are left out. The clock is read at the start of
an epoch and after the epoch's closing host sync, so it adds no sync of its own.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import torch


class Throughput:
    """Training samples and the seconds they took, summed over epoch segments."""

    def __init__(self) -> None:
        self.samples = 0
        self.seconds = 0.0
        self._t0: float | None = None

    def start(self) -> None:
        self._t0 = time.perf_counter()

    def stop(self, samples: int) -> None:
        """Close the segment opened by ``start``; call it right after a host sync."""
        if self._t0 is not None:
            self.seconds += time.perf_counter() - self._t0
            self.samples += samples
            self._t0 = None

    def per_second(self) -> float | None:
        return round(self.samples / self.seconds, 3) if self.seconds > 0 else None


def peak_memory(device: torch.device) -> tuple[float | None, str]:
    """The run's peak memory in MiB and what it measures: ``cuda_max_allocated`` (tensors on
    the GPU, ``torch.cuda.max_memory_allocated``) or ``cpu_max_rss`` (the process's peak
    resident set size, which includes Python, libraries and the data)."""
    if device.type == "cuda" and torch.cuda.is_initialized():
        return round(torch.cuda.max_memory_allocated(device) / 2**20, 1), "cuda_max_allocated"
    try:
        import resource
    except ImportError:  # Windows
        return None, "unavailable"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    scale = 2**20 if sys.platform == "darwin" else 2**10
    return round(rss / scale, 1), "cpu_max_rss"


def perf_summary(speed: Throughput, device: torch.device | None) -> dict[str, Any]:
    """The summary keys: ``samples_per_s``, ``train_time_s``, ``peak_mem_mb``,
    ``peak_mem_kind``."""
    mb, kind = peak_memory(device or torch.device("cpu"))
    return {
        "samples_per_s": speed.per_second(),
        "train_time_s": round(speed.seconds, 6),
        "peak_mem_mb": mb,
        "peak_mem_kind": kind,
    }
