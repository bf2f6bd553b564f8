"""What a checkpoint carries besides the model: counters, in-epoch accumulators, random streams.

Everything here becomes tensors and plain data, because checkpoints are loaded with
``torch.load(weights_only=True)``: NumPy's generator state, for one, is stored as a tensor and
a few numbers rather than as a pickled array.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor


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
    metrics: dict[str, float] = field(default_factory=dict)

    def state_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> State:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


class EpochMeter:
    """The running sums behind an epoch's train metrics, kept on the device (no host sync)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.reset()

    def reset(self) -> None:
        self.loss_sum = torch.zeros((), device=self.device)
        self.correct = torch.zeros((), device=self.device, dtype=torch.long)
        self.seen = torch.zeros((), device=self.device, dtype=torch.long)

    def add(self, loss: Tensor, correct: Tensor, n: int, finite: Tensor | None = None) -> None:
        """Add a batch of ``n`` samples; a batch whose ``finite`` is False counts for nothing."""
        loss_sum = loss.detach().float() * n
        if finite is None:
            self.loss_sum += loss_sum
            self.correct += correct
            self.seen += n
            return
        self.loss_sum += torch.where(finite, loss_sum, 0.0)
        self.correct += torch.where(finite, correct, 0)
        self.seen += finite.long() * n

    def result(self) -> dict[str, float]:
        """The epoch's mean train loss and accuracy (one host sync)."""
        n = max(int(self.seen.item()), 1)
        return {"train/loss": self.loss_sum.item() / n, "train/acc": self.correct.item() / n}

    def state_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k).cpu() for k in ("loss_sum", "correct", "seen")}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k in ("loss_sum", "correct", "seen"):
            setattr(self, k, state[k].to(self.device, getattr(self, k).dtype))


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
def snapshot(parts: dict[str, Any], state: State, meter: EpochMeter, config: Any) -> dict[str, Any]:
    """Everything a resume needs: each part's ``state_dict()`` (None parts are left out), the
    counters, the in-epoch sums, every random stream and the resolved config."""
    out = {name: obj.state_dict() for name, obj in parts.items() if obj is not None}
    out.update(state=state.state_dict(), meter=meter.state_dict(), rng=capture_rng())
    out["config"] = config
    return out


def restore(ck: dict[str, Any], parts: dict[str, Any], meter: EpochMeter) -> State:
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


def maybe_test_kill(step: int) -> None:
    """SIGKILL this process if the ``DLX_TEST_KILL_AT_STEP`` test hook asks for it."""
    import os
    import signal

    at = os.environ.get(KILL_AT_STEP)
    if at and step >= int(at):
        os.kill(os.getpid(), signal.SIGKILL)
