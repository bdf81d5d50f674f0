"""Baseline subtraction: positive pulses for both polarities, the stated rule for short records,
raw input untouched, and results independent of how records are grouped."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wfa_notebook import dtypes
from wfa_notebook.errors import WfaConfigError
from wfa_notebook.processing import baseline


def make_raw(samples, lengths=None, sample_dtype=np.int16, dt=4.0, channels=None):
    """Raw records from a 2-d list/array of samples (one row per record).

    Every record size is a separate numba compilation, so the tests stick to 1, 8 and 40 samples.
    """
    samples = np.asarray(samples)
    n, n_samples = samples.shape
    raw = np.zeros(n, dtypes.raw_record_dtype(n_samples, sample_dtype))
    raw["data"] = samples
    raw["length"] = n_samples if lengths is None else lengths
    raw["dt"] = dt
    raw["time"] = np.arange(n) * 10_000
    raw["channel"] = np.arange(n) % 3 if channels is None else channels
    raw["event_number"] = np.arange(n) + 100
    return raw


def reference_baseline(raw, baseline_samples, polarity):
    """Plain numpy statement of the rule, record by record."""
    n_samples = raw.dtype["data"].shape[0]
    data = np.zeros((len(raw), n_samples), np.float64)
    mean = np.zeros(len(raw))
    rms = np.zeros(len(raw))
    for i, r in enumerate(raw):
        length = int(r["length"])
        x = r["data"][:length].astype(np.float64)
        m = min(baseline_samples, length)
        if m:
            mean[i], rms[i] = x[:m].mean(), x[:m].std()
        data[i, :length] = (mean[i] - x) if polarity == "negative" else (x - mean[i])
    return data, mean, rms


@pytest.mark.parametrize(
    ("polarity", "raw_pulse", "expected"),
    [
        ("negative", [1000, 1000, 1000, 1000, 900, 700, 950, 1000], [0, 0, 0, 0, 100, 300, 50, 0]),
        ("positive", [200, 200, 200, 200, 260, 400, 210, 200], [0, 0, 0, 0, 60, 200, 10, 0]),
    ],
)
def test_pulses_come_out_positive_above_a_zero_baseline(polarity, raw_pulse, expected):
    records = baseline(make_raw([raw_pulse]), baseline_samples=4, polarity=polarity)
    assert records.dtype == dtypes.record_dtype(8)
    assert np.array_equal(records["data"][0], np.array(expected, np.float32))
    assert records["baseline_adc"][0] == raw_pulse[0]
    assert records["baseline_rms_adc"][0] == 0


def test_baseline_is_the_mean_and_rms_of_the_first_samples():
    rows = [[10, 12, 10, 12, 50, 11, 11, 11], [7, 7, 8, 9, 9, 9, 9, 9]]
    records = baseline(make_raw(rows), baseline_samples=4, polarity="positive")
    assert np.allclose(records["baseline_adc"], [11.0, 7.75])
    assert np.allclose(records["baseline_rms_adc"], [1.0, np.std([7, 7, 8, 9])])
    # the fractional baseline is kept: an integer baseline would bias every area
    assert np.allclose(records["data"][1], np.array(rows[1]) - 7.75)


def test_metadata_is_copied_and_raw_input_left_untouched():
    raw = make_raw(np.random.default_rng(0).integers(900, 1100, (20, 8)), lengths=np.arange(20) % 9)
    before = raw.copy()
    records = baseline(raw, baseline_samples=10)
    assert np.array_equal(raw, before)
    for field in ("time", "length", "dt", "channel", "event_number"):
        assert np.array_equal(records[field], raw[field]), field


@pytest.mark.parametrize("sample_dtype", [np.uint16, np.int16, np.float32])
def test_all_digitizer_sample_types_give_the_same_records(sample_dtype):
    rng = np.random.default_rng(1)
    values = rng.integers(3000, 3100, (50, 40))
    values[:, 30:35] -= 500
    expected = baseline(make_raw(values, sample_dtype=np.int16))
    got = baseline(make_raw(values, sample_dtype=sample_dtype))
    assert np.allclose(got["data"], expected["data"], atol=1e-3)
    assert np.allclose(got["baseline_adc"], expected["baseline_adc"])


@pytest.mark.parametrize(
    ("length", "expected_baseline", "expected_data"),
    [
        # shorter than baseline_samples: all available samples make the baseline
        (3, 20.0, [10, 0, -10, 0, 0, 0, 0, 0]),
        (1, 10.0, [0, 0, 0, 0, 0, 0, 0, 0]),
        # length 0: baseline 0 and nothing but zeros
        (0, 0.0, [0, 0, 0, 0, 0, 0, 0, 0]),
        # exactly baseline_samples
        (4, 22.5, [12.5, 2.5, -7.5, -7.5, 0, 0, 0, 0]),
    ],
)
def test_short_records_use_all_their_samples(length, expected_baseline, expected_data):
    raw = make_raw([[10, 20, 30, 30, 999, 999, 999, 999]], lengths=[length])
    records = baseline(raw, baseline_samples=4, polarity="negative")
    assert records["baseline_adc"][0] == expected_baseline
    assert np.array_equal(records["data"][0], np.array(expected_data, np.float32))


def test_samples_beyond_length_are_zero_whatever_the_raw_array_holds():
    raw = make_raw([[100, 100, 100, 50, 12345, -7, 3, 3]], lengths=[4])
    records = baseline(raw, baseline_samples=2)
    assert np.array_equal(records["data"][0], [0, 0, 0, 50, 0, 0, 0, 0])


def test_out_argument_lets_threads_fill_slices_of_one_array():
    rng = np.random.default_rng(2)
    raw = make_raw(rng.integers(0, 4000, (40, 8)))
    whole = baseline(raw, baseline_samples=5)
    out = np.empty(len(raw), dtypes.record_dtype(8))
    for lo, hi in [(0, 13), (13, 27), (27, 40)]:
        assert baseline(raw[lo:hi], baseline_samples=5, out=out[lo:hi]).base is not None
    assert np.array_equal(out, whole)


def test_empty_input_gives_empty_records():
    raw = np.zeros(0, dtypes.raw_record_dtype(50))
    records = baseline(raw)
    assert len(records) == 0 and records.dtype == dtypes.record_dtype(50)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"polarity": "down"}, "polarity"),
        ({"baseline_samples": 0}, "baseline_samples"),
        ({"baseline_samples": 2.5}, "baseline_samples"),
        ({"out": np.zeros(3, dtypes.record_dtype(7))}, "out must be"),
    ],
)
def test_bad_arguments_raise_with_the_argument_named(kwargs, message):
    with pytest.raises(WfaConfigError, match=message):
        baseline(make_raw([[1, 2, 3, 4, 5, 6]]), **kwargs)


def test_impossible_lengths_and_foreign_arrays_are_refused():
    raw = make_raw([[1, 2, 3, 4]], lengths=[5])
    with pytest.raises(WfaConfigError, match="length 5"):
        baseline(raw)
    with pytest.raises(WfaConfigError, match="lacks the fields"):
        baseline(np.zeros(3, [("time", np.int64), ("data", np.int16, 4)]))
    with pytest.raises(WfaConfigError, match="structured array"):
        baseline(np.zeros((3, 4)))


@st.composite
def raw_records(draw, max_records=30):
    """Random raw records: any length from 0 to n_samples, any sample type, junk beyond length."""
    # each record size is a separate compilation: a few sizes, including 1, keep the suite fast
    n_samples = draw(st.sampled_from([1, 8, 40]))
    n = draw(st.integers(0, max_records))
    sample_dtype = draw(st.sampled_from([np.int16, np.uint16, np.float32]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    samples = rng.integers(0, 4096, (n, n_samples))
    lengths = rng.integers(0, n_samples + 1, n)
    # extreme lengths are where out-of-bounds reads happen
    if n:
        lengths[rng.random(n) < 0.3] = n_samples
        lengths[rng.random(n) < 0.1] = 0
    return make_raw(samples.reshape(n, n_samples), lengths=lengths, sample_dtype=sample_dtype)


@settings(max_examples=60, deadline=None)
@given(raw=raw_records(), baseline_samples=st.integers(1, 50), polarity=st.sampled_from(["negative", "positive"]))
def test_matches_the_plain_rule_for_random_records(raw, baseline_samples, polarity):
    records = baseline(raw, baseline_samples=baseline_samples, polarity=polarity)
    data, mean, rms = reference_baseline(raw, baseline_samples, polarity)
    assert np.allclose(records["baseline_adc"], mean, rtol=1e-6)
    assert np.allclose(records["baseline_rms_adc"], rms, rtol=1e-4, atol=1e-3)
    assert np.allclose(records["data"], data, atol=2e-3)


@settings(max_examples=40, deadline=None)
@given(raw=raw_records(), cuts=st.lists(st.integers(0, 30), max_size=4))
def test_result_does_not_depend_on_how_records_are_split(raw, cuts):
    whole = baseline(raw, baseline_samples=8)
    edges = sorted({0, len(raw), *(min(c, len(raw)) for c in cuts)})
    parts = [baseline(raw[lo:hi], baseline_samples=8) for lo, hi in zip(edges[:-1], edges[1:])]
    assert np.array_equal(np.concatenate([whole[:0], *parts]), whole)
