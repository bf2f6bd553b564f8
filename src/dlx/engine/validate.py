"""The checks a config passes before a run dir is made: every group's schema (keys, types,
ranges, finite numbers), interpolations that resolve, and the cross-checks that need no data.

``dlx train`` runs them from Hydra's ``on_run_start`` (``dlx.sweep.guard``), so a config
that fails leaves no run dir behind; the run itself parses the same nodes again when it
builds. Each failure is one ``UsageError`` line naming the key and what is allowed.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from dlx.errors import UsageError


def resolve_all(cfg: DictConfig) -> None:
    """Resolve every interpolation; one that cannot be is a usage error naming its key."""
    from omegaconf.errors import OmegaConfBaseException

    try:
        OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None) or "config"
        msg = str(e).splitlines()[0]
        raise UsageError(f"{key}: cannot resolve its interpolation ({msg})") from None


def _groups(cfg: DictConfig) -> list[tuple[str, Any]]:
    """(group, parser) for every single-option group of the root config."""
    from dlx.data import DATASETS
    from dlx.models import MODELS
    from dlx.optim import OPTIMIZERS
    from dlx.sched import SCHEDULES

    return [("model", MODELS), ("optim", OPTIMIZERS), ("sched", SCHEDULES), ("data", DATASETS)]


#: config groups that take one option (``regularization`` and ``augment`` take lists)
SINGLE = ("model", "optim", "sched", "data", "trainer")


def check_overrides(overrides: list[str]) -> None:
    """A single-option group given a list (``optim=[sgd,adam]``, which Hydra would merge
    into one node and then name a key of the wrong option) is refused by its own name."""
    from dlx.sweep.hydra_errors import group_options

    for item in overrides:
        key, _, value = item.partition("=")
        group = key.lstrip("+~")
        if group in SINGLE and value.strip().startswith("["):
            raise UsageError(
                f"{group}={value}: takes one option, not a list; choose one of: "
                f"{', '.join(group_options(group))} (a run each: dlx train -m {group}=a,b)"
            )


def validate(cfg: DictConfig) -> None:
    """Check the task config ``cfg`` (no ``hydra`` node) as the run will, without building."""
    from dlx.registry import to_schema
    from dlx.regularization import Regularization
    from dlx.trainer import TrainerConfig, check_root

    check_root(cfg)
    resolve_all(cfg)
    to_schema(cfg.trainer, TrainerConfig, "trainer")
    for group, registry in _groups(cfg):
        if not isinstance(cfg[group], DictConfig) or not isinstance(cfg[group].get("name"), str):
            raise UsageError(f"{group}: no option chosen; choose one, e.g. {group}=NAME")
        registry.parse(cfg[group])
    Regularization(cfg.get("regularization"))


def empty_split(node: DictConfig, data: Any) -> str:
    """The line for a split left without a batch: names the data keys that size it."""
    split = "val" if data.num_batches("train", drop_last=True) else "train"
    keys = [
        f"data.{k}={node[k]}"
        for k in ("batch_size", "val_fraction", "test_fraction", "train_fraction")
        if k in node
    ]
    return (
        f"{', '.join(keys)}: leave the {split} split without a full batch; lower "
        f"data.batch_size or the split fractions (val_fraction + test_fraction well below 1)"
    )
