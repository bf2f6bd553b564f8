"""The ``dlx`` verbs that read runs or wrap a tool: report, study, tb, diff, export, lr-find,
sample. Each imports its heavy parts only when it runs (``dlx --help`` stays instant)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from dlx.errors import UsageError


def parser(command: str, usage: str):
    """An argparse parser whose errors are one ``UsageError`` line (exit 2)."""
    import argparse

    class Parser(argparse.ArgumentParser):
        def error(self, message: str):  # type: ignore[override]
            raise UsageError(f"{message}; usage: dlx {command} {usage}")

    return Parser(prog=f"dlx {command}", usage=f"dlx {command} {usage}")


def cmd_report(args: list[str]) -> int:
    from dlx.analysis.report import run_report

    p = parser("report", "DIR [--by KEY…] [--metric M…] [--target V]")
    p.add_argument("dir", type=Path)
    p.add_argument("--by", nargs="+", help="group by these override keys")
    p.add_argument("--metric", nargs="+", help="metrics to show (default: the monitor's)")
    p.add_argument("--target", type=float, help="epochs until the monitored metric reaches it")
    ns = p.parse_args(args)
    run_report(ns.dir, ns.by, ns.metric, ns.target)
    return 0


def cmd_study(args: list[str]) -> int:
    from dlx.analysis.book import print_list, run_study

    dirs, rest = [], []
    it = iter(args)
    for a in it:
        if a in ("-cd", "--config-dir"):
            dirs.append(Path(next(it, "")))
        else:
            rest.append(a)
    if not rest:
        raise UsageError("usage: dlx study list | dlx study NAME|all [OVERRIDES] [-cd DIR]")
    if rest[0] == "list":
        print_list(dirs)
        return 0
    return run_study(rest[0], rest[1:], dirs)


def tb_argv(args: list[str]) -> list[str]:
    """The command ``dlx tb [DIR] [TENSORBOARD FLAGS]`` runs: bound to 127.0.0.1 unless the
    flags name a host (``--host``, ``--bind_all``)."""
    root = args[0] if args and not args[0].startswith("-") else "outputs"
    extra = args[1:] if args and not args[0].startswith("-") else list(args)
    if not any(a.startswith("--host") or a == "--bind_all" for a in extra):
        extra = ["--host", "127.0.0.1", *extra]
    return [sys.executable, "-m", "tensorboard.main", "--logdir", root, *extra]


def cmd_tb(args: list[str]) -> int:
    from dlx.analysis.hparams import write_experiment

    argv = tb_argv(args)
    root = Path(argv[argv.index("--logdir") + 1])
    root.mkdir(parents=True, exist_ok=True)
    try:  # the HParams columns: what runs overrode and sweeps varied, first
        write_experiment(root)
    except OSError as e:  # a read-only folder: TensorBoard orders the columns itself
        print(f"dlx tb: HParams columns not written ({e})", file=sys.stderr)
    os.execv(argv[0], argv)
    return 0  # not reached


def cmd_diff(args: list[str]) -> int:
    if len(args) != 2 or any(a.startswith("-") for a in args):
        raise UsageError("usage: dlx diff RUN_A RUN_B (two run dirs)")
    from dlx.analysis.diff import print_diff

    print_diff(Path(args[0]), Path(args[1]))
    return 0


def cmd_export(args: list[str]) -> int:
    from dlx.commands.export import cmd_export as export

    return export(args)


def cmd_lr_find(args: list[str]) -> int:
    from dlx.commands.lrfind import cmd_lr_find as lr_find

    return lr_find(args)


def cmd_sample(args: list[str]) -> int:
    from dlx.commands.sample import sample_run

    p = parser("sample", "RUN_DIR [--prompt P] [--length N] [--temperature T] [--seed S]")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--prompt", default="the time ", help="text to continue")
    p.add_argument("--length", type=int, default=200, help="characters to generate")
    p.add_argument("--temperature", type=float, default=1.0, help="> 0; lower: safer text")
    p.add_argument("--seed", type=int, default=None, help="the same seed, the same text")
    ns = p.parse_args(args)
    print(sample_run(ns.run_dir, ns.prompt, ns.length, ns.temperature, ns.seed))
    return 0
