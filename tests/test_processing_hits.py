"""Hit finding: where hits start and end (record edges, extensions, merging), what they carry, how
thresholds are given, and properties that hold for any records."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wfa_notebook import dtypes
from wfa_notebook.errors import WfaConfigError
from wfa_notebook.processing import concatenate_hits, find_hits, hits as hits_module, sort_hits


def make_records(rows, lengths=None, dt=2.0, times=None, channels=None, rms=1.0, n_samples=12):
    """Processed records from a 2-d list of baseline-subtracted samples.

    Rows are padded with zeros to ``n_samples`` (every record size is a separate numba
    compilation, so the tests stick to a few sizes); ``length`` defaults to the row length.
    """
    rows = np.asarray(rows, dtype=np.float32)
    n, n_given = rows.shape
    n_samples = max(n_samples, n_given)
    records = np.zeros(n, dtypes.record_dtype(n_samples))
    records["data"][:, :n_given] = rows
    records["length"] = n_given if lengths is None else lengths
    records["dt"] = dt
    records["time"] = np.arange(n) * 1000 if times is None else times
    records["channel"] = 0 if channels is None else channels
    records["baseline_rms_adc"] = rms
    for i, length in enumerate(records["length"]):
        records["data"][i, length:] = 0
    return records


def reference_hits(records, threshold, left, right, min_samples=1):
    """The hit rule written out plainly: (record index, start, end, first above, last above end)."""
    out = []
    for i, r in enumerate(records):
        length = int(r["length"])
        above = r["data"][:length] > np.float32(threshold)
        runs, j = [], 0
        while j < length:
            if above[j]:
                k = j
                while k < length and above[k]:
                    k += 1
                if k - j >= min_samples:
                    runs.append((j, k))
                j = k
            else:
                j += 1
        merged = []
        for a, b in runs:
            lo, hi = max(a - left, 0), min(b + right, length)
            if merged and lo < merged[-1][1]:
                merged[-1][1], merged[-1][3] = hi, b
            else:
                merged.append([lo, hi, a, b])
        out += [(i, lo, hi, a, b) for lo, hi, a, b in merged]
    return out


def test_hit_carries_time_length_area_height_and_time_of_maximum():
    records = make_records([[0, 0, 1, 5, 20, 9, 4, 0, 0, 0]], dt=2.0, times=[1000], channels=[7])
    hits = find_hits(records, threshold_adc=3, left_extension_samples=1, right_extension_samples=1)
    assert len(hits) == 1
    h = hits[0]
    # above threshold: samples 3..6; extended by one on each side: 2..7
    assert (h["left_sample"], h["length"]) == (2, 6)
    assert h["time"] == 1000 + 2 * 2 and h["time_max"] == 1000 + 4 * 2
    assert h["area_adc_ns"] == pytest.approx((1 + 5 + 20 + 9 + 4 + 0) * 2.0)
    assert h["height_adc"] == 20 and h["threshold_adc"] == 3
    assert h["channel"] == 7 and h["record_time"] == 1000 and h["dt"] == 2.0
    assert h["record_edge"] == 0
    assert dtypes.endtime(hits)[0] == 1000 + 8 * 2


@pytest.mark.parametrize(
    ("samples", "expected_max_sample"),
    [
        ([0, 5, 9, 7, 0], 2),
        ([0, 9, 9, 9, 0], 2),  # middle of a flat top
        ([0, 9, 9, 0, 0], 2),  # two equal samples: the later one
        ([9, 0, 9, 9, 0], 0),  # equal but separate maxima: the first, not a point between them
    ],
)
def test_time_of_maximum_is_the_highest_sample_or_the_middle_of_a_flat_top(samples, expected_max_sample):
    hits = find_hits(make_records([samples], dt=1.0, times=[100]), threshold_adc=1, right_extension_samples=5)
    assert len(hits) == 1
    assert hits["time_max"][0] == 100 + expected_max_sample


EDGE = dtypes.RECORD_EDGE_START
END = dtypes.RECORD_EDGE_END


@pytest.mark.parametrize(
    ("samples", "length", "left", "right", "expected"),
    [
        # (left_sample, length, record_edge) per hit
        pytest.param([9, 9, 0, 0, 0, 0], 6, 2, 2, [(0, 4, EDGE)], id="at record start, extension clipped"),
        pytest.param([0, 0, 0, 0, 9, 9], 6, 2, 2, [(2, 4, END)], id="at record end, extension clipped"),
        pytest.param([9, 9, 9, 9, 9, 9], 6, 2, 2, [(0, 6, EDGE | END)], id="whole record above threshold"),
        pytest.param([0, 0, 9, 9, 0, 0], 4, 0, 5, [(2, 2, END)], id="ends at length, not at the array end"),
        pytest.param([0, 0, 0, 0, 9, 9], 4, 0, 0, [], id="above threshold only beyond length"),
        pytest.param([9, 0, 0, 0, 0, 9], 6, 0, 0, [(0, 1, EDGE), (5, 1, END)], id="one sample at each edge"),
        pytest.param([9, 0, 9, 0, 0, 0], 6, 0, 0, [(0, 1, EDGE), (2, 1, 0)], id="one sample apart stay apart"),
        pytest.param([9, 0, 9, 0, 0, 0], 6, 0, 2, [(0, 5, EDGE)], id="overlapping extensions merge"),
        pytest.param([0, 9, 0, 0, 9, 0, 0, 0], 8, 1, 1, [(0, 3, 0), (3, 3, 0)], id="touching extensions stay apart"),
        pytest.param([5, 5, 5, 5, 5, 5], 0, 3, 3, [], id="length 0"),
        pytest.param([4, 3, 4, 3, 4, 3], 6, 1, 1, [], id="at threshold is not above"),
    ],
)
def test_hits_at_record_edges_and_between_each_other(samples, length, left, right, expected):
    records = make_records([samples], lengths=[length], dt=1.0)
    hits = find_hits(records, threshold_adc=4, left_extension_samples=left, right_extension_samples=right)
    got = [(int(h["left_sample"]), int(h["length"]), int(h["record_edge"])) for h in hits]
    assert got == expected


@pytest.mark.parametrize(
    ("min_samples", "expected_starts"),
    [(1, [1, 4, 8]), (2, [4, 8]), (3, [8]), (4, [])],
)
def test_short_runs_are_ignored_with_min_consecutive_samples(min_samples, expected_starts):
    row = [0, 9, 0, 0, 9, 9, 0, 0, 9, 9, 9, 0]
    hits = find_hits(
        make_records([row]), threshold_adc=4, left_extension_samples=0, right_extension_samples=0,
        min_consecutive_samples=min_samples,
    )
    assert list(hits["left_sample"]) == expected_starts


def test_times_are_whole_ns_and_stay_inside_the_record_for_a_fractional_dt():
    dt = 4.0 / 3.0  # DRS4 at 750 MS/s
    row = np.zeros(300, np.float32)
    row[[5, 100, 211, 298, 299]] = 50
    records = make_records([row], dt=dt, times=[10_000])
    hits = find_hits(records, threshold_adc=10, left_extension_samples=0, right_extension_samples=0)
    assert list(hits["left_sample"]) == [5, 100, 211, 298]
    assert list(hits["time"]) == [10_000 + math.floor(s * dt) for s in (5, 100, 211, 298)]
    assert dtypes.endtime(hits).max() <= dtypes.endtime(records)[0]
    assert np.all(hits["time_max"] >= hits["time"]) and np.all(hits["time_max"] < dtypes.endtime(hits))


def test_hits_are_sorted_by_time_across_records_and_channels():
    # a long record of channel 0 starts first but its pulse comes after channel 1's
    rows = np.zeros((2, 12), np.float32)
    rows[0, 11] = 30
    rows[1, 2] = 30
    records = make_records(rows, times=[0, 50], channels=[0, 1], dt=10.0)
    hits = find_hits(records, threshold_adc=10, left_extension_samples=0, right_extension_samples=0)
    assert list(hits["channel"]) == [1, 0]
    assert list(hits["time"]) == [70, 110]


def test_per_channel_thresholds_are_indexed_by_channel():
    rows = [[0, 12, 0], [0, 12, 0], [0, 12, 0]]
    records = make_records(rows, channels=[0, 1, 2])
    hits = find_hits(records, threshold_adc=[5, 20, 11], left_extension_samples=0, right_extension_samples=0)
    assert list(hits["channel"]) == [0, 2]
    assert list(hits["threshold_adc"]) == [5, 11]


def test_threshold_in_units_of_baseline_rms_and_the_larger_of_both():
    records = make_records([[0, 12, 0], [0, 12, 0]], channels=[0, 0])
    records["baseline_rms_adc"] = [2.0, 5.0]
    by_rms = find_hits(records, threshold_rms=3, left_extension_samples=0, right_extension_samples=0)
    assert list(by_rms["threshold_adc"]) == [6.0]
    both = find_hits(records, threshold_adc=8, threshold_rms=3, left_extension_samples=0, right_extension_samples=0)
    assert list(both["threshold_adc"]) == [8.0]
    per_channel = find_hits(records, threshold_rms=np.array([2.0]), left_extension_samples=0)
    assert list(per_channel["threshold_adc"]) == [4.0, 10.0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "give threshold_adc"),
        ({"threshold_adc": -1}, ">= 0"),
        ({"threshold_adc": np.nan}, "finite"),
        ({"threshold_adc": [5, 5]}, "at least 3 values"),
        ({"threshold_rms": [[1]]}, "1-d array"),
        ({"threshold_adc": 5, "left_extension_samples": -1}, "left_extension_samples"),
        ({"threshold_adc": 5, "min_consecutive_samples": 0}, "min_consecutive_samples"),
    ],
)
def test_bad_thresholds_and_extensions_raise_with_the_argument_named(kwargs, message):
    records = make_records([[0, 9, 0]], channels=[2])
    with pytest.raises(WfaConfigError, match=message):
        find_hits(records, **kwargs)


def test_raw_records_are_refused_with_a_hint():
    raw = np.zeros(2, dtypes.raw_record_dtype(10))
    with pytest.raises(WfaConfigError, match="baseline"):
        find_hits(raw, threshold_adc=5)


def test_no_records_no_hits():
    hits = find_hits(make_records(np.zeros((0, 5))), threshold_adc=5)
    assert len(hits) == 0 and hits.dtype == dtypes.hit_dtype


def test_result_buffer_grows_when_records_hold_many_hits(monkeypatch):
    monkeypatch.setattr(hits_module, "_initial_capacity", lambda n_records, n_samples: (n_samples + 1) // 2)
    rows = np.tile(np.array([9, 0] * 6, np.float32), (30, 1))
    hits = find_hits(make_records(rows), threshold_adc=4, left_extension_samples=0, right_extension_samples=0)
    assert len(hits) == 180
    assert np.all(np.diff(hits["time"]) >= 0)


def test_sort_hits_is_stable_and_returns_sorted_input_as_is():
    hits = np.zeros(4, dtypes.hit_dtype)
    hits["time"] = [5, 3, 5, 1]
    hits["channel"] = [0, 1, 2, 3]
    out = sort_hits(hits)
    assert list(out["channel"]) == [3, 1, 0, 2]
    assert sort_hits(out) is out


# --- properties on random records ----------------------------------------------------------------


@st.composite
def random_records(draw):
    """Random processed records: lengths 0..n_samples, several channels, sorted by time."""
    n_samples = draw(st.sampled_from([1, 12, 40]))
    n = draw(st.integers(0, 25))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    rows = rng.normal(0, 3, (n, n_samples))
    pulses = rng.random(n) < 0.5
    rows[pulses, rng.integers(0, n_samples, pulses.sum())] += rng.uniform(5, 50, pulses.sum())
    lengths = rng.integers(0, n_samples + 1, n)
    lengths[rng.random(n) < 0.3] = n_samples
    # distinct start times: a hit names its record by (record_time, channel)
    times = np.cumsum(rng.integers(1, 20 * n_samples, n))
    channels = rng.integers(0, 4, n)
    records = make_records(rows, lengths=lengths, times=times, channels=channels, n_samples=n_samples,
                           dt=draw(st.sampled_from([1.0, 4.0 / 3.0, 10.0])))
    records["baseline_rms_adc"] = rng.uniform(0.5, 4, n)
    return records


extensions = st.integers(0, 8)


@settings(max_examples=60, deadline=None)
@given(records=random_records(), threshold=st.floats(0, 30), left=extensions, right=extensions, min_samples=st.integers(1, 3))
def test_matches_the_plain_rule_and_never_leaves_the_valid_samples(records, threshold, left, right, min_samples):
    hits = find_hits(records, threshold_adc=threshold, left_extension_samples=left,
                     right_extension_samples=right, min_consecutive_samples=min_samples)
    expected = reference_hits(records, threshold, left, right, min_samples)
    assert len(hits) == len(expected)
    order = np.lexsort((hits["left_sample"], hits["record_time"], hits["channel"]))
    got = sorted(
        (int(h["record_time"]), int(h["channel"]), int(h["left_sample"]), int(h["length"])) for h in hits[order]
    )
    want = sorted(
        (int(records["time"][i]), int(records["channel"][i]), lo, hi - lo) for i, lo, hi, _, _ in expected
    )
    assert got == want
    assert np.all(hits["length"] >= 1)
    assert np.all(np.diff(hits["time"]) >= 0)
    for h in hits:
        i = np.flatnonzero((records["time"] == h["record_time"]) & (records["channel"] == h["channel"]))[0]
        r = records[i]
        lo, hi = h["left_sample"], h["left_sample"] + h["length"]
        assert 0 <= lo < hi <= r["length"]
        assert h["area_adc_ns"] == pytest.approx(r["data"][lo:hi].sum() * r["dt"], rel=1e-4, abs=1e-3)
        assert h["height_adc"] == r["data"][lo:hi].max() > threshold
        assert h["time"] >= r["time"] and dtypes.endtime(h[None])[0] <= dtypes.endtime(r[None])[0]


@settings(max_examples=40, deadline=None)
@given(records=random_records(), cuts=st.lists(st.integers(0, 25), max_size=4), threshold_rms=st.floats(0.5, 6))
def test_result_does_not_depend_on_how_records_are_split(records, cuts, threshold_rms):
    def hits_of(r):
        return find_hits(r, threshold_rms=threshold_rms, left_extension_samples=2, right_extension_samples=3)

    whole = hits_of(records)
    edges = sorted({0, len(records), *(min(c, len(records)) for c in cuts)})
    parts = [hits_of(records[lo:hi]) for lo, hi in zip(edges[:-1], edges[1:])]
    assert np.array_equal(sort_hits(np.concatenate([whole[:0], *parts])), whole)


@settings(max_examples=40, deadline=None)
@given(records=random_records(), low=st.floats(0, 20), step=st.floats(0, 20))
def test_raising_the_threshold_only_removes_hit_samples(records, low, step):
    def covered(threshold):
        hits = find_hits(records, threshold_adc=threshold, left_extension_samples=0, right_extension_samples=0)
        return {(int(h["record_time"]), int(h["channel"]), s) for h in hits
                for s in range(h["left_sample"], h["left_sample"] + h["length"])}

    assert covered(low + step) <= covered(low)


_BOUNDS_SCRIPT = """
import numpy as np
from wfa_notebook import dtypes
from wfa_notebook.processing import baseline, event_basics, find_events, find_hits, find_peaks, pulse_properties

rng = np.random.default_rng(0)
for n_samples in (1, 9):
    n = 400
    raw = np.zeros(n, dtypes.raw_record_dtype(n_samples, np.int16))
    raw["data"] = rng.integers(900, 1100, (n, n_samples))
    raw["data"][rng.random((n, n_samples)) < 0.3] = 0  # big negative pulses anywhere, edges too
    raw["length"] = rng.integers(0, n_samples + 1, n)
    raw["time"] = np.arange(n) * 100
    raw["dt"] = 4.0 / 3.0
    raw["channel"] = rng.integers(0, 3, n)
    for polarity in ("negative", "positive"):
        records = baseline(raw, baseline_samples=4, polarity=polarity)
        for left, right, min_samples in ((0, 0, 1), (20, 20, 1), (1, 3, 2)):
            hits = find_hits(records, threshold_adc=5, left_extension_samples=left,
                             right_extension_samples=right, min_consecutive_samples=min_samples)
            pulse_properties(hits, records)
            peaks = find_peaks(hits, gap_ns=50, n_channels=3, n_samples=7, records=records)
            events = find_events(peaks, trigger_min_area_adc_ns=0.0, left_extension_ns=200,
                                 right_extension_ns=200)
            event_basics(events, peaks)
print("in bounds")
"""


@pytest.mark.slow
def test_kernels_never_index_out_of_bounds(tmp_path):
    """Run the kernels on edge-case records with numba's bounds checking switched on."""
    import os
    import subprocess
    import sys

    # a separate cache: bounds-checked machine code must never be picked up by normal runs
    env = {**os.environ, "NUMBA_BOUNDSCHECK": "1", "NUMBA_CACHE_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", _BOUNDS_SCRIPT], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("in bounds")


def test_concatenate_hits_of_blocks_equals_hits_of_the_whole():
    rng = np.random.default_rng(3)
    rows = rng.normal(0, 2, (60, 12))
    rows[::2, 11] += 30  # late and early pulses: hits of neighbouring blocks interleave in time
    rows[1::2, 0] += 30
    records = make_records(rows, times=np.arange(60) * 5, channels=np.arange(60) % 4, dt=4.0)
    whole = find_hits(records, threshold_adc=10)
    parts = [find_hits(records[lo:lo + 20], threshold_adc=10) for lo in (0, 20, 40)]
    assert not np.all(np.diff(np.concatenate(parts)["time"]) >= 0)
    assert np.array_equal(concatenate_hits(parts), whole)
    assert len(concatenate_hits([])) == 0
    with pytest.raises(WfaConfigError, match="one dtype"):
        concatenate_hits([whole, np.zeros(1, [("time", np.int64)])])
