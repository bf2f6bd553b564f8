"""Each sweep trial's config composed once.

Hydra's sweepers compose every trial of a batch to check it, then the launcher composes each
again to run it. dlx's sweepers (``dlx_basic``, ``dlx_optuna``) give the launcher a
``ComposeOnce`` loader: the check keeps what it composed and the launcher takes it (once; it
is the launcher's to change). The config files are read once a sweep (``SweepRepository``). A
trial whose overrides differ from the last composed trial's only in the values of plain keys
(no config group, ``+``/``~``, ``@package`` or ``hydra.`` key) is derived from that
composition (``Template``): a copy, Hydra's own override step, and the ``overrides.task`` and
``override_dirname`` they give: what Hydra composes from the same files and overrides
(tested). A joblib worker gets the loader without the kept configs and keeps its own template.

A composition that fails is one line naming the key and what is allowed (``hydra_error_line``).
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Sequence
from importlib import resources
from typing import Any

from hydra.core.config_loader import ConfigLoader
from hydra.types import HydraContext
from omegaconf import DictConfig, OmegaConf, open_dict

from dlx.suggest import allowed
from dlx.sweep.repository import SweepRepository

#: groups whose options are chosen as a list, each option's keys under <group>.<option>.
LIST_GROUPS = ("regularization", "augment")


class ComposeOnce:
    """A Hydra config loader that composes each trial once (``check``'s configs go to the
    launcher). Counts (this process): full ``compositions``, configs ``derived``."""

    def __init__(self, loader: ConfigLoader) -> None:
        self.loader = loader
        self.kept: dict[tuple[str, ...], DictConfig] = {}
        self.compositions = 0
        self.derived = 0
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
        template = LAST.get(self._sweep())
        if template and (derived := template.derive(master_config, overrides)) is not None:
            self.derived += 1
            return derived
        self.compositions += 1
        cfg = self.loader.load_sweep_config(master_config, overrides)
        LAST.clear()  # one sweep's at a time
        LAST[self._sweep()] = Template(overrides, cfg)
        return cfg

    def __getattr__(self, name: str) -> Any:
        if name in ("loader", "kept", "compositions", "derived"):  # unpickling: not set yet
            raise AttributeError(name)
        return getattr(self.loader, name)

    def __getstate__(self) -> dict[str, Any]:
        # a launcher's worker process gets the loader, not the configs kept here
        return {"loader": self.loader, "kept": {}, "compositions": 0, "derived": 0}

    def _sweep(self) -> str | None:
        return getattr(getattr(self.loader, "repository", None), "sweep", None)


#: in each process (a joblib worker too, between its tasks): the sweep's last composed trial
LAST: dict[str | None, Template] = {}


class Template:
    """A composed trial config, kept pristine, to derive its value-only siblings from."""

    def __init__(self, overrides: list[str], cfg: DictConfig) -> None:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        self.overrides = list(overrides)
        self.parsed = OverridesParser.create().parse_overrides(self.overrides)
        self.cfg = copy.deepcopy(cfg)  # the one handed out is the launcher's to change
        self.choices = set(cfg.hydra.runtime.choices)

    def derive(self, master_config: DictConfig, overrides: list[str]) -> DictConfig | None:
        """The config of the trial ``overrides``, or None when it needs a full composition."""
        from hydra._internal.config_loader_impl import ConfigLoaderImpl, get_overrides_dirname
        from hydra.core.override_parser.overrides_parser import OverridesParser

        if len(overrides) != len(self.overrides):
            return None
        changed = [i for i, (a, b) in enumerate(zip(overrides, self.overrides)) if a != b]
        new = OverridesParser.create().parse_overrides([overrides[i] for i in changed])
        for i, o in zip(changed, new):
            old = self.parsed[i]
            if o.key_or_group != old.key_or_group or self._overlaps(i) or not self._plain(o):
                return None  # compose it
            if not self._plain(old):
                return None
        cfg = copy.deepcopy(self.cfg)
        ConfigLoaderImpl._apply_overrides_to_config(new, cfg)
        swap = dict(zip(changed, new))
        parsed = [swap.get(i, o) for i, o in enumerate(self.parsed)]
        app = [o for o in parsed if not o.is_hydra_override()]
        names = cfg.hydra.job.config.override_dirname
        with open_dict(cfg.hydra):
            cfg.hydra.overrides.task = [o.input_line for o in app]
            cfg.hydra.runtime.cwd = os.getcwd()
            seps = {k: names[k] for k in ("kv_sep", "item_sep", "exclude_keys")}
            cfg.hydra.job.override_dirname = get_overrides_dirname(overrides=app, **seps)
        OmegaConf.copy_cache(from_config=master_config, to_config=cfg)
        return cfg

    def _overlaps(self, i: int) -> bool:
        """Whether another override sets override ``i``'s key, a node above it or below it
        (applied in order, it could win); a group's options are chosen before any value."""
        key = self.parsed[i].key_or_group
        for j, o in enumerate(self.parsed):
            other = o.key_or_group
            near = other == key or other.startswith(key + ".") or key.startswith(other + ".")
            if j != i and near and other not in self.choices and other not in LIST_GROUPS:
                return True
        return False

    def _plain(self, o: Any) -> bool:
        """A plain value for an existing plain key: what Hydra sets with ``OmegaConf.update``."""
        from hydra.core.override_parser.types import OverrideType

        if o.type != OverrideType.CHANGE or o.package is not None or o.is_hydra_override():
            return False
        if o.is_sweep_override() or o.key_or_group in self.choices:  # a group's option
            return False
        try:
            node = OmegaConf.select(self.cfg, o.key_or_group, default=None, throw_on_missing=False)
        except Exception:  # an interpolation that resolves only later: compose it
            return False
        plain = isinstance(o.value(), str | int | float | bool | type(None))
        return plain and (node is None or not OmegaConf.is_config(node))


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
