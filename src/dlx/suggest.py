"""'Did you mean …?' for a misspelt key, option or command (difflib's close matches)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def close_matches(word: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """The choices closest to ``word`` (difflib's ratio ≥ 0.6), best first, only those within
    0.1 of the best (``lenett``: ``lenet``, not also ``alexnet``)."""
    word = str(word)
    matches = difflib.get_close_matches(word, [str(c) for c in choices], n=n, cutoff=0.6)
    ratios = [difflib.SequenceMatcher(None, word, m).ratio() for m in matches]
    return [m for m, r in zip(matches, ratios, strict=True) if r >= ratios[0] - 0.1]


def allowed(
    word: str, choices: Iterable[str], what: str = "choose one of", prefix: str = ""
) -> str:
    """``did you mean PREFIX+MATCH?`` when ``word`` is close to one of ``choices``; else
    ``WHAT: a, b, c`` (every choice)."""
    choices = [str(c) for c in choices]
    matches = close_matches(word, choices)
    if matches:
        return "did you mean " + " or ".join(f"{prefix}{m}" for m in matches) + "?"
    return f"{what}: {', '.join(choices)}"
