"""``hydra/sweeper=dlx_basic``, the default sweeper of ``dlx train -m``: Hydra's basic sweeper
(a grid of comma lists, ``max_batch_size``, ``params``) whose trials are each composed once
(``dlx.sweep.compose``)."""

from __future__ import annotations

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

from dlx.sweep.compose import ComposesOnce


class DlxBasicSweeper(ComposesOnce, BasicSweeper):
    """Hydra's ``BasicSweeper``: the same batches, checks and launches, one composition each."""
