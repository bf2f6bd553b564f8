"""Where and how a run computes: the device, seeds, mixed precision, ``torch.compile``."""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

import torch
from torch import nn

from dlx.errors import UsageError

#: ``trainer.precision`` -> the autocast dtype (None: full precision)
AUTOCAST = {"32": None, "bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}


def pick_device(name: str) -> torch.device:
    """``trainer.device``: ``auto`` takes CUDA, then MPS, then the CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("trainer.device=cuda: no CUDA device is visible; use auto or cpu")
    if name == "mps" and not torch.backends.mps.is_available():
        raise UsageError("trainer.device=mps: MPS is not available; use auto or cpu")
    return torch.device(name)


def seed_everything(seed: int, deterministic: bool) -> None:
    """Seed Python, NumPy and torch; ``deterministic`` also picks deterministic kernels."""
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:
        pass
    torch.backends.cudnn.benchmark = not deterministic
    torch.backends.cuda.matmul.allow_tf32 = not deterministic
    torch.backends.cudnn.allow_tf32 = not deterministic
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)


def autocast_for(
    device: torch.device, precision: str
) -> Callable[[], AbstractContextManager[object]]:
    """A factory of the context each forward pass runs in (autocast, or nothing)."""
    dtype = AUTOCAST[precision]
    if dtype is None:
        return nullcontext
    return lambda: torch.autocast(device.type, dtype=dtype)


def compile_model(model: nn.Module, enabled: bool, mode: str = "default") -> nn.Module:
    """``torch.compile(model, mode=mode)`` when ``enabled``, else ``model`` itself (parameters
    are shared: the optimizer and checkpoints use ``model``)."""
    return torch.compile(model, mode=mode) if enabled else model
