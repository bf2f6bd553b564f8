"""``dlx``: the command line. Each command imports what it needs only when it runs, so
``dlx --help`` answers at once (no torch, no tensorboard)."""

from __future__ import annotations

import atexit
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from dlx.commands.verbs import (
    cmd_diff,
    cmd_export,
    cmd_lr_find,
    cmd_report,
    cmd_sample,
    cmd_study,
    cmd_tb,
)
from dlx.errors import RunFailed, Signalled, UsageError
from dlx.status import SUCCEEDED

HELP = """\
usage: dlx COMMAND [ARGS]

Config-driven deep-learning experiments: PyTorch models, Hydra configs, TensorBoard logs.

commands:
  train [OVERRIDES]        one run; Hydra overrides, e.g. model=resnet optim=adam optim.lr=3e-4
  train -m [OVERRIDES]     a sweep: grid (optim=sgd,adam), random or TPE (sweep=random|tpe)
  check [OVERRIDES]        validate a run's config as train does, without running it
  resume RUN_DIR           continue an interrupted or killed run in place, with its saved config
  eval RUN_DIR [OVERRIDES] evaluate the run's best checkpoint on the test split
  eval RUN_DIR RUN_DIR… [OVERRIDES]
                           an ensemble: each run's and the averaged probabilities' test metrics
  runs [DIR]               a table of the runs and sweeps under DIR (default outputs/)
  summary [OVERRIDES]      the model's layers, output shapes, parameters and MACs
  tb [DIR]                 TensorBoard on DIR (default outputs/), bound to 127.0.0.1
  report DIR [--by KEY…] [--metric M…] [--target V]
                           runs grouped over seeds: mean ± std, curves, DIR/report/report.md
  study list | NAME [OVERRIDES] | all [study.only=A,B]
                           a textbook claim as an experiment: sweep, report, verdicts;
                           all: every study, and the index experiments/results/README.md
  diff RUN_A RUN_B         the two runs' config differences and their metrics side by side
  export RUN_DIR --format torchscript|onnx [--out PATH]
                           the best checkpoint as a TorchScript or ONNX file, checked
  lr-find [OPTIONS] [OVERRIDES]
                           the learning-rate range test (--min-lr --max-lr --steps):
                           suggested lr, curve as PNG and CSV
  sample RUN_DIR [--prompt P] [--length N] [--temperature T] [--seed S]
                           text from a language-model run's best checkpoint

`dlx train --help` lists the config groups, their options and the whole config.
"""


def _print_error(command: str, message: str) -> None:
    print(f"dlx {command}: error: {message}", file=sys.stderr, flush=True)


# --- commands ---------------------------------------------------------------------------------
def cmd_train(args: list[str]) -> int:
    from dlx.sweep.launch import train

    return train(args)


def cmd_check(args: list[str]) -> int:
    """``dlx check OVERRIDES``: the checks ``dlx train`` makes before a run dir (Hydra's
    parsing and composition, every group's schema, interpolations), then stop: exit 0 or 2."""
    from dlx.sweep.guard import CHECK_ONLY_ENV
    from dlx.sweep.launch import train

    if any(a in ("-m", "--multirun") for a in args):
        raise UsageError("dlx check takes one run's overrides (no -m)")
    os.environ[CHECK_ONLY_ENV] = "1"
    try:
        return train(args)
    finally:
        os.environ.pop(CHECK_ONLY_ENV, None)


def _run_dir_arg(command: str, args: list[str]) -> tuple[Path, list[str]]:
    if not args or args[0].startswith("-"):
        raise UsageError(
            f"usage: dlx {command} RUN_DIR"
            + (" [RUN_DIR…] [OVERRIDES]" if command == "eval" else "")
        )
    run_dir = Path(args[0])
    if not (run_dir / ".hydra" / "config.yaml").is_file():
        raise UsageError(f"RUN_DIR={run_dir}: not a dlx run dir (no .hydra/config.yaml)")
    return run_dir, args[1:]


#: statuses a resume leaves alone: the run is over
FINISHED = SUCCEEDED


def cmd_resume(args: list[str]) -> int:
    """Continue RUN_DIR from ``checkpoints/last.pt``; a finished run is reported, not rerun."""
    import json

    from dlx.engine.loop import run
    from dlx.engine.rundirs import load_run_config
    from dlx.sweep.launch import finished

    run_dir, rest = _run_dir_arg("resume", args)
    if rest:
        raise UsageError("dlx resume takes only RUN_DIR: a resumed run keeps its saved config")
    try:
        status = json.loads((run_dir / "summary.json").read_text()).get("status")
    except (OSError, ValueError, AttributeError):
        status = None  # killed before its summary: resume
    if status in FINISHED:
        print(f"dlx resume: {run_dir} already finished (status {status}); nothing to resume")
        return 0
    summary = run(load_run_config(run_dir), run_dir, resume=True)
    return finished(summary, run_dir)


def cmd_eval(args: list[str]) -> int:
    from dlx.commands.runs import print_eval
    from dlx.engine.spec import parse_run_dir

    run_dir, overrides = _run_dir_arg("eval", args)
    dirs = [run_dir]
    while overrides and "=" not in overrides[0] and not overrides[0].startswith("-"):
        more, overrides = _run_dir_arg("eval", overrides)  # several: an ensemble
        dirs.append(more)
    if len(dirs) > 1:
        from dlx.commands.ensemble import print_ensemble

        print_ensemble([(d, parse_run_dir(d, overrides)) for d in dirs])
        return 0
    print_eval(parse_run_dir(run_dir, overrides), run_dir)
    return 0


def cmd_runs(args: list[str]) -> int:
    from dlx.commands.runs import print_runs

    sort = None
    rest = []
    it = iter(args)
    for a in it:
        if a in ("--sort", "-s"):
            sort = next(it, None)
        elif a.startswith("--sort="):
            sort = a.split("=", 1)[1]
        else:
            rest.append(a)
    root = Path(rest[0]) if rest else Path("outputs")
    print_runs(root, sort=sort)
    return 0


def cmd_summary(args: list[str]) -> int:
    from dlx.commands.runs import compose, print_model_summary

    print_model_summary(compose(args))
    return 0


COMMANDS: dict[str, Callable[[list[str]], int]] = {
    "train": cmd_train,
    "check": cmd_check,
    "resume": cmd_resume,
    "eval": cmd_eval,
    "runs": cmd_runs,
    "summary": cmd_summary,
    "tb": cmd_tb,
    "report": cmd_report,
    "study": cmd_study,
    "diff": cmd_diff,
    "export": cmd_export,
    "lr-find": cmd_lr_find,
    "sample": cmd_sample,
}


def _drop_train_from_comp_line() -> None:
    """Hydra's shell completion reads the line being typed (``dlx train model=…``) from
    ``COMP_LINE`` and expects the app name alone before the overrides: drop ``train``."""
    import re

    line = os.environ.get("COMP_LINE")
    m = re.match(r"^(\s*\S+)(\s+train)\b", line or "")
    if not m:
        return
    os.environ["COMP_LINE"] = m.group(1) + line[m.end() :]
    point = int(os.environ.get("COMP_POINT", len(line)))
    os.environ["COMP_POINT"] = str(max(len(m.group(1)), point - len(m.group(2))))


def _raise_on_signals() -> None:
    """SIGTERM and SIGHUP (a closed terminal) stop a command as Ctrl-C does, so what it holds
    is closed and the exit code says which signal (training installs its own handlers)."""
    import signal

    def stop(signum: int, frame: object) -> None:
        raise Signalled(signum)

    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, stop)


def _interrupted(command: str, e: KeyboardInterrupt) -> int:
    """The exit code of a command stopped by a signal (128 + its number), said on one line."""
    import signal

    signum = getattr(e, "signum", signal.SIGINT)
    name = signal.Signals(signum).name
    print(f"dlx {command}: interrupted ({name}); files written so far are kept", file=sys.stderr)
    return 128 + signum


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(HELP, end="")
        sys.exit(0)
    if argv[0] in ("-V", "--version"):
        from dlx import __version__

        print(f"dlx {__version__}")
        sys.exit(0)
    if argv[0] in ("-sc", "--shell-completion"):  # the completion script calls `dlx -sc …`
        argv = ["train", *argv]
        _drop_train_from_comp_line()
    command, args = argv[0], argv[1:]
    import gc

    gc.disable()  # no full collections over the imports and set-up; training re-enables it
    if command not in COMMANDS:
        from dlx.suggest import allowed

        _print_error(command, f"unknown command; {allowed(command, COMMANDS)}")
        sys.exit(2)
    _raise_on_signals()
    from dlx.commands.usage import own_help

    if (text := own_help(command, args)) is not None:
        print(text, end="")
        sys.exit(0)
    try:
        code = COMMANDS[command](args)
    except (UsageError, RunFailed) as e:
        _print_error(command, str(e))
        code = e.exit_code
    except KeyboardInterrupt as e:  # Ctrl-C outside training, or a second one
        code = _interrupted(command, e)
    sys.exit(code)


def entry() -> None:
    """The ``dlx`` command: ``main``, then out without Python's module teardown, which takes
    about a second once torch is loaded. What teardown would finish is done first: the
    threads Python waits for (joblib's worker pool shuts down), the exit handlers (logging
    flushes), the standard streams; dlx's own files are closed when a command returns."""
    try:
        main()
    except SystemExit as e:
        code = e.code
    shutdown = getattr(threading, "_shutdown", None)
    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
    if "torch" not in sys.modules or shutdown is None or run_exit_handlers is None:
        sys.exit(code)
    if isinstance(code, str):
        print(code, file=sys.stderr)
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the code is decided: a late Ctrl-C (a
    for s in (signal.SIGTERM, signal.SIGHUP):  # pending one too) changes nothing; a late
        signal.signal(s, signal.SIG_DFL)  # SIGTERM ends the process as it asks
    shutdown()
    run_exit_handlers()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code if isinstance(code, int) else 0 if code is None else 1)
