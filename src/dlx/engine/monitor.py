"""Which way a monitored metric improves: ``trainer.mode``, early stopping's ``mode`` and
the sweeper's ``direction`` follow the metric unless set."""

from __future__ import annotations

#: ``trainer.monitor``'s default: a run left there follows its task's own (``Objective.monitor``:
#: ``val/mse`` for an autoencoder, ``val/ppl`` for a language model)
DEFAULT_MONITOR = "val/acc"
#: metric names (the part after ``split/``) that are better when smaller
SMALLER_IS_BETTER = ("loss", "mse", "ppl", "error", "err")


def resolve_mode(monitor: str, mode: str) -> str:
    """``min`` or ``max`` for ``monitor``: ``mode`` itself unless it is ``auto``, then ``min``
    for losses and errors (``val/loss``, ``val/mse``, ``val/ppl``) and ``max`` otherwise."""
    if mode != "auto":
        return mode
    name = monitor.rsplit("/", 1)[-1]
    return "min" if name in SMALLER_IS_BETTER or name.endswith("loss") else "max"


def metric(metrics: dict[str, float], name: str, key: str) -> float:
    """``metrics[name]``, or a usage error naming ``key`` and what it may watch."""
    from dlx.errors import UsageError
    from dlx.suggest import allowed

    if name not in metrics:
        raise UsageError(f"{key}={name}: unknown metric; {allowed(name, metrics)}")
    return metrics[name]
