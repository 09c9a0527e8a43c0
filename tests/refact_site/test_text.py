from __future__ import annotations

import pytest

from refact_site.text import count_noun


@pytest.mark.parametrize(("count", "expected"), [(0, "0 files"), (1, "1 file"), (2, "2 files"), (11, "11 files")])
def test_count_noun_agrees_with_the_count(count, expected):
    assert count_noun(count, "file") == expected


def test_count_noun_takes_an_irregular_plural():
    assert count_noun(2, "entry", "entries") == "2 entries"
