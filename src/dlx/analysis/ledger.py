"""One study's verdicts as data, ``report/verdicts.json``: each claim's verdict as the book of
answers (``dlx.analysis.book``) keeps it, the study's main figure and its wall time."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from dlx.analysis import stats, verdicts

VERDICTS = "verdicts.json"


def record(text: str, word: str, res: stats.Result, line: str, p_holm: float | None) -> dict:
    """One claim's verdict as the book keeps it."""
    return {
        "text": text,
        "word": word,
        "test": res.test,
        "p": _finite(res.p_other if word == "contradicted" else res.p_claim),
        "p_holm": _finite(p_holm),
        "effect": _finite(res.diff),
        "ratio": bool(res.log),
        "n": list(res.n),
        "needs": verdicts.needs(res) if word == "inconclusive" else None,
        "line": line,
    }


def _finite(x: float | None) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def save(
    folder: Path, name: str, claim: str, source: str, budget: str, claims: list[dict], figure: str
) -> None:
    """``folder/verdicts.json``: the study's claims and verdicts (wall time added later)."""
    data = {"study": name, "claim": claim, "source": source, "budget": budget}
    data.update(figure=figure, claims=claims, written=time.strftime("%Y-%m-%d %H:%M:%S"))
    (folder / VERDICTS).write_text(json.dumps(data, indent=1))


def stamp_wall(folder: Path, seconds: float) -> None:
    """Add the study command's wall time to ``folder/verdicts.json`` (when there is one)."""
    file = folder / VERDICTS
    if file.is_file():
        data = json.loads(file.read_text())
        data["wall_s"] = round(seconds, 1)
        file.write_text(json.dumps(data, indent=1))


def main_figure(folder: Path, metric: str) -> str:
    """The report's figure of a claim's metric (its bar chart), else its first figure."""
    from dlx.analysis.plots import _slug

    for name in (f"bars_{_slug(metric)}.png", "grad_norms.png"):
        if (folder / name).is_file():
            return name
    pngs = sorted(p.name for p in folder.glob("*.png"))
    return pngs[0] if pngs else ""
