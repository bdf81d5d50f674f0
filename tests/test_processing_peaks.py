"""Peak finding: clustering of hits across channels, peak properties and the summed waveform."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wfa_notebook import dtypes
from wfa_notebook.errors import WfaChunkError, WfaConfigError
from wfa_notebook.processing.peaks import find_peaks, peak_basics

GAP_NS = 50


def make_hits(rows) -> np.ndarray:
    """Hits from (time, length, dt, channel, area) tuples; height = area / duration."""
    hits = np.zeros(len(rows), dtypes.hit_dtype)
    for i, (time, length, dt, channel, area) in enumerate(rows):
        hits[i]["time"] = time
        hits[i]["length"] = length
        hits[i]["dt"] = dt
        hits[i]["channel"] = channel
        hits[i]["area_adc_ns"] = area
        hits[i]["height_adc"] = area / (length * dt)
        hits[i]["time_max"] = time + int(length * dt) // 2
    return hits


def make_records(rows, n_samples: int = 64) -> np.ndarray:
    """Records from (time, channel, dt, samples) tuples, sorted by time then channel."""
    rows = sorted(rows, key=lambda r: (r[0], r[1]))
    records = np.zeros(len(rows), dtypes.record_dtype(n_samples))
    for i, (time, channel, dt, samples) in enumerate(rows):
        records[i]["time"] = time
        records[i]["channel"] = channel
        records[i]["dt"] = dt
        records[i]["length"] = len(samples)
        records[i]["data"][: len(samples)] = samples
    return records


def threshold_hits(records: np.ndarray, threshold_adc: float = 1.0) -> np.ndarray:
    """A plain numpy hit finder for tests: runs of samples above threshold, times floored to ns."""
    rows = []
    for r in records:
        above = np.r_[False, r["data"][: r["length"]] > threshold_adc, False]
        edges = np.flatnonzero(np.diff(above.astype(np.int8)))
        for left, right in zip(edges[::2], edges[1::2]):
            samples = r["data"][left:right]
            rows.append((
                int(r["time"] + math.floor(left * r["dt"])), right - left, r["dt"], r["channel"],
                float(samples.sum() * r["dt"]), float(samples.max()),
                int(r["time"] + math.floor((left + int(np.argmax(samples))) * r["dt"])),
                int(r["time"]), left,
            ))
    hits = np.zeros(len(rows), dtypes.hit_dtype)
    for i, row in enumerate(rows):
        for name, value in zip(
            ("time", "length", "dt", "channel", "area_adc_ns", "height_adc", "time_max",
             "record_time", "left_sample"), row,
        ):  # fmt: skip
            hits[i][name] = value
    return np.sort(hits, order="time", kind="stable")


def peak_containing(peaks: np.ndarray, time: np.ndarray) -> np.ndarray:
    """Index of the peak whose [time, endtime) contains each time, -1 if none."""
    if len(peaks) == 0:
        return np.full(len(time), -1)
    index = np.searchsorted(peaks["time"], time, side="right") - 1
    inside = (index >= 0) & (time < peaks["endtime"][np.maximum(index, 0)])
    return np.where(inside, index, -1)


# --- clustering, table-driven --------------------------------------------------------------------

CLUSTER_CASES = {
    # name: (hits as (time, length, dt, channel, area), expected hits per peak)
    "single hit": ([(100, 10, 2.0, 0, 5.0)], [1]),
    "gap just below gap_ns joins": ([(0, 10, 2.0, 0, 1.0), (20 + GAP_NS - 1, 5, 2.0, 0, 1.0)], [2]),
    "gap equal to gap_ns splits": ([(0, 10, 2.0, 0, 1.0), (20 + GAP_NS, 5, 2.0, 0, 1.0)], [1, 1]),
    "gap just above gap_ns splits": ([(0, 10, 2.0, 0, 1.0), (20 + GAP_NS + 1, 5, 2.0, 1, 1.0)], [1, 1]),
    "many channels at once": ([(1000, 8, 4.0, ch, 2.0) for ch in range(16)], [16]),
    "overlapping hits always join": ([(0, 50, 2.0, 0, 1.0), (10, 5, 2.0, 1, 1.0)], [2]),
    # the gap counts from the end of the longest hit, not from the last one
    "long hit bridges later hits": (
        [(0, 100, 2.0, 0, 1.0), (10, 5, 2.0, 1, 1.0), (150 + GAP_NS - 1, 5, 2.0, 2, 1.0)], [3],
    ),
    "DRS4 sample period": ([(0, 3, 1.333, 0, 1.0), (4 + GAP_NS - 1, 3, 1.333, 3, 1.0)], [2]),
}


@pytest.mark.parametrize("case", CLUSTER_CASES, ids=list(CLUSTER_CASES))
def test_clustering_table(case):
    rows, hits_per_peak = CLUSTER_CASES[case]
    hits = make_hits(rows)
    peaks = find_peaks(hits, gap_ns=GAP_NS)
    assert peaks["n_hits"].tolist() == hits_per_peak
    assert peaks["area_adc_ns"].sum() == pytest.approx(hits["area_adc_ns"].sum())
    hit_end = dtypes.endtime(hits)
    first = 0
    for peak, n in zip(peaks, hits_per_peak):
        assert peak["time"] == hits["time"][first]
        assert peak["endtime"] == hit_end[first:first + n].max()
        first += n


def test_channels_and_area_per_channel():
    hits = make_hits([(0, 10, 2.0, 3, 4.0), (2, 10, 2.0, 7, 6.0), (4, 10, 2.0, 3, 1.0)])
    (peak,) = find_peaks(hits, n_channels=8)
    assert peak["n_channels"] == 2
    assert peak["n_hits"] == 3
    expected = np.zeros(8, np.float32)
    expected[3], expected[7] = 5.0, 6.0
    np.testing.assert_allclose(peak["area_per_channel_adc_ns"], expected)
    (basics,) = peak_basics(np.array([peak]))
    assert basics["max_channel"] == 7
    assert basics["max_channel_area_fraction"] == pytest.approx(6.0 / 11.0)


@pytest.mark.parametrize(
    ("min_channels", "min_area_adc_ns", "n_peaks"),
    [(1, 0.0, 2), (2, 0.0, 1), (3, 0.0, 0), (1, 10.0, 1), (1, 100.0, 0)],
)
def test_peaks_below_the_cuts_are_dropped(min_channels, min_area_adc_ns, n_peaks):
    # a one-channel peak of area 50 and a two-channel peak of area 2
    hits = make_hits([(0, 10, 2.0, 0, 50.0), (1000, 10, 2.0, 0, 1.0), (1001, 10, 2.0, 1, 1.0)])
    peaks = find_peaks(hits, min_channels=min_channels, min_area_adc_ns=min_area_adc_ns)
    assert len(peaks) == n_peaks


def test_width_without_records_spreads_hit_areas_evenly():
    # one hit of 20 ns: its central half lasts 10 ns, 10 % to 50 % of the area takes 8 ns
    (peak,) = find_peaks(make_hits([(100, 10, 2.0, 0, 40.0)]))
    assert peak["width_ns"] == pytest.approx(10.0)
    assert peak["rise_time_ns"] == pytest.approx(8.0)
    assert peak["length"] == 0
    assert peak["height_adc"] == pytest.approx(2.0)


def test_empty_hits_give_empty_peaks():
    peaks = find_peaks(np.zeros(0, dtypes.hit_dtype), n_channels=4, n_samples=10)
    assert peaks.dtype == dtypes.peak_dtype(4, 10)
    assert len(peaks) == 0


# --- summed waveform from records ----------------------------------------------------------------


def test_square_pulse_waveform_properties():
    samples = np.zeros(64, np.float32)
    samples[20:30] = 10.0
    records = make_records([(1000, 2, 2.0, samples)])
    hits = threshold_hits(records)
    (peak,) = find_peaks(hits, records=records, n_samples=100)
    assert peak["length"] == 10
    assert peak["dt"] == 2.0
    np.testing.assert_allclose(peak["data"][:10], 10.0)
    assert peak["data"][:peak["length"]].sum() * peak["dt"] == pytest.approx(peak["area_adc_ns"])
    assert peak["height_adc"] == pytest.approx(10.0)
    assert peak["width_ns"] == pytest.approx(10.0)   # central half of a 20 ns flat top
    assert peak["rise_time_ns"] == pytest.approx(8.0)
    assert peak["time"] <= peak["time_max"] < peak["endtime"]


def test_channels_sum_in_the_waveform():
    pulse = np.zeros(64, np.float32)
    pulse[10:14] = [2.0, 8.0, 4.0, 2.0]
    records = make_records([(500, ch, 4.0, pulse * (ch + 1)) for ch in range(3)])
    hits = threshold_hits(records)
    (peak,) = find_peaks(hits, records=records)
    assert peak["n_channels"] == 3
    assert peak["height_adc"] == pytest.approx(8.0 * (1 + 2 + 3))
    # the maximum is the second hit sample: 500 ns + 11 samples x 4 ns
    assert peak["time_max"] == 544
    np.testing.assert_allclose(peak["data"][:4], pulse[10:14] * 6)


def test_long_peak_is_downsampled_to_fit():
    samples = np.ones(500, np.float32)
    records = make_records([(0, 0, 1.333, samples)], n_samples=500)
    hits = threshold_hits(records, threshold_adc=0.5)
    (peak,) = find_peaks(hits, records=records, n_samples=200)
    assert peak["dt"] == pytest.approx(3 * 1.333)   # smallest whole factor that fits
    assert peak["length"] == 167                    # ceil(500 / 3)
    assert peak["data"][:peak["length"]].sum() * peak["dt"] == pytest.approx(500 * 1.333, rel=1e-5)
    assert peak["width_ns"] == pytest.approx(250 * 1.333, rel=0.01)


def test_drs4_time_of_maximum_within_one_sample():
    dt = 1.333
    t = np.arange(110) * dt
    true_max_ns = 61.7
    samples = (50 * np.exp(-0.5 * ((t - true_max_ns) / 6.0) ** 2)).astype(np.float32)
    records = make_records([(10_000, 5, dt, samples)], n_samples=110)
    (peak,) = find_peaks(threshold_hits(records), records=records)
    assert abs(peak["time_max"] - (10_000 + true_max_ns)) <= dt
    assert peak["width_ns"] == pytest.approx(2 * 0.6745 * 6.0, abs=dt)   # interquartile of a Gaussian


# --- errors -------------------------------------------------------------------------------------


def test_unsorted_hits_are_refused():
    hits = make_hits([(100, 5, 2.0, 0, 1.0), (50, 5, 2.0, 0, 1.0)])
    with pytest.raises(WfaChunkError, match="sorted by time"):
        find_peaks(hits)


def test_channel_beyond_n_channels_is_refused():
    with pytest.raises(WfaConfigError, match="Raise n_channels to at least 21"):
        find_peaks(make_hits([(0, 5, 2.0, 20, 1.0)]), n_channels=16)


@pytest.mark.parametrize("kwargs", [{"gap_ns": -1}, {"gap_ns": float("nan")}, {"n_samples": 0}])
def test_meaningless_arguments_are_refused(kwargs):
    with pytest.raises(WfaConfigError):
        find_peaks(make_hits([(0, 5, 2.0, 0, 1.0)]), **kwargs)


def test_hit_without_its_record_is_refused():
    records = make_records([(0, 0, 2.0, np.full(10, 5.0, np.float32))])
    hits = threshold_hits(records)
    hits["channel"] = 1
    with pytest.raises(WfaChunkError, match="channel 1, record time 0 ns"):
        find_peaks(hits, records=records)


def test_arrays_without_hit_fields_are_refused():
    with pytest.raises(WfaConfigError, match="area_adc_ns"):
        find_peaks(np.zeros(3, [("time", np.int64), ("length", np.int32)]))


# --- properties ----------------------------------------------------------------------------------


@st.composite
def hit_streams(draw, max_hits: int = 60):
    """Sorted hits on up to 8 channels, with gaps from overlap to far apart."""
    n = draw(st.integers(0, max_hits))
    gaps = draw(st.lists(st.integers(-30, 3 * GAP_NS), min_size=n, max_size=n))
    lengths = draw(st.lists(st.integers(1, 20), min_size=n, max_size=n))
    channels = draw(st.lists(st.integers(0, 7), min_size=n, max_size=n))
    areas = draw(st.lists(st.floats(0.125, 1000.0, width=32), min_size=n, max_size=n))
    dt = draw(st.sampled_from([1.333, 2.0, 4.0, 0.2]))
    time = 1000 + np.maximum.accumulate(np.cumsum(np.array(gaps, np.int64) + 5)) if n else []
    return make_hits([
        (int(t), length, dt, ch, a) for t, length, ch, a in zip(time, lengths, channels, areas)
    ])  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(hits=hit_streams())
def test_every_hit_belongs_to_exactly_one_peak(hits):
    peaks = find_peaks(hits, gap_ns=GAP_NS)
    assert peaks["n_hits"].sum() == len(hits)
    index = peak_containing(peaks, hits["time"])
    assert np.all(index >= 0)
    np.testing.assert_array_equal(np.bincount(index, minlength=len(peaks)), peaks["n_hits"])
    np.testing.assert_array_equal(index, np.sort(index))   # hits of a peak are consecutive
    sums = np.bincount(index, weights=hits["area_adc_ns"].astype(np.float64), minlength=len(peaks))
    np.testing.assert_allclose(peaks["area_adc_ns"], sums, rtol=1e-5)
    # hits lie inside their peak; peaks are sorted, apart by at least gap_ns
    assert np.all(dtypes.endtime(hits) <= peaks["endtime"][index])
    assert np.all(peaks["time"][1:] - peaks["endtime"][:-1] >= GAP_NS)
    assert np.all((peaks["n_channels"] >= 1) & (peaks["n_channels"] <= peaks["n_hits"]))
    assert np.all(peaks["width_ns"] >= 0)
    assert np.all(peaks["width_ns"] <= peaks["endtime"] - peaks["time"])


@settings(max_examples=100, deadline=None)
@given(hits=hit_streams(), cuts=st.lists(st.integers(1, 59), max_size=4))
def test_result_does_not_depend_on_splitting_at_large_gaps(hits, cuts):
    whole = find_peaks(hits, gap_ns=GAP_NS)
    # a stream may be cut before hit i only where it starts gap_ns or more after all earlier hits
    latest_end = np.maximum.accumulate(dtypes.endtime(hits))
    allowed = {i for i in range(1, len(hits)) if hits["time"][i] - latest_end[i - 1] >= GAP_NS}
    edges = [0, *sorted({c for c in cuts if c in allowed}), len(hits)]
    parts = [find_peaks(hits[a:b], gap_ns=GAP_NS) for a, b in zip(edges[:-1], edges[1:])]
    np.testing.assert_array_equal(np.concatenate(parts), whole)


@st.composite
def records_with_hits(draw):
    """Records on 4 channels with random samples, and hits inside (or poking out of) them."""
    n_records = draw(st.integers(1, 8))
    dt = draw(st.sampled_from([1.333, 4.0, 0.2]))
    rows = []
    for _ in range(n_records):
        time = draw(st.integers(0, 2000))
        channel = draw(st.integers(0, 3))
        length = draw(st.integers(1, 40))
        samples = draw(st.lists(st.floats(-5, 100, width=32), min_size=length, max_size=length))
        rows.append((time, channel, dt, np.array(samples, np.float32)))
    unique = {(r[0], r[1]): r for r in rows}
    records = make_records(list(unique.values()), n_samples=40)
    hit_rows = []
    for r in records:
        for _ in range(draw(st.integers(0, 2))):
            left = draw(st.integers(0, r["length"] - 1))
            # some hits claim samples past the end of the record: they must not be read
            length = draw(st.integers(1, r["length"] - left + 3))
            hit_rows.append((r, left, length))
    hits = np.zeros(len(hit_rows), dtypes.hit_dtype)
    for i, (r, left, length) in enumerate(hit_rows):
        hits[i]["time"] = r["time"] + math.floor(left * dt)
        hits[i]["length"] = length
        hits[i]["dt"] = dt
        hits[i]["channel"] = r["channel"]
        valid = r["data"][left:min(left + length, r["length"])]
        hits[i]["area_adc_ns"] = valid.sum() * dt
        hits[i]["height_adc"] = valid.max()
        hits[i]["time_max"] = hits[i]["time"]
        hits[i]["record_time"] = r["time"]
        hits[i]["left_sample"] = left
    return records, np.sort(hits, order="time", kind="stable")


@settings(max_examples=150, deadline=None)
@given(data=records_with_hits(), n_samples=st.integers(1, 50))
def test_summed_waveform_holds_exactly_the_hit_samples(data, n_samples):
    records, hits = data
    # no area cut: hits on negative noise excursions must be summed too
    peaks = find_peaks(
        hits, records=records, gap_ns=GAP_NS, n_channels=4, n_samples=n_samples,
        min_area_adc_ns=-np.inf,
    )
    assert peaks["n_hits"].sum() == len(hits)
    assert np.all((peaks["length"] >= 1) & (peaks["length"] <= n_samples))
    for peak in peaks:
        assert np.all(peak["data"][peak["length"]:] == 0)
        waveform_area = peak["data"][: peak["length"]].astype(np.float64).sum() * peak["dt"]
        assert waveform_area == pytest.approx(peak["area_adc_ns"], rel=1e-4, abs=1e-2)
        assert peak["time"] <= peak["time_max"] < peak["endtime"]
        assert not peak["width_ns"] < 0   # NaN when the area is not positive


# --- accuracy against the synthetic truth --------------------------------------------------------


@pytest.mark.parametrize("dt_ns", [4.0, 1.333])
def test_peaks_of_synthetic_gaussian_pulses_match_the_truth(dt_ns):
    from wfa_notebook.datasets import synthetic_run
    from wfa_notebook.processing.baseline import baseline
    from wfa_notebook.processing.hits import find_hits

    sigma_ns = 6.0
    run = synthetic_run(
        seed=3, n_channels=8, duration_ns=20_000_000, dt_ns=dt_ns, noise_rms_adc=3.0,
        amplitude_spectrum=("uniform", 30, 300), pulse_shape="gaussian", sigma_ns=sigma_ns,
    )
    records = baseline(run.records(), baseline_samples=40)
    hits = find_hits(records, threshold_rms=5, min_consecutive_samples=2)
    peaks = find_peaks(hits, records=records, n_channels=8)
    truth = run.truth()
    assert len(truth) > 200
    index = peak_containing(peaks, truth["time_ns"])
    assert np.all(index >= 0), "every recorded pulse lies inside a peak"
    matched = peaks[index]
    offset = np.abs(matched["time_max"] - truth["time_ns"])
    assert np.mean(offset <= dt_ns + 1) >= 0.8      # +1: the truth is rounded to the ns
    assert np.mean(offset <= 2 * dt_ns + 1) >= 0.99
    interquartile_ns = 2 * 0.6745 * sigma_ns
    assert np.median(matched["width_ns"]) == pytest.approx(interquartile_ns, rel=0.05)
    ratio = matched["area_adc_ns"] / truth["area_in_record_adc_ns"]
    assert np.median(ratio) == pytest.approx(1.0, abs=0.02)
