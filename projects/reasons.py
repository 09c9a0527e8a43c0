"""Stage-1 reasons, free of Django so that scan worker processes import them cheaply."""

from __future__ import annotations

# Stage-1 reasons, in the order they are checked (DESIGN.md); shown to users exactly as written.
LINGUIST_ERROR = "Linguist error"
NOT_TEXT = "Not text"
NOT_CODE = "Not code"
TOO_LARGE = "File is too large"
GENERATED = "Generated"
VENDORED = "Vendored"
LOTS_OF_DIGITS = "Lots of digits"
DUPLICATES = "Duplicates"
EXCLUDED_BY_MASK = "Excluded by mask"
TYPE_OFF = "Type off"
REASONS = (
    LINGUIST_ERROR,
    NOT_TEXT,
    NOT_CODE,
    TOO_LARGE,
    GENERATED,
    VENDORED,
    LOTS_OF_DIGITS,
    DUPLICATES,
    EXCLUDED_BY_MASK,
    TYPE_OFF,
)
# An include mask cannot bring these back: the file could not be read as text at all.
UNRECOVERABLE_REASONS = (LINGUIST_ERROR, NOT_TEXT)
