"""The job ``dlx train`` does at its defaults, written by hand: what a user would compare with.

LeNet-5 (or ResNet-20) on the bundled digits at 32x32, Adam 1e-3, batches of 32 in a fresh
``randperm`` order each epoch (the last short batch dropped), a validation pass after every
epoch and one test pass at the end. The digits are read, scaled, resized and split as dlx does
(the same 1,347 / 180 / 270 samples) and the model is dlx's own module (the same layers and
parameters): what differs is everything around the step, which is what is measured.

    python bench/handwritten.py --epochs 12 [--batch-size 32] [--model lenet|resnet]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F


def load(batch_seed: int = 0) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], float, float]:
    """The digits as uint8 32x32 images, split 75/10/15 by a seeded permutation."""
    from dlx.data.digits import load_digits

    images, labels = load_digits()
    x = torch.from_numpy(images).mul(255 / 16).round().to(torch.uint8).view(-1, 1, 8, 8)
    x = F.interpolate(x.float(), size=(32, 32), mode="bilinear", antialias=True)
    x = x.round_().clamp_(0, 255).to(torch.uint8)
    y = torch.from_numpy(labels).long()
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    n_val, n_test = round(len(y) * 0.1), round(len(y) * 0.15)
    val, test, train = order[:n_val], order[n_val : n_val + n_test], order[n_val + n_test :]
    mean = x[train].float().div(255).mean().item()
    std = x[train].float().div(255).std().item()
    return (
        {"train": (x[train], y[train]), "val": (x[val], y[val]), "test": (x[test], y[test])},
        mean,
        std,
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--model", default="lenet")
    args = ap.parse_args()

    from omegaconf import OmegaConf

    from dlx.data.base import DataInfo
    from dlx.models import build_model

    torch.manual_seed(0)
    splits, mean, std = load()
    info = DataInfo("digits", "image", 10, channels=1, image_size=32)
    model = build_model(OmegaConf.create({"name": args.model}), info)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x_train, y_train = splits["train"]
    bs = args.batch_size

    def evaluate(split: str) -> tuple[float, float]:
        x_all, y_all = splits[split]
        model.eval()
        loss, correct = 0.0, 0
        with torch.inference_mode():
            for i in range(0, len(y_all), 4 * bs):
                x = (x_all[i : i + 4 * bs].float() / 255 - mean) / std
                out = model(x)
                loss += F.cross_entropy(out, y_all[i : i + 4 * bs], reduction="sum").item()
                correct += (out.argmax(1) == y_all[i : i + 4 * bs]).sum().item()
        return loss / len(y_all), correct / len(y_all)

    first_step = None
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(y_train), generator=torch.Generator().manual_seed(epoch))
        for i in range(0, len(y_train) - bs + 1, bs):
            idx = order[i : i + bs]
            x = (x_train[idx].float() / 255 - mean) / std
            loss = F.cross_entropy(model(x), y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if first_step is None:
                first_step = time.time()
        val_loss, val_acc = evaluate("val")
        print(
            f"epoch {epoch + 1}: val/loss {val_loss:.4f} val/acc {val_acc:.4f} "
            f"at {time.monotonic():.4f}",
            flush=True,
        )
    test_loss, test_acc = evaluate("test")
    print(f"test/loss {test_loss:.4f} test/acc {test_acc:.4f} first_step_at {first_step:.3f}")


if __name__ == "__main__":
    main()
