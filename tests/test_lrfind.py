"""``dlx lr-find``: the range test stops where a model with a known divergence point diverges,
the suggestion (fastai's minimum / 10) lies in a known problem's good range and never among
the first points, and the command leaves a CSV and a PNG."""

from __future__ import annotations

import csv
import itertools
import math
import re
from pathlib import Path

import pytest
import torch

from dlx.commands.lrfind import Curve, RangeTest, range_test, suggest


def quadratic():
    """Full-batch gradient descent on least squares: it diverges exactly for lr > 2/λmax."""
    g = torch.Generator().manual_seed(0)
    scale = torch.linspace(0.5, 2, 8, dtype=torch.float64)
    X = torch.randn(256, 8, generator=g, dtype=torch.float64) * scale
    y = X @ torch.randn(8, generator=g, dtype=torch.float64)
    y += 0.1 * torch.randn(256, generator=g, dtype=torch.float64)
    lam = torch.linalg.eigvalsh(X.T @ X / len(X)).max().item()
    w = torch.zeros(8, dtype=torch.float64)

    def step(lr: float) -> float:
        nonlocal w
        r = X @ w - y
        loss = 0.5 * r.square().mean().item()
        w = w - lr * (X.T @ r / len(X))
        return loss

    return step, 2 / lam


def test_lr_grows_exponentially_between_the_bounds():
    test = RangeTest(min_lr=1e-5, max_lr=1.0, steps=6)
    lrs = [test.lr(i) for i in range(6)]
    assert lrs[0] == pytest.approx(1e-5) and lrs[-1] == pytest.approx(1.0)
    ratios = [b / a for a, b in itertools.pairwise(lrs)]
    assert ratios == pytest.approx([10.0] * 5)


def test_stops_past_the_known_divergence_point():
    step, critical = quadratic()
    curve = range_test(step, RangeTest(min_lr=1e-4, max_lr=10.0, steps=300))
    assert curve.stop.startswith("diverged at lr")
    # never before the lr where gradient descent starts to diverge, and soon after it (the
    # smoothing lags a few dozen steps of 4% lr growth each)
    assert critical < curve.lrs[-1] < 8 * critical
    assert curve.lrs[-1] < 10.0
    assert curve.losses[-1] > 100 * min(curve.losses)
    assert suggest(curve) < critical


def test_below_the_divergence_point_it_runs_to_max_lr():
    step, critical = quadratic()
    curve = range_test(step, RangeTest(min_lr=1e-4, max_lr=0.9 * critical, steps=100))
    assert curve.stop == "reached --max-lr" and len(curve.lrs) == 100


def test_smoothing_is_a_bias_corrected_moving_average():
    losses = iter([4.0, 2.0, 1.0])
    curve = range_test(lambda lr: next(losses), RangeTest(steps=3, beta=0.5, diverge=1e9))
    # avg_1 = 2, avg_2 = 2, avg_3 = 1.5; corrected by 1 - 0.5^t
    assert curve.smoothed == pytest.approx([4.0, 2 / 0.75, 1.5 / 0.875])


def test_non_finite_loss_ends_the_test():
    losses = iter([2.0, 1.0, math.nan, 0.5])
    curve = range_test(lambda lr: next(losses), RangeTest(steps=4))
    assert "non-finite" in curve.stop and curve.losses == [2.0, 1.0]


def test_suggestion_is_a_tenth_of_the_minimum():
    """fastai's ``minimum`` rule: the tested lr nearest to a tenth of the minimum's lr."""
    lrs = [10 ** (-6 + 0.05 * i) for i in range(121)]  # 1e-6 … 1
    # falls fastest at 1e-3, bottoms out at 1e-1, then rises steeply
    smoothed = [
        1 - math.tanh(math.log10(lr / 1e-3)) + (5 * math.log10(lr / 1e-1) ** 2 if lr > 0.1 else 0)
        for lr in lrs
    ]
    curve = Curve(lrs=lrs, losses=smoothed, smoothed=smoothed)
    assert suggest(curve) == pytest.approx(1e-2, rel=1e-6)
    assert suggest(Curve(lrs=[1e-3, 1e-2], losses=[1, 2], smoothed=[1, 2])) is None


def test_the_first_points_are_never_suggested():
    """A curve lowest at its start (a smoothing artefact), or whose minimum is so early that a
    tenth of it lies among the first points, gets no suggestion rather than the range's start."""
    lrs = [10 ** (-7 + 0.03 * i) for i in range(200)]
    rising = [1.0 + 0.001 * i for i in range(200)]
    assert suggest(Curve(lrs=lrs, losses=rising, smoothed=rising)) is None
    early = [abs(i - 20) * 0.01 + 1 for i in range(200)]  # lowest at point 20: 1/10 is point -13
    assert suggest(Curve(lrs=lrs, losses=early, smoothed=early)) is None


def noisy_least_squares(seed: int):
    """Mini-batch SGD (16 rows) on noisy least squares: the good lrs are known, up to the
    divergence point 2/λmax and down to about 1/100 of it; the loss is flat and noisy over the
    many decades below (the first points' smoothed slope is noise)."""
    g = torch.Generator().manual_seed(seed)
    scale = torch.linspace(0.5, 2, 8, dtype=torch.float64)
    X = torch.randn(4096, 8, generator=g, dtype=torch.float64) * scale
    y = X @ torch.randn(8, generator=g, dtype=torch.float64)
    y += 0.5 * torch.randn(4096, generator=g, dtype=torch.float64)
    lam = torch.linalg.eigvalsh(X.T @ X / len(X)).max().item()
    w = torch.zeros(8, dtype=torch.float64)

    def step(lr: float) -> float:
        nonlocal w
        i = torch.randint(0, len(X), (16,), generator=g)
        r = X[i] @ w - y[i]
        loss = 0.5 * r.square().mean().item()
        w = w - lr * (X[i].T @ r / 16)
        return loss

    return step, 2 / lam


@pytest.mark.parametrize("seed", range(4))
def test_suggestion_lies_in_the_known_good_range(seed):
    """On the noisy problem the old steepest-descent rule suggested the range's first points
    (1e-7, six decades too small); the suggestion lies within [2/λmax / 100, 2/λmax]."""
    step, critical = noisy_least_squares(seed)
    curve = range_test(step, RangeTest(min_lr=1e-7, max_lr=10.0, steps=300))
    s = suggest(curve)
    assert s is not None and critical / 100 < s < critical, (s, critical)


def test_cli_writes_curve_and_suggests(dlx, tmp_path: Path):
    out = tmp_path / "lr"
    r = dlx("lr-find", "--steps", "60", "--min-lr=1e-5", "--out", str(out), "data.batch_size=16")
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader((out / "lr_find.csv").open()))
    assert list(rows[0]) == ["step", "lr", "loss", "smoothed_loss"]
    assert 3 <= len(rows) <= 60 and float(rows[0]["lr"]) == pytest.approx(1e-5)
    lrs = [float(row["lr"]) for row in rows]
    assert lrs == sorted(lrs)
    m = re.search(r"suggested lr: ([0-9.e+-]+)", r.stdout)
    assert m, r.stdout
    assert any(math.isclose(float(m.group(1)), lr, rel_tol=5e-3) for lr in lrs[10:])
    assert "fastai's 'minimum' rule" in r.stdout
    assert f"optim.lr={m.group(1)}" in r.stdout and "data.batch_size=16" in r.stdout
    assert (out / "lr_find.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (tmp_path / "outputs").exists()  # no run dir, no config written


def test_cli_default_dir_and_bad_input(dlx):
    r = dlx("lr-find", "--steps", "5", "data.batch_size=16")
    assert r.returncode == 0, r.stderr
    (found,) = (dlx.cwd / "outputs" / "lr_find").glob("*/lr_find.csv")
    assert str(found.parent.relative_to(dlx.cwd)) in r.stdout
    for args, key in [
        (["--steps", "2"], "--steps=2"),
        (["--min-lr", "1", "--max-lr", "0.1"], "--max-lr=0.1"),
        (["--max-lr", "lots"], "--max-lr=lots"),
        (["--warmup", "3"], "--warmup"),
        (["optim.lrr=1"], "optim.lrr"),
    ]:
        bad = dlx("lr-find", *args)
        assert bad.returncode == 2, (args, bad.stderr)
        assert key in bad.stderr and "Traceback" not in bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1, bad.stderr
