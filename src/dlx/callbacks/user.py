"""``trainer.callbacks``: a user's own callbacks, imported the way ``python -m`` would find
them (the folder dlx runs from first on ``sys.path``); a failure is one line naming the key."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from dlx.callbacks import Callback
from dlx.errors import UsageError
from dlx.suggest import allowed


def import_path(path: str, key: str) -> Any:
    """The object at dotted ``path`` (``mycallbacks.StopAtAccuracy``), with the current
    folder importable as ``python -m`` makes it (the ``dlx`` script does not)."""
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    module, _, name = path.rpartition(".")
    if not module:
        raise UsageError(f"{key}={path}: expected a dotted path, module.Class")
    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        raise UsageError(
            f"{key}={path}: cannot import {module} ({e}); put {module.split('.')[0]}.py in the "
            "folder you run dlx from, or its folder on PYTHONPATH"
        ) from None
    except Exception as e:  # the module itself raised
        raise UsageError(
            f"{key}={path}: importing {module} failed ({type(e).__name__}: {e})"
        ) from None
    if not hasattr(mod, name):
        public = [n for n in dir(mod) if not n.startswith("_")]
        raise UsageError(f"{key}={path}: {module} has no {name}; {allowed(name, public)}")
    return getattr(mod, name)


def user_callback(spec: Any, i: int) -> Callback:
    """``trainer.callbacks[i]``: a dotted class path (called without arguments) or a Hydra
    node with ``_target_`` (its other keys are the arguments)."""
    key = f"trainer.callbacks[{i}]"
    if isinstance(spec, dict):
        target = spec.get("_target_")
        if not isinstance(target, str):
            raise UsageError(f"{key}={spec}: a node needs _target_: module.Class")
        cls, kwargs = import_path(target, key), {k: v for k, v in spec.items() if k != "_target_"}
    else:
        cls, kwargs = import_path(str(spec), key), {}
    try:
        obj = cls(**kwargs)
    except Exception as e:
        raise UsageError(f"{key}={spec}: cannot be built ({type(e).__name__}: {e})") from None
    if not isinstance(obj, Callback):
        raise UsageError(f"{key}={spec}: not a dlx.callbacks.Callback subclass")
    return obj
