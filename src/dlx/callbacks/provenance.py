"""``provenance.json`` in every run dir, written once as the run starts (rank 0)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlx.callbacks import Callback
from dlx.engine import provenance

if TYPE_CHECKING:
    from dlx.engine.run import Run


def record_start(run_dir: Path, info: dict[str, Any]) -> dict[str, Any]:
    """Write ``info`` as the run's provenance. A resumed run keeps its first record and
    appends this start's git state and command to its ``resumes`` list (a resume from
    another commit or a dirty tree is visible; its diff goes to ``git.resume-N.diff``)."""
    path = Path(run_dir) / "provenance.json"
    try:
        first = json.loads(path.read_text())
    except (OSError, ValueError):
        first = None
    if not isinstance(first, dict):
        return provenance.write(run_dir, info)
    from dlx.engine.checkpoint import atomic_write, write_json

    resumes = first.setdefault("resumes", [])
    entry = {k: info[k] for k in ("time", "command", "host", "git")}
    diff = info.get("diff")
    if diff:
        name = f"git.resume-{len(resumes) + 1}.diff"
        atomic_write(Path(run_dir) / name, lambda f: f.write(diff.encode()))
        entry["git"] = {**entry["git"], "diff_file": name}
    resumes.append(entry)
    write_json(path, first)
    return first


class Provenance(Callback):
    """Collects provenance at ``on_fit_start`` (one git call, no subprocess on the step
    path), writes ``provenance.json`` and shows it in TensorBoard's text tab."""

    def on_fit_start(self, run: Run) -> None:
        record = record_start(run.run_dir, provenance.collect())
        run.board.text("provenance", provenance.markdown(record))
