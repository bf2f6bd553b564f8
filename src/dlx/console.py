"""Rich output that reads at any width and in any log: piped, a table keeps its natural
width (never cut at 80 columns); on a narrow terminal its cells fold (a long path goes on
the next line, whole) instead of ending in an ellipsis."""

from __future__ import annotations

from typing import Any

#: a console's width when it is not a terminal: wider than any row, so nothing is cut
LOG_WIDTH = 10_000


def wide(console: Any = None) -> Any:
    """``console`` (a new stdout console by default), as wide as its rows when piped."""
    from rich.console import Console

    console = console or Console()
    if not console.is_terminal:
        console.width = LOG_WIDTH
    return console


def fold(table: Any) -> Any:
    """``table`` with every column folding what does not fit rather than cutting it."""
    for column in getattr(table, "columns", ()):
        column.overflow = "fold"
    return table


def show(table: Any, console: Any = None) -> None:
    """Print ``table`` whole, on a terminal of any width or into a log."""
    wide(console).print(fold(table))
