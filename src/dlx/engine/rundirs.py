"""What a run dir holds, read back: its saved config, its summary and overrides.

A leaf module: ``runs`` (the table), ``sweep`` (the leaderboard) and the CLI all read run dirs
through it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dlx.errors import UsageError
from dlx.status import Status


def read_config(path: Path) -> dict[str, Any]:
    """A saved config (``.hydra/config.yaml``) as plain data, its interpolations resolved
    where they can be (one that resolved only inside its run stays as written); an
    unreadable file is a ``ValueError``."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        cfg = OmegaConf.load(path)
    except (OmegaConfBaseException, ValueError) as e:
        raise ValueError(str(e)) from None
    try:
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    except OmegaConfBaseException:
        return OmegaConf.to_container(cfg, resolve=False)  # type: ignore[return-value]


def config_node(config: dict[str, Any]) -> Any:
    """``config`` as an OmegaConf node (``Run.cfg``, for users' callbacks)."""
    from omegaconf import OmegaConf

    return OmegaConf.create(config)


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
            raise UsageError(f"{key}: unknown key in the run's config")
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

    info: dict[str, Any] = {"dir": run_dir, "status": Status.RUNNING, "metrics": {}}
    summary = run_dir / "summary.json"
    if summary.is_file():
        try:
            info.update(json.loads(summary.read_text()))
        except json.JSONDecodeError:
            info["status"] = "unreadable"
    overrides = run_dir / ".hydra" / "overrides.yaml"
    info["overrides"] = yaml.safe_load(overrides.read_text()) if overrides.is_file() else []
    return info
