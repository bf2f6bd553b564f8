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
from dlx.suggest import allowed


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
    import yaml
    from omegaconf import DictConfig, OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    path = Path(run_dir) / ".hydra" / "config.yaml"
    try:
        cfg = OmegaConf.load(path)
    except (OSError, ValueError, yaml.YAMLError, OmegaConfBaseException) as e:
        reason = getattr(e, "strerror", None) or str(e).splitlines()[0]
        raise UsageError(f"RUN_DIR={run_dir}: unreadable .hydra/config.yaml ({reason})") from None
    missing = [k for k in ("model", "data", "trainer") if not _is_group(cfg, k)]
    if missing:
        raise UsageError(
            f"RUN_DIR={run_dir}: .hydra/config.yaml is empty or damaged (no {', '.join(missing)}); "
            "a run dir's config is written by dlx train, restore it from a copy"
        )
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


def _is_group(cfg: Any, key: str) -> bool:
    """Whether ``cfg.key`` is a group of keys (a damaged file may hold a string there)."""
    from omegaconf import DictConfig, OmegaConf

    node = cfg._get_node(key) if isinstance(cfg, DictConfig) and key in cfg else None
    return node is not None and OmegaConf.is_dict(node)


def find_runs(root: Path) -> list[Path]:
    """Run dirs under ``root``: folders with a ``.hydra/config.yaml``."""
    return sorted(p.parent.parent for p in Path(root).rglob(".hydra/config.yaml"))


def read_run(run_dir: Path) -> dict[str, Any]:
    """What ``dlx runs`` shows of one run: its summary (or ``running``, ``dead`` when it
    was killed before writing one) and overrides."""
    from dlx.engine.runlock import alive

    info: dict[str, Any] = {"dir": run_dir, "status": Status.RUNNING, "metrics": {}}
    summary = run_dir / "summary.json"
    if summary.is_file():
        try:
            data = json.loads(summary.read_text())
            info.update(data if isinstance(data, dict) else {"status": "unreadable"})
        except (OSError, ValueError):
            info["status"] = "unreadable"
        if not isinstance(info.get("metrics"), dict):
            info["metrics"] = {}
    elif alive(run_dir) is False:  # no summary and nobody holds its lock: killed
        info["status"] = Status.DEAD
    info["overrides"] = _overrides(run_dir / ".hydra" / "overrides.yaml")
    return info


def _overrides(path: Path) -> list[str]:
    """The run's command-line overrides; none when the file is missing or damaged."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text()) if path.is_file() else []
    except (OSError, yaml.YAMLError):
        return []
    return [str(o) for o in data] if isinstance(data, list) else []
