"""Event building: trigger windows around large peaks, merging, clipping and event basics."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wfa_notebook import dtypes
from wfa_notebook.errors import WfaChunkError, WfaConfigError
from wfa_notebook.processing.events import event_basics, find_events

LEFT, RIGHT, TRIGGER = 100, 200, 50.0


def make_peaks(rows) -> np.ndarray:
    """Peak basics from (time, duration_ns, area, n_channels) tuples; maximum at mid-peak."""
    peaks = np.zeros(len(rows), dtypes.peak_basics_dtype)
    for i, (time, duration, area, n_channels) in enumerate(rows):
        peaks[i]["time"] = time
        peaks[i]["endtime"] = time + duration
        peaks[i]["area_adc_ns"] = area
        peaks[i]["n_channels"] = n_channels
        peaks[i]["time_max"] = time + duration // 2
        peaks[i]["width_ns"] = duration / 2
    return peaks


def events_of(rows, **kwargs) -> np.ndarray:
    options = {"trigger_min_area_adc_ns": TRIGGER, "left_extension_ns": LEFT,
               "right_extension_ns": RIGHT, "start": 0, "end": 100_000}
    options.update(kwargs)
    return find_events(make_peaks(rows), **options)


# --- windows, table-driven -----------------------------------------------------------------------

EVENT_CASES = {
    # name: (peaks as (time, duration, area, n_channels), expected (time, endtime, n_peaks))
    "one trigger": ([(1000, 20, 60.0, 1)], [(900, 1220, 1)]),
    "below trigger: no event": ([(1000, 20, 40.0, 1)], []),
    "small peaks inside the window count": (
        [(950, 10, 1.0, 1), (1000, 20, 60.0, 1), (1100, 10, 1.0, 1), (1300, 10, 1.0, 1)],
        [(900, 1220, 3)],
    ),
    "overlapping windows merge": ([(1000, 20, 60.0, 1), (1250, 20, 60.0, 1)], [(900, 1470, 2)]),
    "touching windows stay apart": ([(1000, 20, 60.0, 1), (1320, 20, 60.0, 1)], [(900, 1220, 1), (1220, 1540, 1)]),
    "peak starting inside stretches the window": (
        [(1000, 20, 60.0, 1), (1210, 50, 1.0, 1)], [(900, 1260, 2)],
    ),
    "stretching reaches the next window": (
        [(1000, 20, 60.0, 1), (1210, 100, 1.0, 1), (1400, 20, 60.0, 1)], [(900, 1620, 3)],
    ),
    "window clipped at the run start": ([(30, 20, 60.0, 1)], [(0, 250, 1)]),
    "window clipped at the chunk end": ([(99_900, 20, 60.0, 1)], [(99_800, 100_000, 1)]),
}


@pytest.mark.parametrize("case", EVENT_CASES, ids=list(EVENT_CASES))
def test_event_windows_table(case):
    rows, expected = EVENT_CASES[case]
    events = events_of(rows)
    assert [tuple(int(x) for x in e[["time", "endtime", "n_peaks"]].item()) for e in events] == expected


def test_trigger_needs_enough_channels():
    rows = [(1000, 20, 60.0, 1), (5000, 20, 60.0, 3)]
    events = events_of(rows, trigger_min_channels=2)
    assert events["time"].tolist() == [5000 - LEFT]
    assert events["n_trigger_peaks"].tolist() == [1]


def test_event_basics_ranks_largest_peaks():
    # a small early pulse, then the largest one 300 ns later, then a middle one
    peaks = make_peaks([(1000, 10, 80.0, 2), (1300, 40, 500.0, 5), (1350, 10, 20.0, 1)])
    events = find_events(peaks, trigger_min_area_adc_ns=TRIGGER, left_extension_ns=LEFT,
                         right_extension_ns=RIGHT)
    (basics,) = event_basics(events, peaks)
    assert basics["n_peaks"] == 3
    assert basics["area_adc_ns"] == pytest.approx(600.0)
    assert basics["largest_peak_area_adc_ns"] == 500.0
    assert basics["largest_peak_time"] == 1300
    assert basics["largest_peak_n_channels"] == 5
    assert basics["second_peak_area_adc_ns"] == 80.0
    assert basics["second_peak_time_max"] == 1005
    # the second-largest comes first: negative, like a prompt pulse before its delayed signal
    assert basics["time_between_largest_ns"] == 1005 - 1320


def test_event_basics_with_one_peak_marks_the_second_as_missing():
    peaks = make_peaks([(1000, 10, 80.0, 2)])
    (basics,) = event_basics(find_events(peaks, trigger_min_area_adc_ns=TRIGGER), peaks)
    assert basics["n_peaks"] == 1
    assert np.isnan(basics["second_peak_area_adc_ns"])
    assert basics["second_peak_time"] == -1
    assert basics["second_peak_n_channels"] == 0
    assert basics["time_between_largest_ns"] == 0


def test_equal_areas_rank_the_earlier_peak_first():
    peaks = make_peaks([(1000, 10, 80.0, 1), (1100, 10, 80.0, 1)])
    (basics,) = event_basics(find_events(peaks, trigger_min_area_adc_ns=TRIGGER), peaks)
    assert basics["largest_peak_time"] == 1000
    assert basics["second_peak_time"] == 1100


def test_no_peaks_no_events():
    events = find_events(np.zeros(0, dtypes.peak_basics_dtype))
    assert events.dtype == dtypes.event_dtype and len(events) == 0
    assert len(event_basics(events, np.zeros(0, dtypes.peak_basics_dtype))) == 0


def test_peaks_outside_the_interval_are_refused():
    with pytest.raises(WfaChunkError, match="outside the interval"):
        events_of([(1000, 20, 60.0, 1)], start=2000, end=3000)


def test_negative_extension_is_refused():
    with pytest.raises(WfaConfigError, match="left_extension_ns"):
        events_of([(1000, 20, 60.0, 1)], left_extension_ns=-1)


def test_peaks_without_area_are_refused():
    with pytest.raises(WfaConfigError, match="area_adc_ns"):
        find_events(np.zeros(2, [("time", np.int64), ("endtime", np.int64)]))


# --- properties ----------------------------------------------------------------------------------


@st.composite
def peak_streams(draw, max_peaks: int = 40):
    """Sorted, non-overlapping peaks with random gaps, durations and areas."""
    n = draw(st.integers(0, max_peaks))
    gaps = draw(st.lists(st.integers(0, 3 * (LEFT + RIGHT)), min_size=n, max_size=n))
    durations = draw(st.lists(st.integers(1, 400), min_size=n, max_size=n))
    areas = draw(st.lists(st.sampled_from([1.0, 10.0, 49.0, 50.0, 200.0]), min_size=n, max_size=n))
    rows, time = [], draw(st.integers(0, 300))
    for gap, duration, area in zip(gaps, durations, areas):
        rows.append((time, duration, area, 1))
        time += duration + gap
    return make_peaks(rows)


def containing_event(events: np.ndarray, time: np.ndarray) -> np.ndarray:
    """Index of the event each time falls in, -1 if none."""
    if len(events) == 0:
        return np.full(len(time), -1)
    index = np.searchsorted(events["time"], time, side="right") - 1
    inside = (index >= 0) & (time < events["endtime"][np.maximum(index, 0)])
    return np.where(inside, index, -1)


@settings(max_examples=200, deadline=None)
@given(peaks=peak_streams())
def test_events_contain_their_trigger_peaks(peaks):
    end = int(peaks["endtime"].max()) + 50 if len(peaks) else 1000
    events = find_events(peaks, trigger_min_area_adc_ns=TRIGGER, left_extension_ns=LEFT,
                         right_extension_ns=RIGHT, start=0, end=end)
    # sorted, apart, inside the interval
    assert np.all(events["time"] < events["endtime"])
    assert np.all(events["endtime"][:-1] <= events["time"][1:])
    assert np.all((events["time"] >= 0) & (events["endtime"] <= end))
    index = containing_event(events, peaks["time"])
    in_event = index >= 0
    # every trigger peak is in an event; a peak starting in an event ends inside it
    assert np.all(in_event[peaks["area_adc_ns"] >= TRIGGER])
    assert np.all(peaks["endtime"][in_event] <= events["endtime"][index[in_event]])
    counts = np.bincount(index[in_event], minlength=len(events))
    np.testing.assert_array_equal(counts, events["n_peaks"])
    assert np.all(events["n_trigger_peaks"] >= 1)
    basics = event_basics(events, peaks)
    np.testing.assert_array_equal(basics["n_peaks"], events["n_peaks"])
    assert np.all(basics["largest_peak_area_adc_ns"] >= TRIGGER)
    two = basics["n_peaks"] >= 2
    assert np.all(basics["second_peak_area_adc_ns"][two] <= basics["largest_peak_area_adc_ns"][two])


@settings(max_examples=150, deadline=None)
@given(peaks=peak_streams(), cuts=st.lists(st.integers(1, 39), max_size=4))
def test_events_do_not_depend_on_chunks_cut_in_wide_gaps(peaks, cuts):
    # chunks end right_extension after a peak and the next peak starts left_extension after that
    end = int(peaks["endtime"].max()) + RIGHT if len(peaks) else 1000
    options = {"trigger_min_area_adc_ns": TRIGGER, "left_extension_ns": LEFT,
               "right_extension_ns": RIGHT}
    whole = find_events(peaks, start=0, end=end, **options)
    latest_end = np.maximum.accumulate(peaks["endtime"]) if len(peaks) else peaks["endtime"]
    allowed = {i for i in range(1, len(peaks))
               if peaks["time"][i] - latest_end[i - 1] >= LEFT + RIGHT}
    edges = [0, *sorted({c for c in cuts if c in allowed}), len(peaks)]
    bounds = [0] + [int(latest_end[i - 1]) + RIGHT for i in edges[1:-1]] + [end]
    parts = [
        find_events(peaks[a:b], start=lo, end=hi, **options)
        for a, b, lo, hi in zip(edges[:-1], edges[1:], bounds[:-1], bounds[1:])
    ]
    np.testing.assert_array_equal(np.concatenate(parts), whole)
