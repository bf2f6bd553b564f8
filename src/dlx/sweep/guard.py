"""Before Hydra makes a single run's dir: the config is checked (``dlx.engine.spec.parse``,
from the Hydra callback ``dlx.sweep.app.RunGuard``) and the dir must be one a new run may use.
A folder that already holds a run is never written into: exit 2 naming it, its status and the
ways on, or with ``trainer.overwrite=true`` the old run is moved aside (``DIR.old-<time>``).
Sweeps and studies resume their own trial dirs (``dlx.sweep.trials``) and are not checked here.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from dlx.errors import UsageError

#: what makes a folder a run's (Hydra's .hydra alone is a config that never ran)
RUN_MARKERS = ("summary.json", "metrics.csv", "checkpoints")
#: what a run refused before training leaves: removed again (``drop_unstarted``)
UNSTARTED = {".hydra", "summary.json", ".dlx.lock", "train.log", "provenance.json"}


def holds_run(path: Path) -> bool:
    return any((path / m).exists() for m in RUN_MARKERS)


def run_status(path: Path) -> str:
    from dlx.engine.rundirs import read_run

    return str(read_run(path)["status"])


def writable(run_dir: Path, key: str) -> None:
    """Make ``run_dir`` (as Hydra would next) and write a probe file in it: a read-only
    filesystem or a folder without permission is one line, not a traceback later."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / f".dlx-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise UsageError(
            f"{key}: cannot write there ({e.strerror}); pick a writable folder"
        ) from None


def check_run_dir(run_dir: Path, overwrite: bool) -> None:
    """Refuse a ``hydra.run.dir`` a new run cannot use; move an old run aside if asked."""
    key = f"hydra.run.dir={run_dir}"
    if run_dir.exists() and not run_dir.is_dir():
        raise UsageError(f"{key}: is a file, not a folder; give a new hydra.run.dir")
    if not (run_dir.is_dir() and holds_run(run_dir)):
        return writable(run_dir, key)
    status = run_status(run_dir)
    if not overwrite:
        raise UsageError(
            f"{key}: holds a run (status {status}); continue it with `dlx resume {run_dir}`, "
            "pick a new hydra.run.dir, or add trainer.overwrite=true to move it aside"
        )
    if status == "running":
        raise UsageError(f"{key}: its run is still training; trainer.overwrite cannot move it")
    aside = run_dir.with_name(f"{run_dir.name}.old-{time.strftime('%Y%m%d-%H%M%S')}")
    run_dir.rename(aside)
    print(f"dlx train: moved the run in {run_dir} aside to {aside}", flush=True)


def drop_unstarted(run_dir: Path) -> None:
    """Remove a dir left by a run refused before it trained (nothing in it but Hydra's
    files and the refusal's summary): bad configs leave no rows in ``dlx runs``."""
    import shutil

    if not run_dir.is_dir() or not {p.name for p in run_dir.iterdir()} <= UNSTARTED:
        return
    for p in run_dir.iterdir():
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    run_dir.rmdir()


class Refused(BaseException):
    """A usage error found before the run dir: carried past Hydra's callback wrapper, turned
    back into a ``UsageError`` by ``dlx.sweep.launch.train``."""


class Checked(BaseException):
    """``dlx check``: the config passed; stop before the run dir is made."""


#: set by ``dlx check``: validate the single run's config, then stop (exit 0)
CHECK_ONLY_ENV = "DLX_CHECK_ONLY"
