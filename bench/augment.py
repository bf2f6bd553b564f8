"""Augmentation speed: what ``augment=standard`` costs a LeNet step on digits, and batched
throughput against the same transforms done per sample with PIL through a DataLoader.

    python bench/augment.py [--json PATH] [--steps 200] [--images 8192]

Targets: the augmentation's cost <= 5% of a training step (LeNet, digits, batch 64, 32x32x1,
CPU); batched ``standard`` >= 10x the samples/s of PIL per sample with 2 loader workers.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf
from rich.console import Console
from rich.table import Table

from dlx.augment import build_augment
from dlx.data import build_data
from dlx.engine.inputs import Inputs
from dlx.engine.objective import Objective
from dlx.models import build_model

STANDARD = OmegaConf.load(
    Path(__file__).resolve().parents[1] / "src/dlx/conf/augment/standard.yaml"
)


def _interleaved(fns: dict, repeat: int, rounds: int = 7) -> dict[str, float]:
    """Seconds per call of each of ``fns``: the median of ``rounds`` rounds of ``repeat``
    calls, the functions taking turns within each round (after a warm-up), so that load
    from other processes falls on all of them alike."""
    for fn in fns.values():
        for _ in range(min(repeat, 10)):
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            t = time.perf_counter()
            for _ in range(repeat):
                fn()
            times[k].append((time.perf_counter() - t) / repeat)
    return {k: sorted(v)[rounds // 2] for k, v in times.items()}


def step_cost(steps: int) -> dict[str, float]:
    """LeNet training step on digits (batch 64) with and without ``standard``; and the
    augmentation alone on the same batch."""
    device = torch.device("cpu")
    data = build_data(OmegaConf.create({"name": "digits", "batch_size": 64}), device)
    info = data.info
    xb, yb = next(iter(data.batches("train", shuffle=True, seed=0, drop_last=True)))
    model = build_model(OmegaConf.create({"name": "lenet"}), info)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    inputs, objective = Inputs(info, device, False), Objective(info)
    aug = build_augment(STANDARD, info, device, seed=0)

    def step(augment=None) -> None:
        x, y = inputs(xb, yb, augment)
        loss = objective.loss(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    # "alone" is what training runs: the uint8 batch in, floats out (the plain step does
    # that conversion too, so this overstates the cost a little)
    t = _interleaved(
        {"plain": step, "with": lambda: step(aug), "alone": lambda: aug(xb, yb)}, steps
    )
    plain, with_aug, alone = t["plain"], t["with"], t["alone"]
    return {
        "step_ms": plain * 1e3,
        "step_with_standard_ms": with_aug * 1e3,
        "standard_alone_ms": alone * 1e3,
        "cost_pct": 100 * alone / plain,
        "ab_difference_pct": 100 * (with_aug - plain) / plain,
    }


class _PilImages(torch.utils.data.Dataset):
    """``n`` random 32x32 RGB PIL images through torchvision's per-sample standard recipe."""

    def __init__(self, n: int) -> None:
        from PIL import Image
        from torchvision import transforms as T

        g = torch.Generator().manual_seed(0)
        arr = torch.randint(0, 256, (n, 32, 32, 3), dtype=torch.uint8, generator=g).numpy()
        self.images = [Image.fromarray(a) for a in arr]
        self.t = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.PILToTensor()])

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.t(self.images[i]), 0


def throughput(n: int, batch: int = 256) -> dict[str, float]:
    """Samples/s of batched ``standard`` on 32x32x3 vs PIL per sample with 2 workers.

    Batched: as training runs it, uint8 batches in (crop + flip as one gather on the bytes),
    floats in [0, 1] out, in the main process with torch's intra-op threads; PIL: the same
    transforms per sample in 2 DataLoader worker processes. Medians of 5 passes each, the two
    taking turns.
    """
    from dlx.data.base import DataInfo

    info = DataInfo("bench", "image", 10, channels=3, image_size=32)
    aug = build_augment(STANDARD, info, torch.device("cpu"), seed=0)
    x = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8)
    y = torch.zeros(n, dtype=torch.long)

    def batched() -> None:
        for i in range(0, n, batch):
            aug(x[i : i + batch], y[i : i + batch])

    loader = torch.utils.data.DataLoader(
        _PilImages(n), batch_size=batch, num_workers=2, persistent_workers=True
    )

    def per_sample() -> None:
        for _ in loader:
            pass

    t = _interleaved({"batched": batched, "pil": per_sample}, repeat=1, rounds=5)
    fast, slow = n / t["batched"], n / t["pil"]
    return {
        "batched_samples_per_s": fast,
        "pil_loader_samples_per_s": slow,
        "speedup": fast / slow,
        "torch_threads": torch.get_num_threads(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, help="write the figures here")
    ap.add_argument("--steps", type=int, default=100, help="steps per timing round")
    ap.add_argument("--images", type=int, default=8192, help="images for the throughput")
    args = ap.parse_args()
    torch.manual_seed(0)
    cost, speed = step_cost(args.steps), throughput(args.images)

    table = Table(title="augment=standard (CPU)")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    table.add_row("LeNet step, digits b64 (ms)", f"{cost['step_ms']:.2f}", "")
    table.add_row("  with standard (ms)", f"{cost['step_with_standard_ms']:.2f}", "")
    table.add_row("standard alone, b64 (ms)", f"{cost['standard_alone_ms']:.3f}", "")
    table.add_row("augmentation cost (% of step)", f"{cost['cost_pct']:.1f}", "<= 5")
    table.add_row("  step A/B difference (%)", f"{cost['ab_difference_pct']:.1f}", "")
    table.add_row("batched, 32x32x3 (samples/s)", f"{speed['batched_samples_per_s']:,.0f}", "")
    table.add_row("PIL, 2 workers (samples/s)", f"{speed['pil_loader_samples_per_s']:,.0f}", "")
    table.add_row("speed-up", f"{speed['speedup']:.1f}x", ">= 10x")
    Console().print(table)
    load = os.getloadavg()[0]
    Console().print(f"torch threads {torch.get_num_threads()}, load average (1 min) {load:.2f}")
    if args.json:
        figures = {**cost, **speed, "load_avg_1min": load}
        args.json.write_text(json.dumps({"augment": figures}, indent=2) + "\n")


if __name__ == "__main__":
    main()
