"""The search space: Hydra's sweep syntax as Optuna distributions, the grid sampler's grid,
and a sampled value written back as an override.

Choices keep their type (``choice(-5, 0, 5)`` samples the ints -5, 0, 5; ``choice(true,
false)`` bools), as the published hydra-optuna-sweeper does. One deliberate difference:
``range(lo, hi, step)`` excludes ``hi``, as it does in Hydra's own basic sweeper and Python.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import (
    ChoiceSweep,
    IntervalSweep,
    Override,
    RangeSweep,
    Transformer,
)
from hydra.utils import get_method
from omegaconf import DictConfig
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from dlx.errors import UsageError

#: the types an Optuna categorical keeps as they are (anything else goes in as its text)
PLAIN = (str, int, float, bool, type(None))


def _choices(override: Override) -> CategoricalDistribution:
    values = override.sweep_iterator(transformer=Transformer.encode)
    return CategoricalDistribution([x if isinstance(x, PLAIN) else str(x) for x in values])


def distribution(override: Override) -> BaseDistribution:
    """The Optuna distribution of one sweep override: ``a,b`` and ``choice(a,b)`` (and
    ``shuffle(range(…))``) are categorical, ``range(lo,hi[,step])`` is discrete with ``hi``
    excluded, ``interval(lo,hi)`` is continuous (integer with ``int(…)`` or ``tag(int, …)``),
    ``tag(log, …)`` makes it log-scaled."""
    value = override.value()
    log_scale = "log" in getattr(value, "tags", set())
    if isinstance(value, ChoiceSweep) or (isinstance(value, RangeSweep) and value.shuffle):
        return _choices(override)
    key = override.input_line or override.get_key_element()
    if isinstance(value, RangeSweep):
        start, stop, step = value.start, value.stop, value.step
        check_bounds(key, start, stop - step if step else stop, log_scale, step)
        if all(isinstance(x, int) for x in (start, stop, step)):
            return IntDistribution(int(start), int(stop) - int(step), step=int(step), log=log_scale)
        return FloatDistribution(float(start), float(stop) - float(step), step=float(step))
    if isinstance(value, IntervalSweep):
        lo, hi = value.start, value.end
        check_bounds(key, lo, hi, log_scale)
        if "int" in value.tags or (isinstance(lo, int) and isinstance(hi, int)):
            return IntDistribution(int(lo), int(hi), log=log_scale)
        return FloatDistribution(float(lo), float(hi), log=log_scale)
    raise UsageError(f"{key}: not a sweep Optuna understands")


def check_bounds(key: str, lo: Any, hi: Any, log_scale: bool, step: Any = None) -> None:
    """A search range Optuna can sample: finite, low below high (an empty or inverted range
    is refused, not sampled as one point), a positive step, positive bounds on a log scale."""
    if not all(isinstance(v, int | float) and math.isfinite(v) for v in (lo, hi)):
        raise UsageError(f"{key}: the bounds must be finite numbers")
    if step is not None and not step > 0:
        raise UsageError(f"{key}: the step must be positive")
    if not lo < hi if step is None else not lo <= hi:
        raise UsageError(f"{key}: empty or inverted range; give it as (low, high) with low < high")
    if log_scale and lo <= 0:
        raise UsageError(f"{key}: a log scale needs bounds above 0")


def search_space(
    params: dict[str, str] | None, arguments: Sequence[str], parser: OverridesParser
) -> tuple[dict[str, BaseDistribution], list[str]]:
    """The distributions to sample and the fixed overrides every trial gets.

    ``params`` (the config's search space) come first; a command-line argument for the same
    key replaces it, so the command line extends or narrows a preset's space.
    """
    by_key: dict[str, Override] = {}
    lines = [f"{k}={v}" for k, v in (params or {}).items()]
    for ov in parser.parse_overrides([*lines, *arguments]):
        by_key[ov.get_key_element()] = ov
    space: dict[str, BaseDistribution] = {}
    fixed: list[str] = []
    for key, ov in by_key.items():
        if ov.is_sweep_override():
            space[key] = distribution(ov)
        else:
            fixed.append(ov.input_line or f"{key}={ov.get_value_element_as_str()}")
    return space, fixed


def grid_values(dist: BaseDistribution) -> list[Any]:
    """Every value of a discrete distribution (a ``range``'s steps, a ``choice``'s items)."""
    if isinstance(dist, CategoricalDistribution):
        return list(dist.choices)
    if isinstance(dist, IntDistribution) and not dist.log:
        return list(range(dist.low, dist.high + 1, dist.step))
    if isinstance(dist, FloatDistribution) and dist.step is not None:
        n = round((dist.high - dist.low) / dist.step) + 1
        return [round(dist.low + i * dist.step, 12) for i in range(n)]
    raise ValueError("an interval has no grid")


def grid(space: dict[str, BaseDistribution]) -> dict[str, list[Any]]:
    """The grid sampler's search space: every key's values; an interval is refused by key."""
    values = {}
    for k, d in space.items():
        try:
            values[k] = grid_values(d)
        except ValueError:
            raise UsageError(
                f"{k}: hydra/sweeper/sampler=grid takes choice and range params only (an "
                "interval has no grid); sample an interval with sweep=random or sweep=tpe"
            ) from None
    return values


def override_value(value: Any) -> str:
    """A sampled value as Hydra's override grammar reads it back with its type."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)


def custom_space(path: str) -> Callable[[DictConfig, optuna.Trial], None]:
    """``hydra.sweeper.custom_search_space``: the function at ``module.function``."""
    try:
        return get_method(path)
    except Exception as e:
        raise UsageError(
            f"hydra.sweeper.custom_search_space={path}: cannot import it "
            f"({str(e).splitlines()[0]}); give module.function"
        ) from None
