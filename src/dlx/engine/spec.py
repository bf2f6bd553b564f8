"""``parse(cfg) -> RunSpec``: the composed config, checked once, as typed parts.

Every group is parsed here, at the entry, by its registry (unknown keys, types and ranges are
one ``UsageError`` line naming the key): the trainer, the data, the model (with
``regularization.dropout`` applied), the optimizer, the schedule, the regularizers and the
augmentations. Below this point nothing reads the config: ``dlx.engine.build`` builds the
parts from the spec, and the registries' builders take its parsed options as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dlx.errors import UsageError
from dlx.registry import to_schema
from dlx.trainer import TrainerConfig, check_root


@dataclass(frozen=True)
class RunSpec:
    """One run's config, parsed: each group's schema instance."""

    trainer: TrainerConfig
    data: Any  # the dataset's schema (``DATASETS``)
    model: Any  # the model's schema (``MODELS``), dropout from ``regularization.dropout``
    optim: Any  # ``OPTIMIZERS``
    sched: Any  # ``SCHEDULES``
    regularization: dict[str, Any]  # name -> schema (``REGULARIZERS``), in the config's order
    augment: dict[str, Any]  # name -> schema (``AUGMENTS``), in the config's order
    config: dict[str, Any]  # the config resolved: what checkpoints and HParams keep
    yaml: str  # the config as composed (TensorBoard's ``config`` text)

    @property
    def batch_size(self) -> int:
        """Samples per batch, per process (``data.batch_size``)."""
        return getattr(self.data, "batch_size", 1)

    @property
    def name(self) -> str:
        """What it trains, in one line: ``model=… optim=… data=…``."""
        return f"model={self.model.name} optim={self.optim.name} data={self.data.name}"


def parse(cfg: Any) -> RunSpec:
    """The spec of ``cfg`` (a composed Hydra config, or its resolved ``dict``); a bad key or
    value is a ``UsageError``."""
    from omegaconf import OmegaConf

    from dlx.augment import AUGMENTS
    from dlx.optim import OPTIMIZERS
    from dlx.sched import SCHEDULES

    cfg = OmegaConf.create(cfg) if isinstance(cfg, dict) else cfg  # a spawned rank's
    check_root(cfg)
    resolve_all(cfg)
    for group in ("model", "optim", "sched", "data"):
        if not OmegaConf.is_dict(cfg[group]) or not isinstance(cfg[group].get("name"), str):
            raise UsageError(f"{group}: no option chosen; choose one, e.g. {group}=NAME")
    trainer = to_schema(cfg.trainer, TrainerConfig, "trainer")
    data, model, regularization = parse_model(cfg)
    augment = cfg.get("augment") or {}
    for n in augment:
        AUGMENTS.get(n)  # unknown names fail here, with the allowed list
    return RunSpec(
        trainer=trainer,
        data=data,
        model=model,
        optim=OPTIMIZERS.parse(cfg.optim),
        sched=SCHEDULES.parse(cfg.sched),
        regularization=regularization,
        augment={n: AUGMENTS.parse(augment[n], n, prefix=f"augment.{n}") for n in augment},
        config=OmegaConf.to_container(cfg, resolve=True),  # type: ignore[arg-type]
        yaml=OmegaConf.to_yaml(cfg),
    )


def parse_model(cfg: Any) -> tuple[Any, Any, dict[str, Any]]:
    """The data, model and regularization groups of ``cfg`` (a config or a plain mapping with
    those keys alone): what a model built outside a run needs (``summary``, ``macs``)."""
    from dlx.data import DATASETS
    from dlx.models import MODELS
    from dlx.regularization import Regularization

    data = DATASETS.parse(cfg["data"])
    regs = Regularization(cfg.get("regularization"))
    return data, MODELS.parse(regs.model_config(cfg["model"])), regs.cfg


def parse_run_dir(run_dir: Any, overrides: list[str] | None = None) -> RunSpec:
    """The spec of a run dir's saved config (``.hydra/config.yaml``, ``overrides`` applied)."""
    from dlx.engine.rundirs import load_run_config

    return parse(load_run_config(run_dir, overrides))


def resolve_all(cfg: Any) -> None:
    """Resolve every interpolation; one that cannot be is a usage error naming its key."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None) or "config"
        msg = str(e).splitlines()[0]
        raise UsageError(f"{key}: cannot resolve its interpolation ({msg})") from None


#: config groups that take one option (``regularization`` and ``augment`` take lists)
SINGLE = ("model", "optim", "sched", "data", "trainer")


def check_overrides(overrides: list[str]) -> None:
    """A single-option group given a list (``optim=[sgd,adam]``, which Hydra would merge
    into one node and then name a key of the wrong option) is refused by its own name."""
    from dlx.sweep.compose import group_options

    for item in overrides:
        key, _, value = item.partition("=")
        group = key.lstrip("+~")
        if group in SINGLE and value.strip().startswith("["):
            raise UsageError(
                f"{group}={value}: takes one option, not a list; choose one of: "
                f"{', '.join(group_options(group))} (a run each: dlx train -m {group}=a,b)"
            )


def empty_split(schema: Any, data: Any) -> str:
    """The line for a split left without a batch: names the data keys that size it."""
    split = "val" if data.num_batches("train", drop_last=True) else "train"
    keys = [
        f"data.{k}={getattr(schema, k)}"
        for k in ("batch_size", "val_fraction", "test_fraction", "train_fraction")
        if hasattr(schema, k)
    ]
    return (
        f"{', '.join(keys)}: leave the {split} split without a full batch; lower "
        f"data.batch_size or the split fractions (val_fraction + test_fraction well below 1)"
    )
