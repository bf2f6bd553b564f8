"""What a run dir holds, read back: its saved config, its summary and overrides.

A leaf module: ``runs`` (the table), ``sweep`` (the leaderboard) and the CLI all read run dirs
through it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dlx.errors import UsageError
from dlx.suggest import allowed


def load_run_config(run_dir: Path, overrides: list[str] | None = None):
    """The run's saved config (``.hydra/config.yaml``) with ``key=value`` overrides applied."""
    from omegaconf import DictConfig, OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    cfg = OmegaConf.load(Path(run_dir) / ".hydra" / "config.yaml")
    OmegaConf.set_struct(cfg, True)
    for item in overrides or []:
        key, eq, value = item.partition("=")
        if not eq:
            raise UsageError(f"cannot parse override '{item}' (expected key=value)")
        current = OmegaConf.select(cfg, key, default=KeyError)
        if current is KeyError:
            parent, _, name = key.rpartition(".")
            node = OmegaConf.select(cfg, parent) if parent else cfg
            keys = list(node.keys()) if isinstance(node, DictConfig) else []
            hint = allowed(name, keys, "allowed keys", parent and parent + ".")
            raise UsageError(f"{key}: unknown key in the run's config; {hint}")
        if isinstance(current, DictConfig):
            raise UsageError(
                f"{key}: a config group; dlx eval takes key=value overrides of the run's "
                "config (e.g. data.batch_size=512), the model must stay the run's"
            )
        try:
            OmegaConf.update(cfg, key, OmegaConf.create({"v": value})["v"] if value else value)
        except OmegaConfBaseException as e:
            raise UsageError(f"{item}: {str(e).splitlines()[0]}") from None
    return cfg


def find_runs(root: Path) -> list[Path]:
    """Run dirs under ``root``: folders with a ``.hydra/config.yaml``."""
    return sorted(p.parent.parent for p in Path(root).rglob(".hydra/config.yaml"))


def read_run(run_dir: Path) -> dict[str, Any]:
    """What ``dlx runs`` shows of one run: its summary (or ``running``) and overrides."""
    import yaml

    info: dict[str, Any] = {"dir": run_dir, "status": "running", "metrics": {}}
    summary = run_dir / "summary.json"
    if summary.is_file():
        try:
            info.update(json.loads(summary.read_text()))
        except json.JSONDecodeError:
            info["status"] = "unreadable"
    overrides = run_dir / ".hydra" / "overrides.yaml"
    info["overrides"] = yaml.safe_load(overrides.read_text()) if overrides.is_file() else []
    return info
