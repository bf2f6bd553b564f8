"""A rank started by ``trainer.devices=N`` (``python -m dlx.engine.worker``): train without
Hydra."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from dlx.engine.distributed import CONFIG_ENV, RESUME_ENV, RUN_DIR_ENV
from dlx.errors import UsageError
from dlx.status import SUCCEEDED, Status


def main() -> int:
    """Train this rank with the resolved config rank 0 put in the environment."""
    from dlx.engine.loop import run

    cfg = json.loads(os.environ[CONFIG_ENV])  # the resolved config: parsed as rank 0 parsed it
    resume = os.environ.get(RESUME_ENV) == "1"
    try:
        summary = run(cfg, Path(os.environ[RUN_DIR_ENV]), resume=resume)
    except UsageError:  # rank 0 meets the same config and reports it
        return 2
    return 0 if summary.get("status") in (*SUCCEEDED, Status.INTERRUPTED) else 1


if __name__ == "__main__":
    sys.exit(main())
