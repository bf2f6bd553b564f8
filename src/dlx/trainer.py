"""The composed config's shape: its top-level groups and the ``trainer`` group's schema."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dlx.augment.tta import TTA
from dlx.engine.monitor import DEFAULT_MONITOR, resolve_mode
from dlx.errors import UsageError
from dlx.registry import check
from dlx.suggest import allowed

#: the config's top-level keys: one per group
ROOT_KEYS = ("model", "optim", "sched", "regularization", "augment", "data", "trainer")


def check_root(cfg: Any) -> None:
    """Unknown top-level keys (``+foo=1``) are a usage error, not silently ignored."""
    for key in cfg:
        if key not in ROOT_KEYS:
            raise UsageError(f"{key}: unknown top-level key; {allowed(key, ROOT_KEYS, 'allowed')}")
    missing = [k for k in ROOT_KEYS if k not in cfg]
    if missing:
        raise UsageError(
            f"{', '.join(missing)}: config group missing; choose an option, e.g. {missing[0]}=…"
        )


@dataclass
class TrainerConfig:
    max_epochs: int = field(default=20, metadata=check(ge=1))
    limit_train_batches: int | None = field(default=None, metadata=check(ge=1))
    limit_val_batches: int | None = field(default=None, metadata=check(ge=1))
    device: str = field(default="auto", metadata=check(choices=["auto", "cpu", "cuda", "mps"]))
    precision: str = field(default="32", metadata=check(choices=["32", "bf16-mixed", "16-mixed"]))
    seed: int = 0
    deterministic: bool = False
    log_every_n_steps: int = field(default=20, metadata=check(ge=1))
    histogram_every_n_epochs: int = field(default=0, metadata=check(ge=0))  # 0: off
    log_grad_norms: bool = False  # grads/norm/<layer> at log steps, epoch means in metrics.csv
    # > 0: weights/near_zero (share of layer weights with |w| below it) and weights/abs_mean
    log_weight_sparsity: float = field(default=0.0, metadata=check(ge=0))
    monitor: str = DEFAULT_MONITOR  # what best.pt tracks (left here: the task's own)
    mode: str = field(default="auto", metadata=check(choices=["auto", "min", "max"]))
    # a multi-objective sweep's objectives: metrics and costs (dlx.sweep.objectives)
    objectives: list[str] = field(default_factory=list)
    compile: bool = False
    compile_mode: str = field(
        default="default", metadata=check(choices=["default", "reduce-overhead", "max-autotune"])
    )
    channels_last: bool = False
    devices: int = field(default=1, metadata=check(ge=1))  # data-parallel ranks (DDP)
    sync_batchnorm: bool = True  # under DDP: batch-norm statistics over the global batch
    profile: bool = False  # profile a few steps: profile/trace.json and a table of top ops
    progress: bool = True
    tta: str = field(default="none", metadata=check(choices=list(TTA)))  # test-time augmentation
    checkpoint_every_n_steps: int | None = field(default=None, metadata=check(ge=1))
    # epoch-end checkpoints at most this often (s); the last epoch, a stop, Ctrl-C always write
    checkpoint_interval_s: float = field(default=1.0, metadata=check(ge=0))
    # batches of validation and test (no gradients: larger is cheaper); null: 4 x data.batch_size
    eval_batch_size: int | None = field(default=None, metadata=check(ge=1))
    on_nonfinite: str = field(default="stop", metadata=check(choices=["stop", "skip"]))
    save_top_k: int = field(default=0, metadata=check(ge=0))  # keep the N best epochs' files
    callbacks: list[Any] = field(default_factory=list)  # a user's own: dotted paths or _target_
    accumulate_grad_batches: int = field(default=1, metadata=check(ge=1))  # batches per step
    fast_dev_run: bool = False  # one train, val and test batch, one epoch, no checkpoints kept
    overfit_batches: int = field(default=0, metadata=check(ge=0))  # train+val on N batches
    overwrite: bool = False  # hydra.run.dir holds a run: move it aside (DIR.old-<time>) first

    def validate(self, prefix: str) -> None:
        self.mode = resolve_mode(self.monitor, self.mode)
        if self.fast_dev_run:  # what Lightning users type first: does the whole run work?
            self.max_epochs, self.limit_train_batches, self.limit_val_batches = 1, 1, 1
