"""``macs``: multiply-accumulates of one sample's forward pass, for ``dlx report``'s tables
(``--metric test/acc macs``) from a run's saved config: its model built again on its data's
shape (no weights, no training) and counted by torchinfo, once per distinct model and data."""

from __future__ import annotations

import functools
import json
from typing import Any

#: the pseudo-metric's name in ``dlx report --metric`` and a study's ``metrics``
MACS = "macs"


def macs_of(config: dict[str, Any]) -> int | None:
    """The MACs of the model that ``config`` (a run's ``.hydra/config.yaml``) describes; None
    when it cannot be built here (its data is missing, say)."""
    key = json.dumps({k: config.get(k) for k in ("model", "data", "regularization")}, default=str)
    return _count(key)


@functools.lru_cache(maxsize=64)
def _count(key: str) -> int | None:
    import torch

    from dlx.commands.summary import model_summary
    from dlx.data import build_data
    from dlx.engine.build import model_of
    from dlx.engine.spec import parse_model
    from dlx.errors import UsageError

    try:
        data, model, _ = parse_model(json.loads(key))
        info = build_data(data, torch.device("cpu")).info
        return int(model_summary(model_of(model, info), info).macs)
    except (UsageError, OSError, RuntimeError, ValueError):
        return None
