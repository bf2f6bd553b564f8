"""Verdicts under repeated looks: a group-sequential design, and Holm's correction across claims.

``dlx study … study.until_settled=true`` looks at the data after every round of seeds; testing
each look at α would let chance cross the line in one of them. Instead each look spends part of
α by the Lan-DeMets O'Brien-Fleming-type spending function
``α(t) = 2 - 2Φ(z_{1-α/2} / √t)`` at information fraction ``t = n_look / max_seeds``
(Lan & DeMets 1983, Biometrika 70:659; O'Brien & Fleming 1979, Biometrics 35:549): the
boundaries ``c_k`` solve ``P(Z_1 < c_1, …, Z_k < c_k) = 1 - α(t_k)`` for the look statistics'
joint normal law (``corr(Z_i, Z_j) = √(t_i / t_j)``, ``scipy.stats.multivariate_normal``), and a
claim's one-sided p at look k is compared with ``1 - Φ(c_k)``. Early looks get a tiny share,
the last nearly all of α; with one look (a fixed number of seeds) the boundary is α itself.

Several claims: Holm's step-down at each look, each step against the boundary at level
``α / (claims not yet settled that way)`` -- valid across looks (Maurer & Bretz 2013, Stat.
Biopharm. Res. 5:311). ``supported`` (the claimed direction) and ``contradicted`` (the other)
are two such families; a settled claim keeps its verdict.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy import optimize, stats

SUPPORTED, CONTRADICTED, INCONCLUSIVE = "supported", "contradicted", "inconclusive"
#: verdict codes in the arrays below
OPEN, UP, DOWN = 0, 1, 2
WORDS = {OPEN: INCONCLUSIVE, UP: SUPPORTED, DOWN: CONTRADICTED}


def spent(t: float, alpha: float) -> float:
    """α spent by information fraction ``t`` (Lan-DeMets, O'Brien-Fleming type, one-sided)."""
    return float(2 * stats.norm.sf(stats.norm.isf(alpha / 2) / math.sqrt(t)))


#: points of the grid the look statistics' densities are integrated on
GRID = 2001
#: where the grid starts (a standard normal below it carries no mass that matters)
FLOOR = -10.0


@lru_cache(maxsize=256)
def boundaries(fractions: tuple[float, ...], alpha: float) -> tuple[float, ...]:
    """The nominal one-sided p each look is tested at, for looks at ``fractions`` (increasing,
    the last 1) with ``alpha`` spent in all: the z boundaries by the Armitage-McPherson-Rowe
    recursion (the density of the statistic on the continuation region, look by look,
    integrated numerically; Jennison & Turnbull 2000, ch. 19)."""
    if len(fractions) == 1:  # one look, a fixed number of seeds: alpha itself
        return (alpha,)
    zs: list[float] = []
    grid = dens = np.empty(0)
    for k, t in enumerate(fractions):
        share = spent(t, alpha) - (spent(fractions[k - 1], alpha) if k else 0.0)
        if k == 0:
            c = float(stats.norm.isf(share))
            grid = np.linspace(FLOOR, c, GRID)
            dens = stats.norm.pdf(grid)
        else:
            before, step = fractions[k - 1], t - fractions[k - 1]

            def crossing(
                c: float, grid=grid, dens=dens, before=before, step=step, t=t, share=share
            ) -> float:
                moved = (c * math.sqrt(t) - grid * math.sqrt(before)) / math.sqrt(step)
                return float(np.trapezoid(dens * stats.norm.sf(moved), grid)) - share

            c = float(optimize.brentq(crossing, FLOOR, 40.0, xtol=1e-10))
            new = np.linspace(FLOOR, c, GRID)
            moved = (new[:, None] * math.sqrt(t) - grid[None, :] * math.sqrt(before)) / math.sqrt(
                step
            )
            kernel = stats.norm.pdf(moved) * math.sqrt(t / step)
            grid, dens = new, np.trapezoid(kernel * dens[None, :], grid, axis=1)
        zs.append(c)
    return tuple(float(stats.norm.sf(z)) for z in zs)


def looks(start: int, max_seeds: int, step: int) -> list[int]:
    """Seeds per group at each look: ``start``, then ``step`` more a round up to ``max_seeds``."""
    return [*range(start, max_seeds, step), max_seeds] if max_seeds > start else [start]


def fractions_of(ns: list[int]) -> tuple[float, ...]:
    return tuple(n / ns[-1] for n in ns)


def step_down(p: np.ndarray, done: np.ndarray, level_bound) -> np.ndarray:
    """Holm's step-down at one look over the last axis (claims): which open claims are
    rejected. ``p``: their one-sided p; ``done``: already rejected at an earlier look;
    ``level_bound(level)``: the p boundary at this look for a family level."""
    m = p.shape[-1]
    rejected = done.copy()
    for _ in range(m):
        left = m - rejected.sum(axis=-1, keepdims=True)
        bound = np.vectorize(level_bound, otypes=[float])(np.maximum(left, 1))
        candidate = np.where(rejected, np.inf, p)
        best = candidate.argmin(axis=-1)[..., None]
        smallest = np.take_along_axis(candidate, best, axis=-1)
        grow = (smallest <= bound) & (left > 0)
        if not grow.any():
            break
        np.put_along_axis(rejected, best, np.take_along_axis(rejected, best, -1) | grow, -1)
    return rejected


def settle(
    p_claim: np.ndarray, p_other: np.ndarray, fractions: tuple[float, ...], alpha: float
) -> tuple[np.ndarray, np.ndarray]:
    """The verdicts after the looks so far. ``p_claim``/``p_other``: shape (looks, …, claims),
    one-sided p in the claimed direction and the other way at each look; ``fractions``: every
    planned look's (the first ``len(p_claim)`` have happened). Returns each claim's code
    (``OPEN``/``UP``/``DOWN``) and the look it was settled at (-1: open)."""
    shape = p_claim.shape[1:]
    code = np.full(shape, OPEN)
    at = np.full(shape, -1)
    for k in range(p_claim.shape[0]):

        def bound(family: float, k: int = k) -> float:
            return boundaries(fractions, alpha / family)[k]

        up = step_down(np.where(code == DOWN, np.inf, p_claim[k]), code == UP, bound)
        down = step_down(np.where(code == UP, np.inf, p_other[k]), code == DOWN, bound)
        new_up, new_down = up & (code == OPEN), down & (code == OPEN) & ~up
        code = np.where(new_up, UP, np.where(new_down, DOWN, code))
        at = np.where(new_up | new_down, k, at)
    return code, at
