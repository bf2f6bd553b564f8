"""The sweeps that ``dlx train -m`` runs, written by hand in one process: what a student would
write instead of a sweep tool, and what ``bench/sweep_cost.py`` compares dlx with.

Each trial is the job ``dlx train`` does at its defaults for one epoch: LeNet-5 on the bundled
digits at 32x32, Adam at the trial's lr (and weight decay), batches of 32 in a fresh seeded
order (the last short batch dropped), a validation pass and a test pass; the trial's objective
is its validation accuracy. The digits are read, scaled, resized and split once, as dlx does
(the same 1,347 / 180 / 270 samples); the model is dlx's own LeNet module (the same layers), so
what differs between the two sides is what surrounds the trials.

    python bench/handwritten_sweep.py grid --lr 0.003 0.001 0.0003
    python bench/handwritten_sweep.py tpe --trials 8 [--startup 5] [--seed 0]

``grid`` trains one trial per lr, one after another; ``tpe`` asks a plain
``optuna.create_study(sampler=TPESampler(...)).optimize`` for lr and weight decay (log-uniform,
the ranges of ``sweep=tpe``). Each trial's result goes to stdout as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

Splits = dict[str, tuple[torch.Tensor, torch.Tensor]]


def load_digits() -> tuple[Splits, float, float]:
    """scikit-learn's digits as uint8 32x32 images, split 75/10/15 by a seeded permutation;
    the train split's pixel mean and std."""
    from dlx.data.digits import load_digits as read_csv  # the file dlx reads, no sklearn import

    images, labels = read_csv()
    x = torch.from_numpy(np.ascontiguousarray(images)).mul(255 / 16).round().to(torch.uint8)
    x = F.interpolate(x.view(-1, 1, 8, 8).float(), size=(32, 32), mode="bilinear", antialias=True)
    x = x.round_().clamp_(0, 255).to(torch.uint8)
    y = torch.from_numpy(labels).long()
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    n_val, n_test = round(len(y) * 0.1), round(len(y) * 0.15)
    val, test, train = order[:n_val], order[n_val : n_val + n_test], order[n_val + n_test :]
    pixels = x[train].float().div(255)
    splits = {"train": (x[train], y[train]), "val": (x[val], y[val]), "test": (x[test], y[test])}
    return splits, pixels.mean().item(), pixels.std().item()


def lenet() -> nn.Module:
    """dlx's LeNet-5 for 1x32x32 inputs and 10 classes."""
    from omegaconf import OmegaConf

    from dlx.data.base import DataInfo
    from dlx.models import build_model

    info = DataInfo("digits", "image", 10, channels=1, image_size=32)
    return build_model(OmegaConf.create({"name": "lenet"}), info)


def evaluate(model: nn.Module, data: tuple[torch.Tensor, torch.Tensor], norm, bs: int) -> float:
    """Accuracy on one split, in batches of ``bs``."""
    x_all, y_all = data
    model.eval()
    correct = 0
    with torch.inference_mode():
        for i in range(0, len(y_all), bs):
            out = model(norm(x_all[i : i + bs]))
            correct += (out.argmax(1) == y_all[i : i + bs]).sum().item()
    return correct / len(y_all)


def trial(splits: Splits, mean: float, std: float, lr: float, wd: float = 0.0) -> dict:
    """One trial: a fresh seeded LeNet trained one epoch; its val and test accuracy."""
    torch.manual_seed(0)
    model = lenet()
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=wd)
    x_train, y_train = splits["train"]

    def norm(x: torch.Tensor) -> torch.Tensor:
        return (x.float() / 255 - mean) / std

    bs, t = 32, time.perf_counter()
    model.train()
    order = torch.randperm(len(y_train), generator=torch.Generator().manual_seed(0))
    for i in range(0, len(y_train) - bs + 1, bs):
        idx = order[i : i + bs]
        loss = F.cross_entropy(model(norm(x_train[idx])), y_train[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    val = evaluate(model, splits["val"], norm, 4 * bs)
    test = evaluate(model, splits["test"], norm, 4 * bs)
    return {"lr": lr, "wd": wd, "val_acc": val, "test_acc": test, "s": time.perf_counter() - t}


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="kind", required=True)
    grid = sub.add_parser("grid")
    grid.add_argument("--lr", type=float, nargs="+", required=True)
    tpe = sub.add_parser("tpe")
    tpe.add_argument("--trials", type=int, required=True)
    tpe.add_argument("--startup", type=int, default=5)
    tpe.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    splits, mean, std = load_digits()
    if args.kind == "grid":
        for lr in args.lr:
            print(json.dumps(trial(splits, mean, std, lr)), flush=True)
        return

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(t: optuna.Trial) -> float:
        lr = t.suggest_float("optim.lr", 1e-4, 1e-1, log=True)
        wd = t.suggest_float("optim.weight_decay", 1e-6, 1e-2, log=True)
        result = trial(splits, mean, std, lr, wd)
        print(json.dumps(result), flush=True)
        return result["val_acc"]

    sampler = optuna.samplers.TPESampler(n_startup_trials=args.startup, seed=args.seed)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=args.trials)


if __name__ == "__main__":
    main()
