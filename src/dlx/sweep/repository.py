"""A sweep's config files read once: Hydra's config repository, kept for the whole sweep."""

from __future__ import annotations

import copy
import uuid
from typing import Any


class SweepRepository:
    """A Hydra config repository that keeps every config file it loaded for the whole sweep
    (Hydra's own cache lasts one composition). Everything else goes to the wrapped one."""

    def __init__(self, delegate: Any, cache: dict[tuple, Any] | None = None) -> None:
        self.delegate = delegate
        self.cache = {} if cache is None else cache
        self.sweep = uuid.uuid4().hex  # names the cache for the worker processes

    def load_config(self, config_path: str) -> Any:
        sources = tuple((s.provider, s.path) for s in self.delegate.get_sources())
        key = (sources, config_path)
        if key not in self.cache:
            self.cache[key] = self.delegate.load_config(config_path=config_path)
        return self.cache[key]

    def initialize_sources(self, config_search_path: Any) -> None:
        # copy on write: ``hydra.searchpath`` changes this composition's sources only
        self.delegate = copy.deepcopy(self.delegate)
        self.delegate.initialize_sources(config_search_path)

    def __deepcopy__(self, memo: dict[int, Any]) -> SweepRepository:
        # Hydra copies the repository for every composition, so that ``hydra.searchpath``
        # changes a copy: ``initialize_sources`` copies the sources when it does; the
        # loaded files are shared
        twin = SweepRepository(self.delegate, self.cache)
        twin.sweep = self.sweep
        return twin

    def __getattr__(self, name: str) -> Any:
        if name in ("delegate", "cache", "sweep"):  # unpickling: not set yet
            raise AttributeError(name)
        return getattr(self.delegate, name)

    def __getstate__(self) -> dict[str, Any]:
        return {"delegate": self.delegate, "sweep": self.sweep}  # not the loaded files

    def __setstate__(self, state: dict[str, Any]) -> None:
        # a worker process keeps the files it read for every trial of this sweep it runs
        self.delegate, self.sweep = state["delegate"], state["sweep"]
        if WORKER_FILES.get("sweep") != self.sweep:
            WORKER_FILES.clear()
            WORKER_FILES["sweep"] = self.sweep
        self.cache = WORKER_FILES.setdefault("files", {})


#: in a launcher's worker process: the config files read for the sweep it runs trials of
WORKER_FILES: dict[str, Any] = {}
