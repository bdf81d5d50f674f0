"""The whole built-in chain gives the same rows however the source cuts its chunks."""
from __future__ import annotations

import numpy as np
import pytest

from wfa_notebook import default_context
from wfa_notebook.io.chunking import cut_is_safe, first_gap_at_or_after

BUSY_RUN = {
    "synthetic_n_channels": 8,
    "synthetic_duration_ns": 2_000_000,
    "synthetic_pulse_rate_hz": 100_000.0,  # records overlap often across channels
}


@pytest.mark.parametrize("target", ["hits", "peak_basics", "event_basics"])
def test_chain_is_independent_of_chunk_duration(tmp_path, target):
    whole = default_context(tmp_path / "a", config={**BUSY_RUN, "chunk_duration_ns": 10**9}, max_workers=1)
    small = default_context(tmp_path / "b", config={**BUSY_RUN, "chunk_duration_ns": 5_000}, max_workers=1)
    expected = whole.get_array("busy", target)
    got = small.get_array("busy", target)
    assert small.last_run.chunks["raw_records"] > 10 * whole.last_run.chunks["raw_records"]
    assert len(got) == len(expected) > 0
    for name in got.dtype.names:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)


def test_narrow_gaps_are_not_used_as_chunk_boundaries():
    rows = np.zeros(4, [("time", np.int64), ("endtime", np.int64)])
    rows["time"] = [0, 100, 1_000, 10_000]
    rows["endtime"] = [90, 200, 1_100, 10_100]
    assert first_gap_at_or_after(rows, 150) == 200  # no minimum: the first free point
    # the 8.9 us gap before 10 us is the first one wide enough; the cut leaves 2.5 us on each side
    assert first_gap_at_or_after(rows, 150, min_gap_ns=5_000) == 3_600
    # no gap inside is wide enough: half a gap after the last row, final only if nothing follows soon
    assert first_gap_at_or_after(rows, 150, min_gap_ns=20_000) == 20_100
    assert cut_is_safe(20_100, watermark_ns=30_100, min_gap_ns=20_000)
    assert not cut_is_safe(20_100, watermark_ns=30_099, min_gap_ns=20_000)
