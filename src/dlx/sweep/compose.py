"""Each sweep trial's config composed once.

Hydra's sweepers check a batch before launching it by composing every trial's config
(``Sweeper.validate_batch_is_legal``: a bad override fails the sweep before any trial ran),
then the launcher composes each trial's config again to run it. dlx's sweepers (the grid's
``dlx_basic`` and ``dlx_optuna``) hand the launcher a ``ComposeOnce`` loader instead of
Hydra's: the check keeps each config it composed, and the launcher's composition of the same
trial takes it (once; a config the launcher gets is its own to change). What a trial is
composed from stays Hydra's: the same loader, the same overrides, the same config files.

Within one sweep the config files are read and parsed once (``SweepRepository``), not once
per composition. A launcher that runs trials in other processes (joblib) gets the loader
pickled without the kept configs: each worker composes its trials itself, once.

A composition that fails is one line naming the key and what is allowed (``hydra_error_line``).
"""

from __future__ import annotations

import copy
import re
import uuid
from collections.abc import Sequence
from importlib import resources
from typing import Any

from hydra.core.config_loader import ConfigLoader
from hydra.types import HydraContext
from omegaconf import DictConfig

from dlx.suggest import allowed

#: groups whose options are chosen as a list, each option's keys under <group>.<option>.
LIST_GROUPS = ("regularization", "augment")


class SweepRepository:
    """A Hydra config repository that keeps every config file it loaded for the whole sweep
    (Hydra's own cache lasts one composition). Everything else goes to the wrapped one."""

    def __init__(self, delegate: Any, cache: dict[tuple, Any] | None = None) -> None:
        self.delegate = delegate
        self.cache = {} if cache is None else cache
        self.sweep = uuid.uuid4().hex  # names the cache for the worker processes

    def load_config(self, config_path: str) -> Any:
        sources = tuple((s.provider, s.path) for s in self.delegate.get_sources())
        key = (sources, config_path)
        if key not in self.cache:
            self.cache[key] = self.delegate.load_config(config_path=config_path)
        return self.cache[key]

    def initialize_sources(self, config_search_path: Any) -> None:
        # copy on write: ``hydra.searchpath`` changes this composition's sources only
        self.delegate = copy.deepcopy(self.delegate)
        self.delegate.initialize_sources(config_search_path)

    def __deepcopy__(self, memo: dict[int, Any]) -> SweepRepository:
        # Hydra copies the repository for every composition, so that ``hydra.searchpath``
        # changes a copy: ``initialize_sources`` copies the sources when it does; the
        # loaded files are shared
        twin = SweepRepository(self.delegate, self.cache)
        twin.sweep = self.sweep
        return twin

    def __getattr__(self, name: str) -> Any:
        if name in ("delegate", "cache", "sweep"):  # unpickling: not set yet
            raise AttributeError(name)
        return getattr(self.delegate, name)

    def __getstate__(self) -> dict[str, Any]:
        return {"delegate": self.delegate, "sweep": self.sweep}  # not the loaded files

    def __setstate__(self, state: dict[str, Any]) -> None:
        # a worker process keeps the files it read for every trial of this sweep it runs
        self.delegate, self.sweep = state["delegate"], state["sweep"]
        if WORKER_FILES.get("sweep") != self.sweep:
            WORKER_FILES.clear()
            WORKER_FILES["sweep"] = self.sweep
        self.cache = WORKER_FILES.setdefault("files", {})


#: in a launcher's worker process: the config files read for the sweep it runs trials of
WORKER_FILES: dict[str, Any] = {}


class ComposeOnce:
    """A Hydra config loader whose ``load_sweep_config`` composes each trial once: a config
    composed by ``check`` is handed to the launcher's composition of the same trial.

    ``compositions`` counts the full compositions this loader made (in this process)."""

    def __init__(self, loader: ConfigLoader) -> None:
        self.loader = loader
        self.kept: dict[tuple[str, ...], DictConfig] = {}
        self.compositions = 0
        repository = getattr(loader, "repository", None)
        if repository is not None and not isinstance(repository, SweepRepository):
            loader.repository = SweepRepository(repository)

    def check(self, master_config: DictConfig, batch: Sequence[Sequence[str]]) -> None:
        """Compose every trial of ``batch`` (a composition error raises now) and keep them."""
        for overrides in batch:
            key = tuple(overrides)
            if key not in self.kept:
                self.kept[key] = self._compose(master_config, list(overrides))

    def load_sweep_config(self, master_config: DictConfig, sweep_overrides: list[str]) -> Any:
        """The trial's config: the one ``check`` composed (taken), else a fresh composition."""
        kept = self.kept.pop(tuple(sweep_overrides), None)
        return kept if kept is not None else self._compose(master_config, sweep_overrides)

    def _compose(self, master_config: DictConfig, overrides: list[str]) -> DictConfig:
        self.compositions += 1
        return self.loader.load_sweep_config(master_config, overrides)

    def __getattr__(self, name: str) -> Any:
        if name in ("loader", "kept", "compositions"):  # unpickling: not set yet
            raise AttributeError(name)
        return getattr(self.loader, name)

    def __getstate__(self) -> dict[str, Any]:
        # a launcher's worker process gets the loader, not the configs kept here
        return {"loader": self.loader, "kept": {}, "compositions": 0}


def composing_once(hydra_context: HydraContext) -> HydraContext:
    """``hydra_context`` with its config loader wrapped in ``ComposeOnce`` (once)."""
    loader = hydra_context.config_loader
    once = loader if isinstance(loader, ComposeOnce) else ComposeOnce(loader)
    return HydraContext(config_loader=once, callbacks=hydra_context.callbacks)


class ComposesOnce:
    """Mixin for a Hydra sweeper: its launcher composes through ``ComposeOnce``, and its batch
    check keeps what it composed for the launcher."""

    hydra_context: HydraContext | None
    config: DictConfig | None

    def setup(self, *, hydra_context: HydraContext, task_function: Any, config: DictConfig) -> None:
        context = composing_once(hydra_context)
        super().setup(hydra_context=context, task_function=task_function, config=config)  # type: ignore[misc]

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        assert self.hydra_context is not None and self.config is not None
        loader = self.hydra_context.config_loader
        if isinstance(loader, ComposeOnce):
            loader.check(self.config, batch)
        else:  # set up by someone else: Hydra's own check
            super().validate_batch_is_legal(batch)  # type: ignore[misc]


# --- composition errors as one line ---------------------------------------------------------
def group_options(group: str) -> list[str]:
    """The option names of a config group shipped with dlx."""
    root = resources.files("dlx.conf") / group
    if not root.is_dir():
        return []
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".yaml"))


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def _compose_keys(args: list[str], drop: str, parent: str) -> list[str] | None:
    """Keys under ``parent`` in the config composed from ``args`` less the bad override."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import DictConfig, OmegaConf

    kept = [
        a
        for a in args
        if not a.startswith("-") and a.split("=", 1)[0].lstrip("+~") != drop and "," not in a
    ]
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module("dlx.conf", version_base="1.3"):
            cfg = compose("config", overrides=kept)
    except Exception:
        return None
    node = OmegaConf.select(cfg, parent) if parent else cfg
    return sorted(node.keys()) if isinstance(node, DictConfig) else None


def unknown_key(key: str, args: list[str]) -> str:
    parent, _, _ = key.rpartition(".")
    parts = key.split(".")
    if parts[0] in LIST_GROUPS and len(parts) > 2:
        group, option = parts[0], parts[1]
        keys = _compose_keys(args, key, parent)
        if keys is None:  # the option itself is not chosen
            if option not in group_options(group):
                options = [o for o in group_options(group) if o != "none"]
                return f"{group}.{option}: unknown {group} option; {allowed(option, options)}"
            return f"{key}: {group} option '{option}' is not chosen; add it: '{group}=[{option}]'"
    keys = _compose_keys(args, key, parent)
    where = f"under {parent}" if parent else "at the top level"
    if keys is None:
        return f"{key}: unknown key"
    name = key.rpartition(".")[2]
    hint = allowed(name, keys, f"allowed keys {where}", parent and parent + ".")
    return f"{key}: unknown key; {hint}"


def _raised_in_hydra(e: BaseException) -> bool:
    """Whether ``e`` was raised inside Hydra's own code (its parser, its defaults list)."""
    tb = e.__traceback__
    last = None
    while tb is not None:
        last, tb = tb, tb.tb_next
    return last is not None and "/hydra/" in last.tb_frame.f_code.co_filename


#: characters Hydra's override grammar reads as syntax, or cannot read unquoted
QUOTE_HINT = (
    "; a value with spaces, non-ASCII letters or ()[]{},=:'\" in it must be quoted: "
    "'key=\"value\"' (the outer quotes for the shell)"
)


def parse_error_line(override: str, text: str, args: list[str]) -> str:
    """One line for an override Hydra's grammar cannot read, with the hint to quote."""
    lines = [ln for ln in text.strip().splitlines() if ln.strip() and "hydra.cc" not in ln]
    detail = next((ln for ln in lines[1:] if ln.strip() != "^"), lines[0] if lines else "")
    if "=" not in override:  # a path split at its space by the shell: the piece after it
        before = args[args.index(override) - 1] if override in args[1:] else None
        where = f" (after '{before}')" if before else ""
        return f"cannot parse override '{override}'{where}: expected key=value" + QUOTE_HINT
    key = override.split("=", 1)[0]
    return f"{key}: cannot parse override '{override}' ({detail.strip()})" + QUOTE_HINT


def hydra_error_line(e: Exception, args: list[str]) -> str | None:
    """One line for an exception Hydra raised while composing; None if it is not one."""
    from hydra.errors import HydraException, OverrideParseException
    from omegaconf.errors import OmegaConfBaseException

    if not isinstance(e, HydraException | OmegaConfBaseException):
        if isinstance(e, ValueError) and _raised_in_hydra(e):  # e.g. the override '=5'
            bad = [a for a in args if a.startswith("=")] or args
            return f"cannot use override '{bad[-1]}': {_first_line(str(e))} (expected key=value)"
        return None
    text = str(e)
    if isinstance(e, OverrideParseException):
        return parse_error_line(e.override, text, args)
    m = re.search(r"Could not (?:find|load) '([^']+)/([^'/]+)'", text)
    if m:
        group, option = m.groups()
        options = [o for o in group_options(group) if group not in LIST_GROUPS or o != "none"]
        return f"{group}={option}: unknown option; {allowed(option, options)}"
    m = re.search(r"Could not override '([^']+)'", text)
    if m:
        return unknown_key(m.group(1), args)
    m = re.search(r"Ambiguous value for argument '([^']+)'", text)
    if m:
        return (
            f"{m.group(1)}: a comma list is a sweep; run it with dlx train -m "
            "(or give a list in brackets where the key takes one)"
        )
    m = re.search(r"Error parsing override '([^']*)'\n(.*)", text)
    if m:
        return f"cannot parse override '{m.group(1)}': {m.group(2)} (expected key=value)"
    cause = e.__cause__
    detail = _first_line(str(cause)) if cause is not None else ""
    line = _first_line(text)
    return f"{line} ({detail})" if detail and detail not in line else line
