"""What an epoch-end checkpoint costs a ``dlx train`` process, measured inside one process.

A callback (``Alternate``, below, through ``trainer.callbacks``) sets the checkpoint interval
to 0 on even epochs and to forever on odd ones, so epochs that write ``best.pt``/``last.pt``
and epochs that do not interleave in the same process and the VM's drift moves both alike.
The epoch after a write carries its cost: serialising on the training thread, the writer
thread's write and fsync competing with training. The difference of the two medians (epoch
times from ``metrics.csv``) is one write's cost; over the default interval
(``trainer.checkpoint_interval_s=1``) an epoch pays it once per interval, not once per epoch.

    python bench/checkpoint_cost.py [OVERRIDES…]
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from dlx.callbacks import Callback
from overhead import dlx_cmd, epoch_ends


class Alternate(Callback):
    """Even epochs (0-based) end with a checkpoint, odd ones without."""

    def on_epoch_start(self, run, epoch: int) -> None:
        for c in run.callbacks.items:
            if type(c).__name__ == "Checkpointing":
                c.interval = 0.0 if epoch % 2 == 0 else math.inf


def measure(overrides: tuple[str, ...] = (), epochs: int = 61) -> dict[str, float]:
    """Median epoch seconds after an epoch that wrote a checkpoint and after one that did not
    (the first two epochs dropped), and their difference."""
    here = Path(__file__).resolve().parent
    with tempfile.TemporaryDirectory() as cwd:
        run_dir = Path(cwd) / "run"
        cmd = dlx_cmd(
            [
                "trainer.callbacks=[checkpoint_cost.Alternate]",
                f"hydra.run.dir={run_dir}",
                *overrides,
            ],
            epochs,
        )
        env = {**os.environ, "PYTHONPATH": f"{here}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, check=True)
        ends = epoch_ends(run_dir)
    after_write, after_none = [], []
    for k in range(3, len(ends)):  # ends[k] - ends[k-1]: epoch k+1, after epoch k's end
        # epoch k (1-based) is 0-based k-1: it wrote when k-1 is even
        (after_write if (k - 1) % 2 == 0 else after_none).append(ends[k] - ends[k - 1])
    w, n = statistics.median(after_write), statistics.median(after_none)
    return {"epoch_after_write_s": w, "epoch_after_none_s": n, "write_cost_s": w - n}


if __name__ == "__main__":
    print(json.dumps(measure(tuple(sys.argv[1:])), indent=2))
