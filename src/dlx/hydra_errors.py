"""Hydra's composition errors, as one line that names the key and what is allowed."""

from __future__ import annotations


def hydra_error_line(e: Exception, args: list[str]) -> str | None:
    return repr(e)
