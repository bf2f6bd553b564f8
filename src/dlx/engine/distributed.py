"""Data-parallel training: ``trainer.devices=N`` or ``torchrun --nproc-per-node=N -m dlx train``.

With ``trainer.devices=N`` the process that runs ``dlx train`` is rank 0: it starts ranks
1..N-1 itself (``python -m dlx.engine.worker``, the resolved config in the environment) on a free
local port, then all ranks meet in a process group (``nccl`` on CUDA, one GPU per rank by
``LOCAL_RANK``; ``gloo`` on the CPU). Under ``torchrun`` the ranks come from its environment
(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``); rank 0's run dir is
broadcast so every rank reads the same checkpoints, and the empty Hydra dirs the other ranks
made are removed.

Every rank holds the whole in-memory dataset and walks the same global permutation; rank r
trains on ``batch[r::world]`` of each global batch of ``data.batch_size`` samples, and DDP
averages the gradients, so a step equals the single-process step on the global batch.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from dlx.errors import UsageError

#: environment of a rank started by ``trainer.devices``: the resolved config and the run
CONFIG_ENV, RUN_DIR_ENV, RESUME_ENV = "DLX_DIST_CONFIG", "DLX_DIST_RUN_DIR", "DLX_DIST_RESUME"
#: seconds a collective waits for a rank that is gone before failing (default 10 minutes)
TIMEOUT_ENV = "DLX_DIST_TIMEOUT_S"


@dataclass
class Dist:
    """This process's place in the job; ``world == 1`` is plain single-process training."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    workers: list[subprocess.Popen] = field(default_factory=list)  # ranks rank 0 started

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        """Rank 0: the only rank that logs and writes files."""
        return self.rank == 0

    def local_world(self) -> int:
        """Ranks on this machine (they share its CPU cores)."""
        return int(os.environ.get("LOCAL_WORLD_SIZE", str(self.world)))


def env_world() -> int:
    """WORLD_SIZE from the environment (torchrun, or a rank started by ``trainer.devices``)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check(devices: int, device: torch.device, batch_size: int) -> int:
    """The number of ranks, after checking that the job can run (before any rank starts)."""
    world = env_world()
    if world > 1 and devices not in (1, world):
        raise UsageError(
            f"trainer.devices={devices}: the launcher started WORLD_SIZE={world} ranks; "
            f"leave trainer.devices at 1 or set it to {world}"
        )
    world = max(world, devices)
    if world > 1 and batch_size % world:
        raise UsageError(
            f"data.batch_size={batch_size}: with {world} devices the global batch must divide "
            f"evenly; use a multiple of {world}"
        )
    if world > 1 and device.type == "cuda" and devices > torch.cuda.device_count():
        raise UsageError(
            f"trainer.devices={devices}: only {torch.cuda.device_count()} CUDA devices visible"
        )
    if world > 1 and device.type == "mps":
        raise UsageError(f"trainer.devices={devices}: DDP runs on cuda or cpu, not mps")
    return world


def start(
    devices: int,
    device: torch.device,
    batch_size: int,
    config: dict[str, Any],
    run_dir: Path,
    resume: bool,
) -> tuple[Dist, Path]:
    """Join (or, for ``trainer.devices=N``, start) the process group; return this rank's
    place and the run dir all ranks share (``config``, resolved, goes to the ranks it
    starts)."""
    world = check(devices, device, batch_size)
    if world == 1:
        return Dist(), run_dir
    if env_world() > 1:  # torchrun, or a rank that rank 0 started
        rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        ctx = Dist(rank, world, local)
    else:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))
        os.environ.update(WORLD_SIZE=str(world), RANK="0", LOCAL_RANK="0")
        ctx = Dist(0, world, 0)
        ctx.workers = _spawn(world, config, run_dir, resume)
    if device.type == "cuda":
        torch.cuda.set_device(ctx.local_rank)
    else:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // ctx.local_world()))
    backend = "nccl" if device.type == "cuda" else "gloo"
    timeout = timedelta(seconds=float(os.environ.get(TIMEOUT_ENV, "600")))
    dist.init_process_group(backend, rank=ctx.rank, world_size=ctx.world, timeout=timeout)
    return ctx, _shared_run_dir(ctx, run_dir)


def _spawn(
    world: int, config: dict[str, Any], run_dir: Path, resume: bool
) -> list[subprocess.Popen]:
    """Start ranks 1..world-1 as ``python -m dlx.engine.worker`` with the resolved config."""
    text = json.dumps(config)
    procs = []
    for rank in range(1, world):
        env = {
            **os.environ,
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            CONFIG_ENV: text,
            RUN_DIR_ENV: str(run_dir),
            RESUME_ENV: "1" if resume else "0",
        }
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "dlx.engine.worker"], env=env, stdout=subprocess.DEVNULL
            )
        )
    return procs


def _shared_run_dir(ctx: Dist, run_dir: Path) -> Path:
    """Rank 0's run dir, on every rank. Under torchrun without ``hydra.run.dir`` each rank's
    Hydra made its own dir; the other ranks' (only ``.hydra`` and Hydra's log) are removed."""
    box = [str(run_dir)]
    dist.broadcast_object_list(box, src=0)
    shared = Path(box[0])
    if not ctx.main and run_dir.resolve() != shared.resolve() and run_dir.is_dir():
        leftovers = {p.name for p in run_dir.iterdir()}
        if leftovers <= {".hydra", "train.log"}:
            shutil.rmtree(run_dir, ignore_errors=True)
    return shared


def finish(ctx: Dist, timeout: float = 60) -> None:
    """Leave the process group; rank 0 waits for the ranks it started (kills stragglers)."""
    if not ctx.enabled:
        return
    if dist.is_initialized():
        dist.destroy_process_group()
    for p in ctx.workers:
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_PORT"):
        if ctx.workers:  # we set them for our own group; leave a caller's torchrun env alone
            os.environ.pop(key, None)


def kill_workers(ctx: Dist) -> None:
    """Stop the ranks rank 0 started at once (a second Ctrl-C, a crash before the group)."""
    for p in ctx.workers:
        if p.poll() is None:
            p.kill()


# --- collectives the loop uses (no-ops in a single process) ------------------------------------
def all_sum(ctx: Dist, *tensors: Tensor) -> None:
    """Sum each tensor over the ranks, in place."""
    if ctx.enabled:
        for t in tensors:
            dist.all_reduce(t, op=dist.ReduceOp.SUM)


def summed(ctx: Dist, sums: dict[str, Tensor], device: torch.device) -> dict[str, Tensor]:
    """``sums`` summed over the ranks, in one all-reduce (``sums`` itself in one process)."""
    if not ctx.enabled:
        return sums
    flat = torch.cat([v.double().reshape(-1) for v in sums.values()]).to(device)
    all_sum(ctx, flat)
    parts = flat.cpu().split([v.numel() for v in sums.values()])
    return {k: p.reshape(sums[k].shape).to(sums[k].dtype) for k, p in zip(sums, parts)}


def all_mean(ctx: Dist, t: Tensor) -> Tensor:
    """The mean of ``t`` over the ranks (a new tensor; ``t`` itself in a single process)."""
    if not ctx.enabled:
        return t
    out = t.detach().float().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / ctx.world


def any_rank(ctx: Dist, flag: bool, device: torch.device) -> bool:
    """True on every rank if ``flag`` is True on any rank (a host sync: call it only where the
    loop syncs anyway)."""
    if not ctx.enabled:
        return flag
    t = torch.tensor(int(flag), device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def from_rank0(ctx: Dist, values: dict[str, float], device: torch.device) -> dict[str, float]:
    """Rank 0's ``values`` on every rank (same keys everywhere), so that decisions taken on
    them (best.pt, early stopping, plateau schedules) agree even where the ranks' own figures
    differ in the last bits (cuDNN may pick different kernels per GPU). A host sync."""
    if not ctx.enabled:
        return values
    t = torch.tensor(list(values.values()), dtype=torch.float64, device=device)
    dist.broadcast(t, src=0)
    return dict(zip(values, t.tolist(), strict=True))


def rank0_object(ctx: Dist, obj: Any) -> Any:
    """Rank 0's ``obj`` (any picklable value) on every rank; ``obj`` itself in one process."""
    if not ctx.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def wrap(model: torch.nn.Module, ctx: Dist, device: torch.device) -> torch.nn.Module:
    """``model`` in DistributedDataParallel when there are several ranks."""
    if not ctx.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)
