from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wfa_notebook.chunk import Chunk
from wfa_notebook.errors import WfaChunkError
from toy_plugins import make_pulses, pulse_dtype


def chunk_of(rows, start=0, end=None):
    end = int(rows["time"][-1]) + 10 if end is None else end
    return Chunk(rows, start, end, "run1", "pulses")


def test_rows_must_be_sorted():
    rows = make_pulses(5)
    rows["time"] = rows["time"][::-1]
    with pytest.raises(WfaChunkError, match="sorted by time"):
        chunk_of(rows, 0, int(rows["time"].max()) + 10)


def test_rows_must_lie_inside_interval():
    rows = make_pulses(5)
    with pytest.raises(WfaChunkError, match=r"Promised: \[0, 50\)"):
        Chunk(rows, 0, 50, "run1", "pulses")
    last_end = int(rows["time"][-1]) + 10
    with pytest.raises(WfaChunkError, match="Delivered"):
        Chunk(rows, 0, last_end - 1, "run1", "pulses")  # last row's endtime sticks out by 1 ns
    assert len(Chunk(rows, 0, last_end, "run1", "pulses")) == 5


def test_concat_requires_continuity_and_same_kind():
    rows = make_pulses(20)
    whole = chunk_of(rows)
    left, right = whole.split(int(rows["time"][10]))
    gap = Chunk(right.data[1:], int(right.data["time"][1]), right.end, "run1", "pulses")
    with pytest.raises(WfaChunkError, match="does not continue"):
        Chunk.concat([left, gap])
    other = Chunk(right.data, right.start, right.end, "run2", "pulses")
    with pytest.raises(WfaChunkError, match="one run and data type"):
        Chunk.concat([left, other])
    with pytest.raises(WfaChunkError, match="at least one"):
        Chunk.concat([])


def test_split_refuses_to_cut_through_a_row():
    rows = make_pulses(10)
    whole = chunk_of(rows)
    inside_row = int(rows["time"][3]) + 5
    with pytest.raises(WfaChunkError, match="cannot split"):
        whole.split(inside_row)
    with pytest.raises(WfaChunkError, match="outside the chunk"):
        whole.split(whole.end + 1)


def test_merge_combines_fields_of_the_same_rows():
    rows = make_pulses(8)
    a = chunk_of(rows)
    extra = np.zeros(8, [("time", np.int64), ("area", np.float32)])
    extra["time"] = rows["time"]
    extra["area"] = np.arange(8)
    b = Chunk(extra, a.start, a.end, "run1", "extra")
    merged = Chunk.merge([a, b])
    assert merged.data.dtype.names == ("time", "length", "dt", "value", "area")
    np.testing.assert_array_equal(merged.data["area"], np.arange(8))
    np.testing.assert_array_equal(merged.data["value"], rows["value"])
    shifted = extra.copy()
    shifted["time"] += 1
    with pytest.raises(WfaChunkError, match="other times"):
        Chunk.merge([a, Chunk(shifted, a.start, a.end, "run1", "extra")])


@settings(max_examples=60, deadline=None)
@given(n_rows=st.integers(0, 60), cuts=st.lists(st.integers(0, 60), max_size=6), seed=st.integers(0, 5))
def test_split_then_concat_is_identity(n_rows, cuts, seed):
    rows = make_pulses(n_rows, seed) if n_rows else np.zeros(0, pulse_dtype)
    end = int(rows["time"][-1]) + 10 if n_rows else 1000
    whole = Chunk(rows, 0, end, "run1", "pulses")
    # cut only at row start times (rows never overlap here) or the end
    points = sorted({int(rows["time"][c]) if c < n_rows else end for c in cuts})
    pieces, rest = [], whole
    for p in points:
        left, rest = rest.split(p)
        pieces.append(left)
    pieces.append(rest)
    assert sum(len(p) for p in pieces) == n_rows
    for p in pieces:  # each piece obeys the invariants (checked on construction) and its bounds
        assert p.start <= p.end
    joined = Chunk.concat(pieces)
    assert (joined.start, joined.end) == (whole.start, whole.end)
    np.testing.assert_array_equal(joined.data, whole.data)
