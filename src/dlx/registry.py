"""Registries: each config group maps option names to a schema and a builder.

A module adds its options with a decorator, e.g.::

    @MODELS.register("lenet", LeNetConfig)
    def lenet(cfg: LeNetConfig, info: DataInfo) -> nn.Module: ...

and the loop asks ``MODELS.build(cfg.model, info)``: the config node is checked against the
schema (unknown keys, types, ranges: a ``UsageError`` naming the key), turned into the schema's
dataclass, and handed to the builder.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Generic, TypeVar

from dlx.errors import UsageError
from dlx.suggest import allowed

F = TypeVar("F", bound=Callable[..., Any])


# --- range metadata for schema fields -------------------------------------------------------
def check(
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    choices: Iterable[Any] | None = None,
) -> dict[str, Any]:
    """Field metadata for a range or a set of allowed values: ``field(metadata=check(gt=0))``."""
    meta: dict[str, Any] = {}
    for k, v in (("ge", ge), ("gt", gt), ("le", le), ("lt", lt)):
        if v is not None:
            meta[k] = v
    if choices is not None:
        meta["choices"] = tuple(choices)
    return meta


def _range_text(meta: Mapping[str, Any]) -> str:
    lo = f"[{meta['ge']}" if "ge" in meta else f"({meta['gt']}" if "gt" in meta else "(-inf"
    hi = f"{meta['le']}]" if "le" in meta else f"{meta['lt']})" if "lt" in meta else "inf)"
    return f"a number in {lo}, {hi}"


def check_value(key: str, value: Any, meta: Mapping[str, Any]) -> None:
    """Raise ``UsageError`` if ``value`` breaks the field's metadata."""
    if value is None:
        return
    values = value if isinstance(value, list | tuple) else [value]
    if any(isinstance(v, float) and not math.isfinite(v) for v in values):
        bounds = _range_text(meta) if any(k in meta for k in ("ge", "gt", "le", "lt")) else ""
        raise UsageError(
            f"{key}={value}: not a finite number" + (f"; allowed: {bounds}" if bounds else "")
        )
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        raise UsageError(f"{key}={value!s}: not allowed; {allowed(str(value), choices)}")
    if not any(k in meta for k in ("ge", "gt", "le", "lt")):
        return
    values = value if isinstance(value, list | tuple) else [value]
    for v in values:
        ok = (
            ("ge" not in meta or v >= meta["ge"])
            and ("gt" not in meta or v > meta["gt"])
            and ("le" not in meta or v <= meta["le"])
            and ("lt" not in meta or v < meta["lt"])
        )
        if not ok:
            raise UsageError(f"{key}={value}: out of range; allowed: {_range_text(meta)}")


# --- turning a config node into a schema instance --------------------------------------------
_TYPE_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def _type_text(tp: Any) -> str:
    args = getattr(tp, "__args__", ())
    base = [a for a in args if a is not type(None)] if args else [tp]
    names = [_TYPE_NAMES.get(a, getattr(a, "__name__", str(a))) for a in base]
    text = " or ".join(names)
    return text + (" or null" if type(None) in args else "")


class NotAsGiven(Exception):
    """A value that is not already of its field's type: OmegaConf's path converts it."""


@functools.cache
def _hints(schema: type) -> dict[str, Any]:
    return typing.get_type_hints(schema)


def _as(value: Any, tp: Any) -> Any:
    """``value`` when it already is of field type ``tp`` (an int widened for a float), as
    OmegaConf's structured merge would give it; else ``NotAsGiven``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if value == "???":  # a mandatory value left missing: OmegaConf says so
        raise NotAsGiven(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if value is None and len(rest) < len(args):
            return None
        if len(rest) == 1:
            return _as(value, rest[0])
    elif tp in (bool, int, str) and type(value) is tp:
        return value
    elif tp is float and type(value) in (float, int):
        return float(value)
    elif origin is list and type(value) is list:
        return [_as(v, args[0] if args else Any) for v in value]
    elif origin is dict and type(value) is dict and all(type(k) is str for k in value):
        return {k: _as(v, args[1] if args else Any) for k, v in value.items()}
    raise NotAsGiven(tp)


def typed_as_given(data: Mapping[str, Any], schema: type) -> Any:
    """``schema(**data)`` when every value already has its field's type (what a composed YAML
    config gives): the same instance OmegaConf's structured merge makes, in a fraction of its
    time. ``NotAsGiven`` (or ``TypeError``) otherwise."""
    hints = _hints(schema)
    return schema(**{k: _as(v, hints[k]) for k, v in data.items()})


def to_schema(node: Any, schema: type, prefix: str) -> Any:
    """Check ``node`` (a DictConfig or mapping) against dataclass ``schema``; return an instance.

    Errors name the full dotted key (``prefix.key``) and what is allowed.
    """
    from omegaconf import DictConfig, OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    fields = {f.name: f for f in dataclasses.fields(schema)}
    data = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node
    if not isinstance(data or {}, Mapping):
        raise UsageError(f"{prefix}={data}: expected a group of keys ({prefix}.KEY=VALUE)")
    data = dict(data or {})
    for key in data:
        if key not in fields:
            hint = allowed(key, sorted(fields), "allowed keys", f"{prefix}.")
            raise UsageError(f"{prefix}.{key}: unknown key; {hint}")
    try:
        obj = typed_as_given(data, schema)
    except (NotAsGiven, TypeError):
        obj = None
    try:
        if obj is None:  # OmegaConf converts (``"0.1"`` for a float) or says what is wrong
            obj = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), data))
    except OmegaConfBaseException as e:
        name = re.split(r"[.[]", str(getattr(e, "full_key", "") or ""))[0]  # "hidden[1]" too
        f = fields.get(name)
        want = _type_text(f.type if not isinstance(f.type, str) else _resolve(schema, name))
        got = data.get(name, "?") if f else "?"
        raise UsageError(f"{prefix}.{name}={got}: wrong type; expected {want}") from None
    for name, f in fields.items():
        check_value(f"{prefix}.{name}", getattr(obj, name), f.metadata)
    post = getattr(obj, "validate", None)
    if callable(post):
        post(prefix)
    return obj


def _resolve(schema: type, name: str) -> Any:
    import typing

    return typing.get_type_hints(schema).get(name, str)


@dataclasses.dataclass
class Entry:
    name: str
    schema: type
    builder: Callable[..., Any]
    task: str | None = None  # the objective the option brings (a model's, a dataset's)


class Registry(Generic[F]):
    """Option name -> (schema, builder) for one config group.

    With ``package``, every module of that package is imported on the first lookup, so a
    module that registers options is found by being there (one file per model family, per
    dataset, per augmentation kind): no list of modules to keep in step.
    """

    def __init__(self, group: str, package: str | None = None) -> None:
        self.group = group
        self.package = package
        self._entries: dict[str, Entry] = {}

    def discover(self) -> Registry[F]:
        """Import every module of ``package`` once (each registers its options)."""
        package, self.package = self.package, None
        if package is not None:
            import pkgutil
            from importlib import import_module

            for info in pkgutil.iter_modules(import_module(package).__path__):
                import_module(f"{package}.{info.name}")
        return self

    def register(self, name: str, schema: type, task: str | None = None) -> Callable[[F], F]:
        """Register ``name``'s builder and schema; ``task`` names the objective it brings
        (``dlx.engine.objective.OBJECTIVES``): known before anything is built (a sweep's
        direction)."""

        def deco(fn: F) -> F:
            if name in self._entries:
                raise ValueError(f"{self.group}={name} registered twice")
            self._entries[name] = Entry(name, schema, fn, task)
            return fn

        return deco

    def names(self) -> list[str]:
        return sorted(self.discover()._entries)

    def __contains__(self, name: str) -> bool:
        return name in self.discover()._entries

    def get(self, name: str) -> Entry:
        self.discover()
        try:
            return self._entries[name]
        except KeyError:
            hint = allowed(name, self.names())
            raise UsageError(f"{self.group}={name}: unknown option; {hint}") from None

    def parse(self, node: Any, name: str | None = None, prefix: str | None = None) -> Any:
        """The schema instance for ``node``; its option is ``name`` or ``node.name``. A node
        parsed already (a ``RunSpec``'s part) is returned as it is."""
        if dataclasses.is_dataclass(node) and not isinstance(node, type):
            return node
        name = name if name is not None else node["name"]
        return to_schema(node, self.get(name).schema, prefix or self.group)

    def build(self, node: Any, *args: Any, **kwargs: Any) -> Any:
        """Parse ``node`` (option from its ``name`` key) and call the builder with it."""
        cfg = self.parse(node)
        return self.get(cfg.name).builder(cfg, *args, **kwargs)
