"""Ctrl-C, SIGTERM and SIGHUP (a closed terminal, a dropped SSH session) during training:
finish the step under way, save, stop."""

from __future__ import annotations

import signal
from collections.abc import Callable
from types import FrameType, TracebackType

import torch

from dlx.engine import distributed
from dlx.engine.distributed import Dist

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(Exception):
    """Ctrl-C, SIGTERM or SIGHUP: training stops after the current step (or batch)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class StopSignals:
    """While entered, the first SIGINT/SIGTERM is noted and ``check()`` raises
    ``Interrupted`` at the next step boundary; a second one leaves at once
    (``KeyboardInterrupt``). The previous handlers come back on exit."""

    def __init__(self, ctx: Dist, device: torch.device) -> None:
        self.ctx, self.device = ctx, device
        self.received: list[int] = []
        self._old: dict[int, object] = {}

    def __enter__(self) -> StopSignals:
        self._old = {s: signal.signal(s, self._on_signal) for s in SIGNALS}
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for s, handler in self._old.items():
            signal.signal(s, handler)  # type: ignore[arg-type]

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.received:
            raise KeyboardInterrupt
        self.received.append(signum)

    def check(self, sync_point: bool = True) -> None:
        """Raise ``Interrupted`` if a signal came. Under DDP the ranks agree first (a
        collective), so only at points that sync anyway (``sync_point``: log steps, epoch
        ends); a single process checks every time, for free."""
        if self.ctx.enabled:
            if sync_point and distributed.any_rank(self.ctx, bool(self.received), self.device):
                raise Interrupted(self.received[0] if self.received else signal.SIGTERM)
        elif self.received:
            raise Interrupted(self.received[0])

    @property
    def per_batch(self) -> Callable[[], None] | None:
        """What evaluation calls after each batch: ``check`` alone, no collectives per batch."""
        return None if self.ctx.enabled else self.check
