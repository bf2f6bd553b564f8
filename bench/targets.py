"""Accuracy-within-time targets of the runner, measured with the real CLI:

- ``dlx train`` (LeNet-5 on digits): test accuracy >= 0.97 within 60 s;
- ``dlx train model=resnet optim=adam``: test accuracy >= 0.95 within 3 minutes.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from cli import timed_dlx

RECIPES = {
    "lenet_default": ([], 0.97, 60.0),
    "resnet_adam": (["model=resnet", "optim=adam"], 0.95, 180.0),
}


def measure(seeds: tuple[int, ...] = (0, 1, 2)) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for name, (args, acc_target, time_target) in RECIPES.items():
        for seed in seeds:
            with tempfile.TemporaryDirectory() as d:
                wall = timed_dlx(
                    "train",
                    *args,
                    f"trainer.seed={seed}",
                    "trainer.progress=false",
                    f"hydra.run.dir={d}/run",
                    cwd=d,
                )
                summary = json.loads((Path(d) / "run" / "summary.json").read_text())
            out[f"{name}/seed{seed}"] = {
                "test_acc": summary["metrics"]["test/acc"],
                "wall_s": wall,
                "acc_target": acc_target,
                "time_target_s": time_target,
                "met": summary["metrics"]["test/acc"] >= acc_target and wall <= time_target,
            }
    return out


if __name__ == "__main__":
    print(json.dumps(measure(), indent=2))
