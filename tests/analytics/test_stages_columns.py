"""The columns stages reads from SQLite as one string each, and the hash table that
matches the values of one column to those of another (no Python object per value)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from communitykit.analytics import _stages
from communitykit.analytics._stages import _SEP, _Column, _Index, _Unreadable

values = st.text(st.sampled_from("ab\x00é😀0123456789:"), max_size=20)


@given(ref=st.lists(values, unique=True, max_size=40), query=st.lists(values, max_size=60))
def test_a_value_is_found_at_the_row_of_the_equal_value_or_not_at_all(
    ref: list[str], query: list[str]
) -> None:
    query = query + ref[::2]
    index = _Index(_Column(_SEP.join(ref), len(ref)))
    found = index.find(_Column(_SEP.join(query), len(query)))
    rows = {value: n for n, value in enumerate(ref)}
    assert found.tolist() == [rows.get(value, -1) for value in query]


@given(st.lists(values, max_size=30))
def test_a_column_splits_into_its_values(found: list[str]) -> None:
    column = _Column(_SEP.join(found), len(found))
    assert len(column) == len(found)
    assert [column.value(i) for i in range(len(found))] == found


def test_a_value_holding_the_separator_makes_the_column_unreadable() -> None:
    with pytest.raises(_Unreadable):
        _Column(_SEP.join(["a", f"b{_SEP}c"]), 2)


def test_two_values_with_one_hash_make_the_index_unreadable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # (stages then falls back to the full scan)
    monkeypatch.setattr(
        _stages, "_hashes", lambda words, lengths: np.zeros(len(lengths), np.uint64)
    )
    with pytest.raises(_Unreadable):
        _Index(_Column(_SEP.join(["a", "b"]), 2))
