"""Training throughput on a GPU: images/s and model FLOP utilisation (MFU) of LeNet, VGG-11
and ResNet-18 (CIFAR stem) on CIFAR-shaped 3x32x32 data, under each of precision,
channels_last and torch.compile, for dlx and for a bare loop doing the same work.

    python bench/gpu.py [--batch 512] [--epochs 3] [--models lenet,vgg11,resnet18]
                        [--peak-tflops 989] [--json PATH] [--device cuda]

Both sides train on ``data=synthetic`` held on the device. dlx's figure is the median of its
``perf/samples_per_s`` log windows after the first epoch (which pays for compilation and
cudnn autotuning); the bare loop is timed the same way, after one warm-up epoch. MFU counts
3 x 2 x forward MACs per image (forward + backward) against ``--peak-tflops`` (H100/H200 SXM
dense bf16: 989). On a machine without CUDA it says so and stops, unless ``--device cpu``
(a smoke run of the script itself).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

MODELS = {
    "lenet": ["model=lenet"],
    "vgg11": ["model=vgg", "model.arch=vgg11", "model.norm=batch", "model.classifier_width=512"],
    "resnet18": ["model=resnet", "model.arch=resnet18", "model.stem=cifar"],
}
SETTINGS = {
    "fp32": [],
    "bf16": ["trainer.precision=bf16-mixed"],
    "bf16+cl": ["trainer.precision=bf16-mixed", "trainer.channels_last=true"],
    "bf16+cl+compile": [
        "trainer.precision=bf16-mixed",
        "trainer.channels_last=true",
        "trainer.compile=true",
    ],
}


def overrides(model: str, setting: str, batch: int, epochs: int, device: str, n: int) -> list[str]:
    return [
        *MODELS[model],
        *SETTINGS[setting],
        "data=synthetic",
        f"data.batch_size={batch}",
        f"data.num_train={n}",
        "data.num_val=512",
        "data.num_test=512",
        f"trainer.max_epochs={epochs}",
        f"trainer.device={device}",
        "trainer.progress=false",
        "trainer.log_every_n_steps=10",
    ]


def dlx_images_per_s(args: list[str], steps_per_epoch: int) -> float:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from dlx.commands.runs import compose
    from dlx.engine.loop import run

    with tempfile.TemporaryDirectory() as d:
        summary = run(compose(args), Path(d), quiet=True)
        if summary["status"] != "completed":
            raise RuntimeError(f"dlx run {summary['status']}: {summary.get('error')}")
        acc = EventAccumulator(d, size_guidance={"scalars": 0})
        acc.Reload()
        windows = [e.value for e in acc.Scalars("perf/samples_per_s") if e.step > steps_per_epoch]
    return statistics.median(windows)


def bare_images_per_s(args: list[str], epochs: int) -> float:
    """The same model, data, batch and settings in a hand-written loop."""
    from dlx.commands.runs import compose
    from dlx.data import build_data
    from dlx.models import build_model

    cfg = compose(args)
    t = cfg.trainer
    device = torch.device(t.device)
    data = build_data(cfg.data, device)
    model = build_model(cfg.model, data.info).to(device)
    fmt = torch.channels_last if t.channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    step_model = torch.compile(model) if t.compile else model
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    dtype = {"32": None, "bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}[str(t.precision)]
    x_all, y_all = data.splits["train"]
    mean = torch.tensor(data.info.mean, device=device).view(1, -1, 1, 1)
    std = torch.tensor(data.info.std, device=device).view(1, -1, 1, 1)
    bs = cfg.data.batch_size
    n = len(y_all) // bs * bs
    rates = []
    for epoch in range(epochs):
        order = torch.randperm(len(y_all), device=device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for i in range(0, n, bs):
            idx = order[i : i + bs]
            x = ((x_all[idx].float() / 255 - mean) / std).contiguous(memory_format=fmt)
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                loss = F.cross_entropy(step_model(x).float(), y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        loss.item()
        if epoch > 0:  # the first epoch compiles and autotunes
            rates.append(n / (time.perf_counter() - t0))
    return statistics.median(rates)


def forward_macs(args: list[str]) -> int:
    from dlx.commands.runs import compose
    from dlx.commands.summary import model_summary
    from dlx.data import build_data
    from dlx.models import build_model

    cfg = compose([*args, "data=synthetic", "data.num_train=8", "trainer.device=cpu"])
    data = build_data(cfg.data, torch.device("cpu"))
    return model_summary(build_model(cfg.model, data.info), data.info).macs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--num-train", type=int, default=50_000)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--settings", default=",".join(SETTINGS))
    ap.add_argument("--peak-tflops", type=float, default=989.0)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--json", type=Path, default=Path("bench/results_gpu.json"))
    a = ap.parse_args()
    if a.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: the GPU benchmark needs one (use --device cpu for a smoke run)")
        return
    from rich.console import Console
    from rich.table import Table

    results = {"device": torch.cuda.get_device_name() if a.device == "cuda" else a.device}
    table = Table(title=f"dlx GPU bench: {results['device']}, batch {a.batch}, 3x32x32")
    for col in ("model", "setting", "dlx img/s", "bare img/s", "dlx/bare", "MFU"):
        table.add_column(col, justify="left" if col in ("model", "setting") else "right")
    steps = a.num_train // a.batch
    for model in a.models.split(","):
        flops_per_image = 6 * forward_macs(MODELS[model])
        for setting in a.settings.split(","):
            args = overrides(model, setting, a.batch, a.epochs, a.device, a.num_train)
            ours = dlx_images_per_s(args, steps)
            bare = bare_images_per_s(args, a.epochs)
            mfu = ours * flops_per_image / (a.peak_tflops * 1e12)
            results[f"{model}/{setting}"] = {
                "dlx_images_per_s": ours,
                "bare_images_per_s": bare,
                "dlx_over_bare": ours / bare,
                "mfu": mfu,
            }
            table.add_row(
                model,
                setting,
                f"{ours:,.0f}",
                f"{bare:,.0f}",
                f"{ours / bare:.3f}",
                f"{100 * mfu:.1f}%",
            )
    Console().print(table)
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
