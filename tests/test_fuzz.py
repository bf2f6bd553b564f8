"""Property-based fuzzing of what a user can type and what a disk can hold.

(a) Overrides drawn from the config schemas themselves (every field of every option of the
single-option groups, the trainer and the regularizers): wrong types, out-of-range and
non-finite values, unknown keys, malformed Hydra syntax. Each goes through ``dlx check``
(the path ``dlx train`` takes up to the run dir: Hydra's parser, composition, the
``on_run_start`` checks) in-process, and must exit 2 with one line, never a traceback.
(b) A finished run dir damaged at random (files missing, empty, truncated, corrupt), then
``eval``, ``resume``, ``report`` or ``export`` on it: exit 0, 1 or 2, never a traceback.

Seeded (``derandomize``) and bounded; each prints how many inputs it tried.
"""

from __future__ import annotations

import dataclasses
import gc
import shutil
import signal
import typing
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import QUICK, run_dlx
from dlx import cli

QUIET = [*QUICK, "trainer.progress=false"]


def fuzz(examples: int) -> settings:
    """Seeded, bounded: the same ``examples`` inputs on every run."""
    return settings(
        max_examples=examples,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


@pytest.fixture
def in_process(monkeypatch, capsys):
    """``cli.main(argv)`` as the shell would run it: (exit code, stdout, stderr); the
    process's signal handlers and environment are restored after."""
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    for key in ("HYDRA_FULL_ERROR", "DLX_SWEEP_PID", "DLX_CHECK_ONLY"):
        monkeypatch.delenv(key, raising=False)

    def call(argv: list[str]) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            with pytest.raises(SystemExit) as exit_info:
                cli.main(argv)
        finally:
            gc.enable()  # main disables it for its imports
            for s, h in handlers.items():
                signal.signal(s, h)
        out, err = capsys.readouterr()
        return int(exit_info.value.code or 0), out, err

    return call


def _error_line(err: str, command: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, err
    assert len(lines) == 1, err
    assert lines[0].startswith(f"dlx {command}: error: "), lines[0]
    return lines[0]


# --- (a) overrides drawn from the schemas ----------------------------------------------------
def _fields() -> list[tuple[list[str], str, Any, dict]]:
    """(overrides choosing the option, dotted key, type, range metadata) of every schema
    field a config can set."""
    from dlx.data import DATASETS
    from dlx.models import MODELS
    from dlx.optim import OPTIMIZERS
    from dlx.regularization import REGULARIZERS
    from dlx.sched import SCHEDULES
    from dlx.sweep.compose import group_options
    from dlx.trainer import TrainerConfig

    out = []
    for f in dataclasses.fields(TrainerConfig):
        out.append(([], f"trainer.{f.name}", _type(TrainerConfig, f.name), dict(f.metadata)))
    for group, registry in [
        ("model", MODELS),
        ("optim", OPTIMIZERS),
        ("sched", SCHEDULES),
        ("data", DATASETS),
        ("regularization", REGULARIZERS),
    ]:
        for name in registry.names():
            if name not in group_options(group):
                continue  # registered for code only, no config file to choose
            schema = registry.get(name).schema
            choose = [f"{group}=[{name}]" if group == "regularization" else f"{group}={name}"]
            prefix = f"{group}.{name}" if group == "regularization" else group
            for f in dataclasses.fields(schema):
                if f.name != "name":
                    meta = dict(f.metadata)
                    out.append((choose, f"{prefix}.{f.name}", _type(schema, f.name), meta))
    return out


def _type(schema: type, name: str) -> Any:
    return typing.get_type_hints(schema)[name]


def _base(tp: Any) -> set[type]:
    args = typing.get_args(tp)
    return {a for a in args if a is not type(None)} if args else {tp}


def _bad_values(tp: Any, meta: dict) -> list[str]:
    """Values a field of type ``tp`` with range ``meta`` must refuse."""
    base = _base(tp)
    bad: list[str] = []
    if base <= {int, float, bool}:
        bad += ["abc", "[1,2]", "{a: 1}"]
    if base & {int, float} and not base & {str}:
        bad += ["nan", "inf", "-inf"]
    if base == {int}:
        bad.append("1.5")
    for k, v in meta.items():
        if k == "ge":
            bad.append(str(v - 1))
        elif k == "gt":
            bad.append(str(v))
        elif k == "le":
            bad.append(str(v + 1))
        elif k == "lt":
            bad.append(str(v))
        elif k == "choices" and base <= {str}:
            bad.append("zz_not_an_option")
    return bad


FIELDS = _fields()
CANDIDATES = [(c, key, bad) for c, key, tp, meta in FIELDS for bad in _bad_values(tp, meta)]
MALFORMED = [
    "trainer.seed=[",
    "=5",
    "trainer..seed=1",
    "optim.lr=)",
    "trainer.max_epochs={",
    "model=",
    "~zz",
    "optim.lr=interval(1,",
    "data.path=/tmp/ü",
    "trainer.zz_unknown=1",
    "model.zz_unknown=1",
    "zz_group=1",
    "optim=zz_missing",
    "optim=[sgd,adam]",
    "optim.lr=${oc.env:DLX_FUZZ_UNSET}",
]
tried = {"overrides": 0, "damaged": 0}


@st.composite
def bad_overrides(draw) -> list[str]:
    if draw(st.integers(0, 4)) == 0:
        return [draw(st.sampled_from(MALFORMED))]
    choose, key, bad = draw(st.sampled_from(CANDIDATES))
    return [*choose, f"{key}={bad}"]


@fuzz(60)
@given(bad=bad_overrides(), valid=st.sampled_from([[], ["optim=sgd"], ["trainer.seed=3"]]))
def test_fuzzed_overrides_exit_2_with_one_line(in_process, tmp_path, bad, valid):
    tried["overrides"] += 1
    code, _, err = in_process(["check", *valid, *bad, f"hydra.run.dir={tmp_path}/run"])
    assert code == 2, (bad, err)
    _error_line(err, "check")
    assert not (tmp_path / "run").exists()


def test_fuzzed_overrides_covered_every_field_group():
    groups = {key.split(".")[0] for _, key, _ in CANDIDATES}
    assert {"trainer", "model", "optim", "sched", "data", "regularization"} <= groups
    print(f"\n{len(CANDIDATES)} bad field values + {len(MALFORMED)} malformed overrides to draw")


@pytest.mark.parametrize("bad", ["optim.lr=nan", "trainer.precision=zz", "optim.lr=)"])
def test_fuzzed_kind_of_input_through_dlx_train_in_a_subprocess(tmp_path, bad):
    r = run_dlx("train", *QUIET, bad, cwd=tmp_path)
    assert r.returncode == 2
    _error_line(r.stderr, "train")
    assert not (tmp_path / "outputs").exists()


# --- (b) damaged run dirs ------------------------------------------------------------------------
FILES = [
    "summary.json",
    "metrics.csv",
    ".hydra/config.yaml",
    ".hydra/overrides.yaml",
    "checkpoints/best.pt",
    "checkpoints/last.pt",
    "provenance.json",
]
DAMAGES = ("missing", "empty", "truncated", "corrupt")


def damage(path: Path, how: str, noise: bytes) -> None:
    if not path.exists():
        return
    data = path.read_bytes()
    if how == "missing":
        path.unlink()
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    else:  # corrupt: noise over a stretch of the file
        at = len(data) // 3
        path.write_bytes(data[:at] + noise + data[at + len(noise) :])


@fuzz(16)
@given(
    hits=st.lists(
        st.tuples(st.sampled_from(FILES), st.sampled_from(DAMAGES)), min_size=1, max_size=3
    ),
    noise=st.binary(min_size=1, max_size=64),
    command=st.sampled_from(["eval", "resume", "report", "export"]),
)
def test_commands_on_a_damaged_run_dir_never_trace_back(
    in_process, finished, tmp_path, monkeypatch, hits, noise, command
):
    tried["damaged"] += 1
    root = tmp_path / f"case{tried['damaged']}"
    run = root / "run"
    shutil.copytree(finished, run)
    for name, how in hits:
        damage(run / name, how, noise)
    monkeypatch.chdir(root)
    argv = {
        "eval": ["eval", "run"],
        "resume": ["resume", "run"],
        "report": ["report", "."],
        "export": ["export", "run", "--format", "torchscript", "--out", "m.pt"],
    }[command]
    code, out, err = in_process(argv)
    assert code in (0, 1, 2), (hits, code, err)
    assert "Traceback" not in out + err, err
    if code == 2:
        _error_line(err, command)
    if command == "report" and code == 0 and any(n == "metrics.csv" for n, _ in hits):
        assert (root / "report" / "report.md").is_file()


def test_zz_report_how_many_inputs_were_tried():
    print(f"\nfuzzed: {tried['overrides']} override sets, {tried['damaged']} damaged run dirs")
    assert tried["overrides"] == 0 or tried["overrides"] >= 60
