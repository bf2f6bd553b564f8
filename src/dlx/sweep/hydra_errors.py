"""Hydra's composition errors as one line that names the key and what is allowed."""

from __future__ import annotations

import re
from importlib import resources

from dlx.suggest import allowed

#: groups whose options are chosen as a list, each option's keys under <group>.<option>.
LIST_GROUPS = ("regularization", "augment")


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
