"""What a run shows: TensorBoard event files in the run dir, and the terminal.

Scalars use SPEC's tags (``train/loss``, ``val/acc``, ``opt/lr`` …). Hyperparameters go to
the HParams dashboard as a session written into the run's own event file, so TensorBoard
infers the columns from every run it sees (trials with different keys sit side by side).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table

from dlx.engine.terminal import Progress, fmt_metrics  # noqa: F401  (re-exported)
from dlx.status import Status


def flatten(cfg: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config as dotted keys with scalar values (lists become strings)."""
    out: dict[str, Any] = {}
    for k, v in cfg.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "."))
        elif isinstance(v, bool | int | float | str):
            out[key] = v
        else:
            out[key] = str(v)
    return out


HPARAMS_STATUS = {
    Status.COMPLETED: "STATUS_SUCCESS",
    Status.STOPPED_EARLY: "STATUS_SUCCESS",
    Status.INTERRUPTED: "STATUS_RUNNING",  # resumable; the enum has no "aborted"
    Status.PRUNED: "STATUS_UNKNOWN",  # nor "pruned": neither a success nor a failure
}


class TensorBoard:
    """A SummaryWriter on the run dir; ``purge_step`` drops events past a resume point."""

    #: scalars wait for the writer's thread until a log step finds this much time passed
    #: since the last hand-over (each one wakes the thread, which costs the loop more than the
    #: write); ``flush()`` (every checkpoint) and ``close()`` hand everything over. TensorBoard
    #: itself writes its file out every 120 s.
    HOLD_S = 10.0

    def __init__(self, run_dir: Path, purge_step: int | None = None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(run_dir), purge_step=purge_step)
        self._held: list[tuple[Any, int, float]] = []  # (summary, step, wall time)
        self._since = time.monotonic()

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        """All of ``values`` at ``step`` as one event, the values as ``add_scalar`` writes
        them (one event per tag costs five times as much)."""
        from tensorboard.compat.proto.summary_pb2 import Summary

        pb = Summary(value=[Summary.Value(tag=t, simple_value=float(v)) for t, v in values.items()])
        self._held.append((pb, step, time.time()))
        if time.monotonic() - self._since >= self.HOLD_S:
            self._hand_over()

    def _hand_over(self) -> None:
        """Give the held scalar events to the writer, in order, with their own wall times."""
        held, self._held = self._held, []  # an interrupt half-way loses some, repeats none
        self._since = time.monotonic()
        if held:
            writer = self.writer._get_file_writer()
            for pb, step, wall in held:
                writer.add_summary(pb, step, wall)

    def histograms(self, values: Mapping[str, Any], step: int) -> None:
        self._hand_over()
        for tag, v in values.items():
            self.writer.add_histogram(tag, v, step)

    def text(self, tag: str, text: str) -> None:
        self._hand_over()
        self.writer.add_text(tag, text)

    def image(self, tag: str, image: Any, step: int) -> None:
        """A (C, H, W) image in [0, 1] at ``step``."""
        self._hand_over()
        self.writer.add_image(tag, image, step)

    def hparams_start(self, hparams: Mapping[str, Any]) -> None:
        """Open the HParams session with the run's hyperparameters (no experiment summary:
        TensorBoard then infers the columns from all sessions, so runs may differ in keys)."""
        from torch.utils.tensorboard.summary import hparams as hparams_pb

        _, session_start, _ = hparams_pb(dict(hparams), {})
        self.writer._get_file_writer().add_summary(session_start)

    def hparams_end(self, status: str) -> None:
        """Close the HParams session: success, failure (failed, diverged) or aborted."""
        from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
        from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

        self._hand_over()
        code = HPARAMS_STATUS.get(status, "STATUS_FAILURE")
        content = plugin_data_pb2.HParamsPluginData(
            session_end_info=plugin_data_pb2.SessionEndInfo(status=api_pb2.Status.Value(code)),
            version=metadata.PLUGIN_DATA_VERSION,
        )
        meta = SummaryMetadata(
            plugin_data=SummaryMetadata.PluginData(
                plugin_name=metadata.PLUGIN_NAME, content=content.SerializeToString()
            )
        )
        pb = Summary(value=[Summary.Value(tag=metadata.SESSION_END_INFO_TAG, metadata=meta)])
        self.writer._get_file_writer().add_summary(pb)

    def flush(self) -> None:
        self._hand_over()
        self.writer.flush()

    def flush_on(self, writer: Any) -> None:
        """Hand the held events over now and flush the file on ``writer``'s thread (a
        ``checkpoint.Writer``), ahead of the jobs handed to it after."""
        self._hand_over()
        writer.call(self.writer.flush)

    def close(self) -> None:
        self._hand_over()
        self.writer.close()


class NullBoard(TensorBoard):
    """What ranks other than 0 log to under DDP: nothing (rank 0 alone writes event files)."""

    def __init__(self) -> None:
        pass

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        pass

    def histograms(self, values: Mapping[str, Any], step: int) -> None:
        pass

    def text(self, tag: str, text: str) -> None:
        pass

    def image(self, tag: str, image: Any, step: int) -> None:
        pass

    def hparams_start(self, hparams: Mapping[str, Any]) -> None:
        pass

    def hparams_end(self, status: str) -> None:
        pass

    def flush(self) -> None:
        pass

    def flush_on(self, writer: Any) -> None:
        pass

    def close(self) -> None:
        pass


def summary_table(summary: Mapping[str, Any], run_dir: Path) -> Table:
    """The end-of-run table: status, epochs, metrics and where the run lives."""
    table = Table(title="dlx run", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("status", str(summary["status"]))
    table.add_row("epochs", f"{summary['epochs']} (best {summary['best_epoch']})")
    table.add_row("params", f"{summary['params']:,}")
    table.add_row("duration", f"{summary['duration_s']:.1f} s")
    for k, v in summary["metrics"].items():
        table.add_row(k, f"{v:.4f}")
    table.add_row("run dir", escape(str(run_dir)))
    return table


def stderr_line(message: str) -> None:
    """One plain line on stderr (errors and hints)."""
    print(message, file=sys.stderr, flush=True)
