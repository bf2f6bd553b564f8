"""Checkpoints: written atomically, read back as tensors and plain data only.

A checkpoint is a dict of tensors, numbers, strings, lists and dicts. It is loaded with
``torch.load(weights_only=True)``, so a file carrying a pickled object is refused and its
payload never runs.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from dlx.errors import RunFailed


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, write: Any) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, fsync it, then rename it over.

    A crash or a full disk mid-write leaves the previous ``path`` intact.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    _fsync_dir(path.parent)


def save(path: Path, state: dict[str, Any]) -> None:
    """Write a checkpoint atomically."""
    import torch

    atomic_write(path, lambda f: torch.save(state, f))


class Writer:
    """Files written on one background thread, in the order they were handed over, each
    atomically (``atomic_write``): serialising and fsyncing leave the training loop's critical
    path, and a crash or SIGKILL mid-write still leaves the previous file whole. At most
    ``depth`` writes wait; a further one blocks until one is done. ``wait()`` returns once
    everything is on disk, raising a write's error."""

    def __init__(self, depth: int = 6) -> None:
        import queue

        self._jobs: queue.Queue = queue.Queue(maxsize=depth)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def submit(self, path: Path, state: dict[str, Any]) -> None:
        """Write checkpoint ``state`` to ``path``: serialised here, at once (the snapshot:
        training may change the tensors next), written and fsynced on the writer's thread,
        which then spends its time in system calls that release the GIL rather than in
        pickling that would hold up the training thread's next op."""
        import io

        import torch

        buf = io.BytesIO()
        torch.save(state, buf)
        data = buf.getbuffer()
        self.call(lambda: atomic_write(path, lambda f: f.write(data)))

    def call(self, job: Any) -> None:
        """Run ``job()`` on the writer's thread, after the jobs before it. A write that failed
        fails this call (the run stops at its next checkpoint, not at its end)."""
        if self._error is not None:
            self.wait()
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, daemon=True, name="dlx-writer")
            self._thread.start()
        self._jobs.put(job)

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:  # close()
                self._jobs.task_done()
                return
            try:
                if self._error is None:  # after a failure nothing more is written
                    job()
            except BaseException as e:  # handed to the training thread at its next wait()
                self._error = e
            finally:
                self._jobs.task_done()

    def close(self) -> None:
        """Wait for every write, then end the thread (raises a write's error)."""
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join()
            self._thread = None
        self.wait()

    def wait(self) -> None:
        self._jobs.join()
        if self._error is not None:
            error, self._error = self._error, None
            raise RunFailed(f"checkpoint not written: {_first_line(error)}") from error


def copied(state: Any) -> Any:
    """``state`` with every tensor copied (to the CPU): what it holds now, kept while
    training changes the originals."""
    import torch

    if isinstance(state, torch.Tensor):
        return state.detach().to("cpu", copy=True)
    if isinstance(state, dict):
        return {k: copied(v) for k, v in state.items()}
    if isinstance(state, list):
        return [copied(v) for v in state]
    if type(state) is tuple:
        return tuple(copied(v) for v in state)
    return state


def copy(src: Path, dst: Path) -> None:
    """``dst`` becomes a copy of ``src``, atomically: a hard link renamed over ``dst`` (no
    bytes written twice; a later atomic write of either name replaces only that name), or,
    where the file system has no hard links, a byte copy (as ``atomic_write``)."""
    import shutil

    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.link")
    try:
        tmp.unlink(missing_ok=True)
        os.link(src, tmp)
        os.replace(tmp, dst)
    except OSError:
        tmp.unlink(missing_ok=True)
        with open(src, "rb") as f:
            atomic_write(dst, lambda out: shutil.copyfileobj(f, out))
        return
    _fsync_dir(dst.parent)


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write a JSON file atomically (summary.json, sweep.json)."""
    text = json.dumps(data, indent=2, default=str) + "\n"
    atomic_write(path, lambda f: f.write(text.encode()))


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _reason(text: str) -> str:
    """The offending global from torch's weights-only error, else its first line."""
    import re

    m = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if m:
        return f"it would import {m.group(1)}"
    m = re.search(r"Unsupported operand \d+", text)
    return m.group(0) if m else text.splitlines()[0]


def load(path: Path) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``; any problem is one line naming the file."""
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        raise RunFailed(f"checkpoint {path}: no such file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        text = str(e).strip()
        if "Weights only load failed" in text or "Unsupported global" in text:
            reason = _reason(text)
            raise RunFailed(
                f"checkpoint {path}: refused, it holds more than tensors and plain data ({reason})"
            ) from None
        raise RunFailed(f"checkpoint {path}: not a checkpoint ({_first_line(e)})") from None
    except (RuntimeError, EOFError, ValueError, OSError, KeyError, IndexError) as e:
        raise RunFailed(f"checkpoint {path}: unreadable or truncated ({_first_line(e)})") from None
    if not isinstance(state, dict) or "model" not in state:
        raise RunFailed(f"checkpoint {path}: not a dlx checkpoint (no 'model' entry)")
    return state
