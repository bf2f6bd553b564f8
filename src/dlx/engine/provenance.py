"""Provenance: what produced a run, so a result can be traced back and reproduced.

``collect()`` gathers it once, at start-up: the git commit and dirty flag of the user's
working directory (and its ``git diff`` when dirty), the versions of dlx, Python, torch,
torchvision and CUDA, every installed distribution (``pip freeze``'s list, read with
``importlib.metadata``: no subprocess), the host, the devices and the command line.
``write()`` puts it in the run dir as ``provenance.json`` (plus ``git.diff`` when dirty).
Nothing here runs on the step path.
"""

from __future__ import annotations

import os
import platform
import shlex
import socket
import subprocess
import sys
import time
from contextvars import ContextVar
from importlib import metadata
from pathlib import Path
from typing import Any

#: seconds a git call may take before provenance records git as unknown
GIT_TIMEOUT_S = 10.0


def _git(cwd: Path, *args: str) -> str | None:
    """``git ARGS`` in ``cwd``: its stdout, or None (no git, not a repo, an error, too slow)."""
    try:
        out = subprocess.run(
            ["git", "-C", str(cwd), *args],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"},
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def parse_status(text: str) -> dict[str, Any]:
    """The commit, branch and dirty flag from ``git status --porcelain=v2 --branch``.

    Dirty means a tracked file differs from the commit (staged or not); untracked files
    are counted apart, as they do not change what ``git diff HEAD`` shows."""
    commit = branch = None
    changed = untracked = 0
    for line in text.splitlines():
        if line.startswith("# branch.oid "):
            oid = line.split()[2]
            commit = None if oid == "(initial)" else oid
        elif line.startswith("# branch.head "):
            head = line.split(maxsplit=2)[2]
            branch = None if head == "(detached)" else head
        elif line.startswith("?"):
            untracked += 1
        elif line and not line.startswith("#"):
            changed += 1
    return {
        "commit": commit,
        "branch": branch,
        "dirty": changed > 0,
        "changed_files": changed,
        "untracked_files": untracked,
    }


def git_info(cwd: Path) -> tuple[dict[str, Any] | None, str | None]:
    """``(git, diff)`` of the repo containing ``cwd``: ``(None, None)`` outside a repo or
    without git. One git call; a second (``git diff HEAD``) only when the tree is dirty."""
    status = _git(cwd, "status", "--porcelain=v2", "--branch")
    if status is None:
        return None, None
    git = parse_status(status)
    diff = None
    if git["dirty"] and git["commit"] is not None:
        diff = _git(cwd, "diff", "HEAD", "--binary", "--no-color", "--no-ext-diff")
    return git, diff


def packages() -> list[str]:
    """``name==version`` of every installed distribution, sorted, first on sys.path wins."""
    seen: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name and name.lower() not in seen:
            seen[name.lower()] = f"{name}=={dist.version}"
    return sorted(seen.values(), key=str.lower)


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def devices() -> dict[str, Any]:
    """The CPU and every visible accelerator, by name."""
    import torch

    cuda = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return {
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "cuda": cuda,
        "mps": bool(torch.backends.mps.is_available()),
    }


def versions() -> dict[str, Any]:
    import torch

    from dlx import __version__

    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {
        "dlx": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": _version("torchvision"),
        "cuda": torch.version.cuda,
        "cudnn": cudnn,
    }


def command_line() -> str:
    """The command as the user typed it: ``dlx train model=resnet`` (``sys.orig_argv``
    keeps the words that ``dlx train`` takes off ``sys.argv`` before Hydra reads it)."""
    argv = list(getattr(sys, "orig_argv", sys.argv))
    if len(argv) >= 3 and argv[1] == "-m" and argv[2] == "dlx":
        argv = ["dlx", *argv[3:]]  # python -m dlx …
    elif len(argv) >= 2 and Path(argv[1]).name == "dlx":
        argv = ["dlx", *argv[2:]]  # python .venv/bin/dlx … (the console script)
    return shlex.join(argv)


#: the sweep dir while a sweep's trial runs (``dlx.sweep.app``): the trials of one sweep that
#: run in one process share one snapshot of what cannot change between them
SWEEP: ContextVar[str | None] = ContextVar("dlx_provenance_sweep", default=None)


def snapshot(cwd: Path) -> dict[str, Any]:
    """The part of the provenance that is the same for every trial of a sweep."""
    git, diff = git_info(cwd)
    return {
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "git": git,
        "diff": diff,
        "versions": versions(),
        "devices": devices(),
        "packages": packages(),
    }


class Snapshots:
    """The snapshot of the sweep this process runs trials of (one sweep at a time)."""

    def __init__(self) -> None:
        self.key: tuple[str, str] | None = None
        self.value: dict[str, Any] = {}
        self.taken = 0

    def get(self, sweep: str | None, cwd: Path) -> dict[str, Any]:
        if sweep is None:
            return snapshot(cwd)
        if self.key != (sweep, str(cwd)):
            self.key, self.value = (sweep, str(cwd)), snapshot(cwd)
            self.taken += 1
        return self.value


SNAPSHOTS = Snapshots()


def collect(cwd: Path | None = None) -> dict[str, Any]:
    """Everything ``provenance.json`` holds; ``git`` is None outside a repo. The diff of a
    dirty tree comes back under ``"diff"`` (``write`` moves it to its own file). A sweep's
    trials take the sweep's snapshot (``SWEEP``); the time and command are each run's own."""
    cwd = Path.cwd() if cwd is None else Path(cwd)
    fixed = SNAPSHOTS.get(SWEEP.get(), cwd)
    return {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": command_line(),
        "cwd": str(cwd),
        **fixed,
    }


def write(run_dir: Path, info: dict[str, Any]) -> dict[str, Any]:
    """``provenance.json`` in ``run_dir`` (and ``git.diff`` when the tree was dirty), both
    written atomically; returns what the JSON holds."""
    from dlx.engine.checkpoint import atomic_write, write_json

    record = {k: v for k, v in info.items() if k != "diff"}
    diff = info.get("diff")
    if diff:
        atomic_write(Path(run_dir) / "git.diff", lambda f: f.write(diff.encode()))
        record["git"] = {**record["git"], "diff_file": "git.diff"}
    write_json(Path(run_dir) / "provenance.json", record)
    return record


def markdown(record: dict[str, Any]) -> str:
    """A short Markdown block of ``record`` for TensorBoard's text (the HParams run notes)."""
    git = record.get("git")
    if git is None:
        where = "not a git repository"
    else:
        where = f"`{git['commit'] or '(no commit)'}`" + (" (dirty)" if git["dirty"] else "")
    v = record["versions"]
    cuda = ", ".join(record["devices"]["cuda"]) or "none"
    lines = [
        f"- command: `{record['command']}`",
        f"- git: {where}",
        f"- dlx {v['dlx']}, Python {v['python']}, torch {v['torch']}, "
        f"torchvision {v['torchvision']}, CUDA {v['cuda']}",
        f"- host: {record['host']} ({record['platform']}); GPUs: {cuda}",
        f"- packages: {len(record['packages'])} (see provenance.json)",
    ]
    return "\n".join(lines)
