"""What a checkpoint carries besides the model: counters, in-epoch accumulators, random streams.

Everything here becomes tensors and plain data, because checkpoints are loaded with
``torch.load(weights_only=True)``: NumPy's generator state, for one, is stored as a tensor and
a few numbers rather than as a pickled array.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

if TYPE_CHECKING:
    from dlx.engine.meter import TrainMeter


@dataclass(slots=True)
class StepResult:
    """What one step leaves, all on the device: nothing here has been read to the host."""

    loss: Tensor  # the objective alone, this rank's
    total: Tensor  # what the divergence watch sees: loss + penalties, the mean over ranks
    out: Tensor  # the model's outputs
    y: Tensor  # the targets (soft after mixup/cutmix)
    n: int  # samples on this rank
    logged: dict[str, Tensor | float] = field(default_factory=dict)  # log steps: norms, lr …


@dataclass
class StopRequest:
    """A callback's request to end training after this epoch (``Run.request_stop``)."""

    status: str  # a ``dlx.status.Status``: stopped_early, pruned
    reason: str


@dataclass
class State:
    """Counters and best-so-far that a checkpoint carries."""

    epoch: int = 0  # epochs completed
    batch: int = 0  # batches done in epoch ``epoch`` (mid-epoch checkpoints, interrupts)
    step: int = 0  # optimizer steps taken
    skipped: int = 0  # steps skipped for a non-finite loss (trainer.on_nonfinite=skip)
    best: float | None = None
    best_epoch: int = 0
    last_finite_loss: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)  # the last finished epoch's
    best_metrics: dict[str, float] = field(default_factory=dict)  # those of epoch best_epoch
    stop: list[str] | None = None  # [status, reason] of a stop request: a resume honours it

    def end_epoch(self, epoch: int, metrics: dict[str, float], value: float, mode: str) -> bool:
        """Epoch ``epoch`` (0-based) finished with ``metrics``, ``value`` being the monitored
        one; True when it is the best so far (``mode``: min or max)."""
        self.epoch, self.batch, self.metrics = epoch + 1, 0, dict(metrics)
        better = self.best is None or (value > self.best if mode == "max" else value < self.best)
        if better:
            self.best, self.best_epoch, self.best_metrics = value, self.epoch, dict(metrics)
        return better

    def state_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> State:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


# --- random streams ---------------------------------------------------------------------------
def capture_rng() -> dict[str, Any]:
    """Python's, NumPy's, torch's CPU and every CUDA device's generator state, as plain data."""
    version, internal, gauss = random.getstate()
    out: dict[str, Any] = {
        "python": {"version": version, "state": list(internal), "gauss": gauss},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda"] = torch.cuda.get_rng_state_all()
    try:
        import numpy as np
    except ImportError:
        return out
    name, keys, pos, has_gauss, cached = np.random.get_state()
    out["numpy"] = {
        "name": str(name),
        "keys": torch.from_numpy(keys.astype(np.int64)),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "cached_gaussian": float(cached),
    }
    return out


def restore_rng(state: dict[str, Any]) -> None:
    """Put back what ``capture_rng`` took (streams missing from ``state`` are left alone)."""
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"][: torch.cuda.device_count()]
        torch.cuda.set_rng_state_all(cuda)
    if "numpy" in state:
        import numpy as np

        s = state["numpy"]
        keys = s["keys"].numpy().astype(np.uint32)
        np.random.set_state((s["name"], keys, s["pos"], s["has_gauss"], s["cached_gaussian"]))


# --- a whole training checkpoint ----------------------------------------------------------------
def snapshot(
    parts: dict[str, Any], state: State, meter: dict[str, Any], config: Any
) -> dict[str, Any]:
    """Everything a resume needs: each part's ``state_dict()`` (None parts are left out), the
    counters, the in-epoch sums (``TrainMeter.state_dict()``, summed over ranks), every random
    stream and the resolved config."""
    out = {name: obj.state_dict() for name, obj in parts.items() if obj is not None}
    out.update(state=state.state_dict(), meter=meter, rng=capture_rng())
    out["config"] = config
    return out


def restore(ck: dict[str, Any], parts: dict[str, Any], meter: TrainMeter) -> State:
    """Load ``snapshot``'s output back into ``parts`` and the random streams; return the
    counters."""
    for name, obj in parts.items():
        if obj is not None and ck.get(name):
            obj.load_state_dict(ck[name])
    if "meter" in ck:
        meter.load_state_dict(ck["meter"])
    restore_rng(ck["rng"])
    return State.from_dict(ck["state"])


#: test hook: ``DLX_TEST_KILL_AT_STEP=n`` makes the process SIGKILL itself right after the
#: first ``last.pt`` written at step >= n (how the tests kill a run at an exact point).
KILL_AT_STEP = "DLX_TEST_KILL_AT_STEP"


def test_kill_due(name: str, step: int) -> bool:
    """Whether ``maybe_test_kill`` will kill after this checkpoint (so it must be on disk)."""
    import os

    at = os.environ.get(KILL_AT_STEP)
    return name == "last.pt" and bool(at) and step >= int(at)


def maybe_test_kill(step: int) -> None:
    """SIGKILL this process if the ``DLX_TEST_KILL_AT_STEP`` test hook asks for it."""
    import os
    import signal

    at = os.environ.get(KILL_AT_STEP)
    if at and step >= int(at):
        os.kill(os.getpid(), signal.SIGKILL)
