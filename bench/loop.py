"""Per-step cost of ``dlx train`` against a bare PyTorch loop on the same model, data, batch.

Both sides train LeNet-5 on the bundled digits (32x32, batch 64) with Adam on the CPU. The
bare loop is what one writes by hand: shuffle, slice, normalise, forward, loss, backward,
step. dlx's figure is its own ``samples_per_s`` from summary.json (time inside the training
steps, validation excluded).

A shared VM's speed drifts by tens of percent from one minute to the next, far more than the
difference measured here, so the two are measured in pairs run back to back (in alternating
order) and the ratio is taken within each pair: the drift cancels, and the median pair ratio
is reported with its quartiles.

The same pairs with a linear model in place of LeNet (nearly no compute: a step is mostly the
loop around it) give dlx's fixed cost per step in µs, whatever the model; over the bare
LeNet step it gives a second, less noisy estimate of the ratio (``implied_lenet_ratio``).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F


def linear(node: object, info: object) -> torch.nn.Module:
    """A linear classifier on the pixels: nearly no compute, so a step is mostly loop."""
    c, size = info.channels, info.image_size  # type: ignore[attr-defined]
    return torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(c * size * size, info.num_classes)
    )  # type: ignore[attr-defined]


def bare_loop(epochs: int, batch_size: int, make_model: Callable | None = None) -> float:
    """Samples per second of a hand-written loop over the same in-memory digits."""
    from dlx.commands.runs import compose
    from dlx.data import build_data
    from dlx.models import build_model

    cfg = compose([f"data.batch_size={batch_size}"])
    torch.manual_seed(0)
    data = build_data(cfg.data, torch.device("cpu"))
    model = (make_model or build_model)(cfg.model, data.info)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x_all, y_all = data.splits["train"]
    mean, std = data.info.mean[0], data.info.std[0]
    n = len(y_all) // batch_size * batch_size
    seen, elapsed = 0, 0.0
    for epoch in range(epochs):
        order = torch.randperm(len(y_all), generator=torch.Generator().manual_seed(epoch))
        t0 = time.perf_counter()
        for i in range(0, n, batch_size):
            idx = order[i : i + batch_size]
            x = (x_all[idx].float() / 255 - mean) / std
            loss = F.cross_entropy(model(x), y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        loss.item()
        elapsed += time.perf_counter() - t0
        seen += n
    return seen / elapsed


def dlx_loop(epochs: int, batch_size: int, make_model: Callable | None = None) -> float:
    """Samples per second inside dlx's training steps (its own summary figure)."""
    import dlx.engine.build
    import dlx.engine.loop
    from dlx.commands.runs import compose

    cfg = compose(
        [
            f"data.batch_size={batch_size}",
            f"trainer.max_epochs={epochs}",
            "trainer.limit_val_batches=1",
            "trainer.progress=false",
        ]
    )
    catalogue = dlx.engine.build.model_of  # the one place a run's model is built
    dlx.engine.build.model_of = make_model or catalogue
    try:
        with tempfile.TemporaryDirectory() as d:
            summary = dlx.engine.loop.run(cfg, Path(d), quiet=True)
    finally:
        dlx.engine.build.model_of = catalogue
    return summary["samples_per_s"]


def pairs(
    repeats: int, epochs: int, batch_size: int, make_model: Callable | None = None
) -> tuple[list[float], list[float]]:
    """Step times in µs of the bare loop and of dlx, measured back to back in alternating
    order (a steady drift favours neither side)."""
    bare_loop(1, batch_size, make_model)  # warm up allocator and kernels
    dlx_loop(1, batch_size, make_model)
    bare, ours = [], []
    for r in range(repeats):
        if r % 2:
            d, b = (
                dlx_loop(epochs, batch_size, make_model),
                bare_loop(epochs, batch_size, make_model),
            )
        else:
            b, d = (
                bare_loop(epochs, batch_size, make_model),
                dlx_loop(epochs, batch_size, make_model),
            )
        bare.append(1e6 * batch_size / b)
        ours.append(1e6 * batch_size / d)
    return bare, ours


def measure(repeats: int = 31, epochs: int = 3, batch_size: int = 64) -> dict[str, float]:
    """LeNet pairs (the target's figure) and linear-model pairs (dlx's fixed cost per step)."""
    bare, ours = pairs(repeats, epochs, batch_size)
    q1, median, q3 = statistics.quantiles([d / b for b, d in zip(bare, ours)], n=4)
    lin_bare, lin_ours = pairs(repeats // 2, 3 * epochs, batch_size, linear)
    fixed_us = statistics.median([d - b for b, d in zip(lin_bare, lin_ours)])
    bare_us = statistics.median(bare)
    return {
        "bare_step_ms": bare_us / 1000,
        "dlx_step_ms": statistics.median(ours) / 1000,
        "dlx_step_time_ratio": median,  # the median of the pairs' dlx / bare step time
        "dlx_step_time_ratio_q1": q1,
        "dlx_step_time_ratio_q3": q3,
        "pairs": repeats,
        "linear_bare_step_us": statistics.median(lin_bare),
        "dlx_fixed_cost_us": fixed_us,  # what dlx adds per step, whatever the model
        "implied_lenet_ratio": 1 + fixed_us / bare_us,
    }


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--repeats", type=int, default=31)
    p.add_argument("--epochs", type=int, default=3)
    args = p.parse_args()
    print(measure(args.repeats, args.epochs))
