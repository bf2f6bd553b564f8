"""The HParams dashboard's columns: what a run overrode and what a sweep varied, first and
shown; the rest of the config listed after them, hidden until a user ticks it.

Each run writes its HParams session (every config key) into its own event file. Left alone,
TensorBoard orders the columns by "differs across all sessions", then by name, and shows the
first five: with several runs and sweeps under one folder that is ``data.*``/``model.*``, and
the keys a sweep varied stay unticked. The columns are TensorBoard's *experiment*: the
plugin takes the first one it finds and puts its ``differs`` keys first. ``dlx tb DIR``
writes one experiment for everything under DIR into DIR's first run dir (a file in DIR itself
would be an empty run called ``.``), with ``differs`` set on the keys that matter: those a run
overrode or a sweep varied whose values differ among DIR's runs (a lone run: its overrides).
The legacy dashboard ticks its first five columns, so with fewer such keys the unvaried ones
are left out: metrics follow the varied keys on screen.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

#: the experiment's file in the logdir root (TensorBoard reads any ``*tfevents*`` file)
FILENAME = "events.out.tfevents.dlx-hparams"
#: the metric columns: SPEC's final figures first
METRICS = ("val/acc", "test/acc", "val/loss", "test/loss", "train/acc", "train/loss")
METRICS += ("val/ppl", "test/ppl")  # language models (model=charlm)
#: the legacy HParams dashboard ticks (shows) its first five columns
TICKED = 5


def run_hparams(run_dir: Path) -> dict[str, Any]:
    """A run's hyperparameters as its HParams session holds them (the flattened config)."""
    from dlx.engine.board import flatten
    from dlx.engine.rundirs import read_config

    return flatten(read_config(Path(run_dir) / ".hydra" / "config.yaml"))


def overridden_keys(overrides: list[str], keys: list[str]) -> set[str]:
    """The hparam keys a run's overrides set: ``optim.lr=0.1`` -> ``optim.lr``; a group
    choice ``optim=sgd`` -> ``optim.name`` (or every ``optim.*`` key when it has no name)."""
    out: set[str] = set()
    for item in overrides:
        key = item.split("=", 1)[0].lstrip("+~").split("@", 1)[0]
        if key.startswith("hydra"):
            continue
        if key in keys:
            out.add(key)
            continue
        under = [k for k in keys if k.startswith(key + ".")]
        out.update([f"{key}.name"] if f"{key}.name" in under else under)
    return out


def columns(root: Path) -> tuple[dict[str, Any], set[str]]:
    """Every hparam key under ``root`` with one of its values (for the type), and the keys
    to show: those any run overrode, and those whose values differ within a sweep."""
    import yaml

    from dlx.engine.rundirs import find_runs

    values: dict[str, Any] = {}
    shown: set[str] = set()
    by_sweep: dict[Path, list[dict[str, Any]]] = {}
    every: list[dict[str, Any]] = []
    for run_dir in find_runs(root):
        hp = run_hparams(run_dir)
        every.append(hp)
        for k, v in hp.items():
            values.setdefault(k, v)
        file = run_dir / ".hydra" / "overrides.yaml"
        overrides = (yaml.safe_load(file.read_text()) or []) if file.is_file() else []
        shown |= overridden_keys(overrides, list(hp))
        if (run_dir.parent / "multirun.yaml").is_file():
            by_sweep.setdefault(run_dir.parent, []).append(hp)
    for trials in by_sweep.values():
        shown |= varied(trials)
    if len(every) > 1:  # an override every run made alike (data.batch_size=64) varies nothing
        shown &= varied(every)
    return values, shown


def varied(hparams: list[dict[str, Any]]) -> set[str]:
    """The keys whose values (a missing key counts as one) differ among ``hparams``."""
    keys = {k for hp in hparams for k in hp}
    return {k for k in keys if len({repr(hp.get(k)) for hp in hparams}) > 1}


def metric_tags(root: Path) -> tuple[str, ...]:
    """``METRICS``, then the monitored metric and its test twin of every run under ``root``
    whose task has no accuracy (``val/mse``, ``test/mse`` of an autoencoder)."""
    import json

    from dlx.engine.rundirs import find_runs

    tags = list(METRICS)
    for run_dir in find_runs(root):
        try:
            monitor = json.loads((run_dir / "summary.json").read_text()).get("monitor")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(monitor, str):
            twin = monitor.replace("val/", "test/", 1)
            tags += [t for t in (monitor, twin) if t not in tags]
    return tuple(tags)


def experiment_summary(
    values: dict[str, Any], shown: set[str], metrics: tuple[str, ...] = METRICS
) -> Any:
    """The HParams experiment as a TensorBoard ``Summary``: one column per key (type only,
    no domain, so a later run's new value is never filtered out), ``differs`` on ``shown``."""
    from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

    def kind(v: Any) -> int:
        if isinstance(v, bool):
            return api_pb2.DATA_TYPE_BOOL
        if isinstance(v, int | float):
            return api_pb2.DATA_TYPE_FLOAT64
        return api_pb2.DATA_TYPE_STRING

    # the dashboard ticks its first TICKED columns: below that many shown keys, the others
    # are left out (ticked, they would push the metrics off the screen)
    listed = values if len(shown) >= TICKED else {k: v for k, v in values.items() if k in shown}
    experiment = api_pb2.Experiment(
        hparam_infos=[
            api_pb2.HParamInfo(name=k, type=kind(v), differs=k in shown)
            for k, v in sorted(listed.items(), key=lambda kv: (kv[0] not in shown, kv[0]))
        ],
        metric_infos=[api_pb2.MetricInfo(name=api_pb2.MetricName(tag=m)) for m in metrics],
        time_created_secs=time.time(),
    )
    content = plugin_data_pb2.HParamsPluginData(
        experiment=experiment, version=metadata.PLUGIN_DATA_VERSION
    )
    meta = SummaryMetadata(
        plugin_data=SummaryMetadata.PluginData(
            plugin_name=metadata.PLUGIN_NAME, content=content.SerializeToString()
        )
    )
    return Summary(value=[Summary.Value(tag=metadata.EXPERIMENT_TAG, metadata=meta)])


def write_experiment(root: Path) -> Path | None:
    """Write (replace) ``root``'s HParams experiment into its first run's dir (a file of its
    own in ``root`` would show as an empty run called ``.``); None when ``root`` has no run."""
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.summary.writer.record_writer import RecordWriter

    from dlx.engine.rundirs import find_runs

    runs = sorted(find_runs(root))
    for old in [Path(root), *runs]:  # the one TensorBoard finds must be the only one
        (old / FILENAME).unlink(missing_ok=True)
    values, shown = columns(root)
    if not values:
        return None
    path = runs[0] / FILENAME
    tmp = path.with_name(".dlx-hparams.tmp")  # no "tfevents" in the name: never read half
    now = time.time()
    with open(tmp, "wb") as f:
        writer = RecordWriter(f)
        writer.write(Event(wall_time=now, file_version="brain.Event:2").SerializeToString())
        summary = experiment_summary(values, shown, metric_tags(root))
        event = Event(wall_time=now, step=0, summary=summary)
        writer.write(event.SerializeToString())
    tmp.replace(path)
    return path
