"""'Did you mean …?' for a misspelt key, option or command (difflib's close matches)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

#: lists up to this long are shown in full beside a suggestion
SHORT = 8


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
    """``WHAT: a, b, c`` with ``(did you mean PREFIX+MATCH?)`` after it when ``word`` is close
    to one of ``choices``; a long list (over ``SHORT`` choices) gives way to the suggestion."""
    choices = [str(c) for c in choices]
    matches = close_matches(word, choices)
    listed = f"{what}: {', '.join(choices)}"
    if not matches:
        return listed
    hint = "did you mean " + " or ".join(f"{prefix}{m}" for m in matches) + "?"
    return hint if len(choices) > SHORT else f"{listed} ({hint})"
