"""Small text helpers shared by messages, logs and command output."""

from __future__ import annotations


def count_noun(count: int, singular: str, plural: str | None = None) -> str:
    """`1 file`, `2 files`, `0 files`: a count with its noun in the right number."""
    return f"{count} {singular if count == 1 else plural or singular + 's'}"
