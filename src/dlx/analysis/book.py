"""The book of answers: every study's verdicts as data (``report/verdicts.json``, written by
``dlx.analysis.ledger``) gathered; ``dlx study NAME|all`` and ``dlx study list`` (with each
study's last verdicts); ``dlx study all`` (every packaged study, each in its own folder,
resumable) and its index,
``experiments/results/README.md``: per claim its source, verdict, p, effect, n, the budget, the
wall time and links to the report and its main figure."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from dlx.analysis.ledger import VERDICTS
from dlx.errors import UsageError

#: where ``dlx study all`` copies each study's report, and writes the index
RESULTS = Path("experiments/results")
#: where ``dlx study all`` runs each study (``<dir>/NAME``: a re-run resumes it)
RUNS = Path("outputs/studies/all")
#: the report files that ``dlx study all`` copies into the results (no run dirs)
COPIED = ("*.md", "*.png", "*.txt", "*.json")


def load_all(results: Path) -> list[dict[str, Any]]:
    """Every study's ``verdicts.json`` under ``results/NAME/``, by name."""
    files = sorted(results.glob(f"*/{VERDICTS}")) if results.is_dir() else []
    return [json.loads(f.read_text()) | {"folder": f.parent.name} for f in files]


def last_verdicts(results: Path = RESULTS) -> dict[str, str]:
    """``dlx study list``'s column: per study, its claims' last verdict words counted."""
    out = {}
    for data in load_all(results):
        words = [c["word"] for c in data["claims"]]
        out[data["study"]] = ", ".join(f"{words.count(w)} {w}" for w in dict.fromkeys(words))
    return out


def _wall(s: float | None) -> str:
    if s is None:
        return "-"
    return f"{int(s // 60)} min {int(s % 60)} s" if s >= 60 else f"{s:.0f} s"


def _num(x: float | None, ratio: bool = False) -> str:
    if x is None:
        return "-"
    return f"{x:.3g}x" if ratio else f"{x:+.3g}"


def index(results: Path, studies: dict[str, tuple[str, str, list[str]]] | None = None) -> str:
    """The index's Markdown: one row per claim of every study under ``results``; with
    ``studies`` (name -> source, budget, claim texts) a row per claim of one not run yet."""
    head = [
        "# The book of answers",
        "",
        "Every packaged study (`dlx study list`), written by `dlx study all` at its default "
        "budget; one row per claim. A verdict is a one-sided test in the claimed direction with "
        "Holm's correction across the study's claims (`supported`, `contradicted`, "
        "`inconclusive`); p is the raw one-sided p of the verdict's direction, the effect the "
        "test's estimate (a difference; `x`: a ratio), n the runs (or sweeps) per group. Each "
        "study's report says why, and what would settle an open claim. Wall times are whole "
        "`dlx study` processes on the machine that ran them (under load, several times longer).",
        "",
        "| study | claim | source | verdict | p | effect | n | budget | wall time | report |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    done = {d["folder"]: d for d in load_all(results)}
    rows = [_row(d, c) for d in done.values() for c in d["claims"]]
    for name, (source, budget, texts) in sorted((studies or {}).items()):
        if name not in done:
            old = (results / name / "report.md").is_file()  # an earlier run, before the book
            word, link = (
                ("see its report", f"[report]({name}/report.md)") if old else ("not run yet", "-")
            )
            rows += [
                _cells([f"`{name}`", t, source, word, *"---", budget, "-", link]) for t in texts
            ]
    return "\n".join([*head, *rows, ""])


def _row(data: dict[str, Any], c: dict[str, Any]) -> str:
    f = data["folder"]
    links = f"[report]({f}/report.md)"
    if data.get("figure"):
        links += f", [figure]({f}/{data['figure']})"
    p = "-" if c["p"] is None else f"{c['p']:.3g}"
    effect = _num(c["effect"], c.get("ratio", False))
    n = "/".join(str(n) for n in c["n"])
    wall = _wall(data.get("wall_s"))
    return _cells(
        [
            f"`{data['study']}`",
            c["text"],
            data["source"],
            f"**{c['word']}**" + (f" ({c['needs']})" if c.get("needs") else ""),
            p,
            effect,
            n,
            data["budget"],
            wall,
            links,
        ]
    )


def _cells(cells: list[str]) -> str:
    return "| " + " | ".join(str(x).replace("|", "\\|") for x in cells) + " |"


def packaged(config_dirs: list[Path]) -> dict[str, tuple[str, str, list[str]]]:
    """Every study's source and claim texts, by name (the index's rows before a run)."""
    from dlx.analysis import search_study, study

    out = {}
    for name in study.names(config_dirs):
        path = study.find(name, config_dirs)
        if search_study.is_search(path):
            st = search_study.load(path)
            texts = [f"{st.better} search beats {st.than} (see the report)"]
            out[name] = (st.source, st.budget, texts)
        else:
            sd = study.load(path)
            out[name] = (sd.source, sd.budget, [c.text for c in sd.claims])
    return out


def write_index(results: Path, config_dirs: list[Path] | None = None) -> Path:
    """``results/README.md``: the index (with a row per claim not run yet when
    ``config_dirs`` is given: the packaged studies and those under them)."""
    results.mkdir(parents=True, exist_ok=True)
    file = results / "README.md"
    file.write_text(index(results, None if config_dirs is None else packaged(config_dirs)))
    return file


def copy_report(out: Path, dest: Path) -> None:
    """The study's report files (no run dirs, no checkpoints) into ``dest``, replaced."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for pattern in COPIED:
        for f in (out / "report").glob(pattern):
            shutil.copy2(f, dest / f.name)


#: ``study.KEY=VALUE`` options of ``dlx study all`` and their defaults
ALL_OPTIONS = {"only": "", "results": str(RESULTS), "dir": str(RUNS)}


def _search_only(override: str) -> bool:
    """An option only search studies take (``study.trials=N``)."""
    return override.startswith("study.trials=")


def run_all(extra: list[str], config_dirs: list[Path]) -> int:
    """``dlx study all``: every study (``study.only=a,b``: those) into ``study.dir/NAME``,
    its report copied to ``study.results/NAME``, then the index; the worst exit code."""
    from dlx.analysis.search_study import is_search
    from dlx.analysis.settle import STOPPED
    from dlx.analysis.study import find, names

    opts, rest = dict(ALL_OPTIONS), []
    for o in extra:
        key, _, value = o.partition("=")
        if key.removeprefix("study.") in ALL_OPTIONS and key.startswith("study."):
            opts[key.removeprefix("study.")] = value
        else:
            rest.append(o)
    every = names(config_dirs)
    chosen = [n for n in opts["only"].split(",") if n] or every
    for n in chosen:
        if n not in every:
            raise UsageError(f"study.only: {n}: unknown; choose from: {', '.join(every)}")
    code, results = 0, Path(opts["results"])
    for n in chosen:
        out = Path(opts["dir"]) / n
        print(f"dlx study all: {n} -> {out}")
        args = rest if is_search(find(n, config_dirs)) else [o for o in rest if not _search_only(o)]
        code = max(code, run_study(n, [*args, f"hydra.sweep.dir={out}"], config_dirs))
        if (out / "report" / VERDICTS).is_file():
            copy_report(out, results / n)
        if code in STOPPED:
            break
    print(f"index: {write_index(results, config_dirs)}")
    return code


def run_study(name: str, extra: list[str], config_dirs: list[Path]) -> int:
    """``dlx study NAME|all``: ``all``, every study (``run_all``); else the one study
    (``dlx.analysis.settle.run_study``). The exit code."""
    from dlx.analysis import settle

    if name == "all":
        return run_all(extra, config_dirs)
    return settle.run_study(name, extra, config_dirs)


def print_list(config_dirs: list[Path]) -> None:
    """``dlx study list``: every study, its claim, source and default budget, and its claims'
    last verdicts where ``experiments/results/`` holds them (``dlx study all``)."""
    from rich.markup import escape
    from rich.table import Table

    from dlx.analysis import search_study
    from dlx.analysis.study import find, load, names
    from dlx.console import fold, wide

    last = last_verdicts()
    table = Table(title="studies", title_justify="left")
    for col in ("study", "claim", "source", "budget", *(["last verdicts"] if last else [])):
        table.add_column(col)
    for n in names(config_dirs):
        path = find(n, config_dirs)
        st = search_study.load(path) if search_study.is_search(path) else load(path)
        cells = [n, st.claim, st.source, st.budget, *([last.get(n, "-")] if last else [])]
        table.add_row(*map(escape, cells))
    console = wide()
    console.print(fold(table))
