"""The study's storage opened once per process for the trials it runs (in-process, or one
joblib worker's), not once a trial."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra_plugins.dlx_optuna_sweeper.study import JOURNAL, open_storage

if TYPE_CHECKING:
    from optuna.storages import BaseStorage


class OpenedStorages:
    """Storages opened in this process, by URL: the trials a process runs (in-process, or one
    joblib worker's) open their study's storage once, not once a trial. A SQLite or journal
    file that was replaced since (another study at the same path) is opened afresh."""

    def __init__(self) -> None:
        self.key: tuple[str, Any] | None = None
        self.storage: BaseStorage | None = None

    def get(self, url: str) -> BaseStorage:
        key = (url, _file_identity(url))
        if self.storage is None or key != self.key or key[1] is None:
            self.storage = open_storage(url)
            self.key = (url, _file_identity(url))  # the file it made, if it was not there
        return self.storage


def _file_identity(url: str) -> tuple[int, int] | str | None:
    """The (device, inode) of a SQLite or journal file; the URL itself for a server; None
    for a file that is not there."""
    for prefix in ("sqlite:///", JOURNAL):
        if url.startswith(prefix):
            try:
                st = Path(url[len(prefix) :]).stat()
            except OSError:
                return None
            return st.st_dev, st.st_ino
    return url


OPENED = OpenedStorages()
