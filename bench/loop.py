"""Per-step cost of ``dlx train`` against a bare PyTorch loop on the same model, data, batch.

Both sides train LeNet-5 on the bundled digits (32x32, batch 64) with Adam on the CPU. The
bare loop is what one writes by hand: shuffle, slice, normalise, forward, loss, backward,
step. dlx's figure is its own ``samples_per_s`` from summary.json (time inside the training
steps, validation excluded). The two alternate, and the median of the repeats is reported.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F


def bare_loop(epochs: int, batch_size: int, seed: int = 0) -> float:
    """Samples per second of a hand-written loop over the same in-memory digits."""
    from dlx.data import build_data
    from dlx.models import build_model
    from dlx.runs import compose

    cfg = compose([f"data.batch_size={batch_size}"])
    torch.manual_seed(seed)
    data = build_data(cfg.data, torch.device("cpu"))
    model = build_model(cfg.model, data.info)
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


def dlx_loop(epochs: int, batch_size: int) -> float:
    """Samples per second inside dlx's training steps (its own summary figure)."""
    from dlx.runs import compose
    from dlx.train import run

    cfg = compose(
        [
            f"data.batch_size={batch_size}",
            f"trainer.max_epochs={epochs}",
            "trainer.limit_val_batches=1",
            "trainer.progress=false",
        ]
    )
    with tempfile.TemporaryDirectory() as d:
        summary = run(cfg, Path(d), quiet=True)
    return summary["samples_per_s"]


def measure(repeats: int = 7, epochs: int = 20, batch_size: int = 64) -> dict[str, float]:
    bare_loop(1, batch_size)  # warm up allocator and kernels
    bare, ours = [], []
    for _ in range(repeats):
        bare.append(bare_loop(epochs, batch_size))
        ours.append(dlx_loop(epochs, batch_size))
    b, d = statistics.median(bare), statistics.median(ours)
    return {
        "bare_samples_per_s": b,
        "dlx_samples_per_s": d,
        "dlx_step_time_ratio": b / d,  # dlx step time / bare step time
        "bare_step_ms": 1000 * batch_size / b,
        "dlx_step_ms": 1000 * batch_size / d,
    }


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--epochs", type=int, default=20)
    args = p.parse_args()
    print(measure(args.repeats, args.epochs))
