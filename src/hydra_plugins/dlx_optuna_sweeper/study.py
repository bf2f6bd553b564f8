"""The Optuna side that the sweeper and its trials share: a storage opened from its URL,
the lock under which a worker claims trials, heartbeats of the trials a worker runs, failing
(and retrying) the trials of a dead worker, the pruner, and a Hydra job's own trial.

Storage URLs: Optuna's RDB URLs (``sqlite:///…``, ``postgresql://…``, ``mysql://…``) and
``journal:///ABS/PATH/study.log``, Optuna's journal file (a shared filesystem, no server).
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlx.errors import UsageError

if TYPE_CHECKING:
    import optuna
    from optuna.pruners import BasePruner
    from optuna.storages import BaseStorage

log = logging.getLogger(__name__)

JOURNAL = "journal://"
SWEEPER = "hydra_plugins.dlx_optuna_sweeper.sweeper.DlxOptunaSweeper"
#: trial system attrs: the worker's last heartbeat (unix time), a retried dead trial,
#: and on its retry the number it retries and how many times the params ran
HEARTBEAT = "dlx:heartbeat"
RETRIED = "dlx:retried"
RETRY_OF = "dlx:retry_of"
RETRIES = "dlx:retries"
#: trial user attrs: the trial's run dir and, when its pruner stopped it, "pruned"
DIR = "dir"
STATUS = "status"


def default_storage(sweep_dir: Path) -> str:
    """``journal:///<sweep dir>/optuna.log``: Optuna's journal file, an append-only log (a
    trial's writes cost a fraction of SQLite's); a sweep dir an older dlx left an
    ``optuna.db`` in keeps it, so its re-run resumes it."""
    folder = Path(sweep_dir).resolve()
    if (folder / "optuna.db").is_file():
        return f"sqlite:///{folder / 'optuna.db'}"
    return f"{JOURNAL}{folder / 'optuna.log'}"


def journal_path(url: str) -> Path:
    """``journal:///ABS/PATH`` -> ``/ABS/PATH``; a relative path is a usage error (the
    workers of one study may start in different folders)."""
    path = url[len(JOURNAL) :]
    if not path.startswith("/"):
        raise UsageError(
            f"hydra.sweeper.storage={url}: a journal path must be absolute, "
            "e.g. journal:///shared/studies/lr.log"
        )
    return Path(path)


def open_storage(url: str) -> BaseStorage:
    """The Optuna storage behind ``url`` (journal file, or an RDB through SQLAlchemy)."""
    import optuna

    if url.startswith(JOURNAL):
        from optuna.storages.journal import JournalFileBackend

        path = journal_path(url)
        path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    scheme = url.split(":", 1)[0]
    if not scheme or "://" not in url:
        raise UsageError(
            f"hydra.sweeper.storage={url}: not a storage URL; use sqlite:///PATH, "
            "postgresql://USER@HOST/DB or journal:///ABS/PATH"
        )
    # several processes write one SQLite file: wait for its lock instead of failing
    engine = {"connect_args": {"timeout": 120}} if scheme == "sqlite" else {"pool_pre_ping": True}
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=engine)
    except ImportError as e:
        raise UsageError(f"hydra.sweeper.storage={url}: {e} (install its database driver)") from e


# --- claiming trials: one worker at a time counts the study and asks ---------------------------
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _beside(path: Path) -> Path:
    """The claim lock file of a journal or SQLite file: hidden, beside it."""
    return path.with_name(f".{path.name}.claim-lock")


class ClaimLock:
    """Held while a worker counts the study's trials and asks for new ones, so workers that
    free up together never ask for more than ``n_trials``: a lock file beside a journal or
    SQLite file, a PostgreSQL advisory lock on the study's name."""

    def __init__(self, url: str, study_name: str) -> None:
        self.url = url
        self.key = int.from_bytes(
            hashlib.sha1(study_name.encode()).digest()[:8], "big", signed=True
        )
        self._engine: Any = None

    @contextmanager
    def __call__(self) -> Iterator[None]:
        if self.url.startswith(JOURNAL):
            yield from _file_lock(_beside(journal_path(self.url)))
        elif self.url.startswith("sqlite:///"):
            yield from _file_lock(_beside(Path(self.url[len("sqlite:///") :])))
        elif self.url.startswith("postgresql"):
            yield from self._advisory()
        else:  # another database: no lock (two workers ending together may run one more)
            yield

    def _advisory(self) -> Iterator[None]:
        from sqlalchemy import create_engine, text

        if self._engine is None:
            self._engine = create_engine(self.url, pool_pre_ping=True)
        with self._engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": self.key})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()


# --- heartbeats and dead workers --------------------------------------------------------------
class Heartbeat:
    """A daemon thread that stamps this worker's running trials every ``interval`` seconds
    (a trial system attr, so every storage supports it, the journal file too)."""

    def __init__(self, storage: BaseStorage, interval: float) -> None:
        self.storage = storage
        self.interval = max(0.5, float(interval))
        self._trials: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="dlx-heartbeat", daemon=True)
        self._thread.start()

    def add(self, trial_id: int) -> None:
        self._beat(trial_id)
        with self._lock:
            self._trials.add(trial_id)

    def discard(self, trial_id: int) -> None:
        with self._lock:
            self._trials.discard(trial_id)

    def _beat(self, trial_id: int) -> None:
        from optuna.exceptions import UpdateFinishedTrialError

        try:
            self.storage.set_trial_system_attr(trial_id, HEARTBEAT, time.time())
        except UpdateFinishedTrialError:  # failed by another worker meanwhile
            self.discard(trial_id)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                trials = list(self._trials)
            for trial_id in trials:
                try:
                    self._beat(trial_id)
                except Exception as e:  # a database hiccup: the next beat tries again
                    log.warning(f"heartbeat of trial id {trial_id}: {e}")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def counts(trial: optuna.trial.FrozenTrial) -> bool:
    """Whether a trial counts towards ``n_trials``: all do but the dead ones run again."""
    from optuna.trial import TrialState

    return not (trial.state == TrialState.FAIL and trial.system_attrs.get(RETRIED))


def fail_stale(study: optuna.Study, grace_period: float, max_retry: int) -> list[int]:
    """Fail the RUNNING trials whose worker has not beaten for ``grace_period`` seconds
    (killed, or its machine gone) and queue each again (same params, a new trial number) up
    to ``max_retry`` times. Safe with many workers: the storage lets one of them fail it."""
    import optuna
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    storage = study._storage
    failed = []
    now = time.time()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        beat = t.system_attrs.get(HEARTBEAT)
        if beat is None or now - float(beat) < grace_period:
            continue
        runs = int(t.system_attrs.get(RETRIES, 1))
        retry = runs <= max_retry
        try:
            if retry:
                storage.set_trial_system_attr(t._trial_id, RETRIED, True)
            if not storage.set_trial_state_values(t._trial_id, TrialState.FAIL):
                continue
        except UpdateFinishedTrialError:
            continue  # another worker got there first, or its own worker finished it
        failed.append(t.number)
        why = (
            "its worker stopped (interrupted)"  # a beat of 0: the worker gave it up
            if float(beat) == 0
            else f"no heartbeat from its worker for {now - float(beat):.0f} s"
        )
        log.warning(
            f"trial {t.number}: {why}; " + ("failed, queued to run again" if retry else "failed")
        )
        if retry:
            study.add_trial(
                optuna.trial.create_trial(
                    state=TrialState.WAITING,
                    params=t.params,
                    distributions=t.distributions,
                    system_attrs={RETRY_OF: t.number, RETRIES: runs + 1},
                )
            )
    return failed


# --- the pruner and a job's own trial ---------------------------------------------------------
def build_pruner(node: Any) -> BasePruner:
    """The pruner of ``hydra.sweeper.pruner``: a config node (``hydra/sweeper/pruner=NAME``
    and its keys) or a bare name (``hydra.sweeper.pruner=median``, default keys)."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from hydra_plugins.dlx_optuna_sweeper.config import PRUNERS

    if node is None:
        node = "none"
    if isinstance(node, str):
        if node not in PRUNERS:
            raise UsageError(
                f"hydra.sweeper.pruner={node}: unknown pruner; choose one of: " + ", ".join(PRUNERS)
            )
        node = OmegaConf.structured(PRUNERS[node])
    return instantiate(node)


def job_trial() -> optuna.Trial | None:
    """This Hydra job's Optuna trial when it is a trial of dlx's Optuna sweeper (job ``N`` is
    trial ``N``), opened from the storage named in the job's own hydra config, so every
    launcher (in-process, joblib, submitit) finds it; None for any other run and for a
    multi-objective study (nothing to report to)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return None
    hc = HydraConfig.get()
    if hc.mode != RunMode.MULTIRUN or hc.sweeper.get("_target_") != SWEEPER:
        return None
    import optuna
    from optuna.trial import TrialState

    from hydra_plugins.dlx_optuna_sweeper.opened import OPENED

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = hc.sweeper.storage or default_storage(Path(hc.sweep.dir))
    study = optuna.load_study(
        study_name=hc.sweeper.study_name,
        storage=OPENED.get(url),  # once per process
        pruner=build_pruner(hc.sweeper.get("pruner")),
    )
    if len(study.directions) > 1:  # Optuna's trials report one objective: no pruning
        return None
    storage = study._storage
    trial_id = storage.get_trial_id_from_study_id_trial_number(study._study_id, hc.job.num)
    if storage.get_trial(trial_id).state != TrialState.RUNNING:
        return None
    return optuna.Trial(study, trial_id)
