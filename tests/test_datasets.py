"""The embedded synthetic run: deterministic, chunking-independent, and faithful to its truth."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wfa_notebook import dtypes
from wfa_notebook.datasets import synthetic_run
from wfa_notebook.errors import WfaConfigError

SMALL = dict(n_channels=4, duration_ns=4_000_000, pulse_rate_hz=20_000.0, slab_duration_ns=500_000)


def _single_pulse_rows(run):
    """Truth rows whose record holds only that pulse, with the record."""
    truth, records = run.truth(), run.records()
    counts = np.bincount(truth["event_number"], minlength=len(records))
    single = counts[truth["event_number"]] == 1
    return truth[single], records[truth["event_number"][single]]


def test_same_seed_same_run_other_seed_other_run():
    a = synthetic_run(seed=1, **SMALL).records()
    b = synthetic_run(seed=1, **SMALL).records()
    c = synthetic_run(seed=2, **SMALL).records()
    assert np.array_equal(a, b)
    assert len(a) != len(c) or not np.array_equal(a["data"], c["data"])


def test_records_have_the_raw_record_dtype_and_are_time_ordered():
    run = synthetic_run(seed=0, **SMALL)
    records = run.records()
    assert records.dtype == dtypes.raw_record_dtype(110, np.int16)
    assert len(records) == run.n_records > 100
    assert np.all(np.diff(records["time"]) >= 0)
    assert np.all(records["length"] == 110) and np.all(records["dt"] == 4.0)
    assert set(np.unique(records["channel"])) == {0, 1, 2, 3}
    assert np.array_equal(records["event_number"], np.arange(len(records)))
    # records of one channel never overlap (one digitizer window at a time)
    for ch in range(4):
        r = records[records["channel"] == ch]
        assert np.all(dtypes.endtime(r)[:-1] <= r["time"][1:])
    assert records["time"].min() >= 0 and dtypes.endtime(records).max() <= run.duration_ns


@pytest.mark.parametrize("polarity", ["negative", "positive"])
@pytest.mark.parametrize("shape", ["exponential", "gaussian"])
def test_time_of_maximum_and_area_match_truth(polarity, shape):
    run = synthetic_run(seed=5, polarity=polarity, pulse_shape=shape, noise_rms_adc=0.0,
                        amplitude_spectrum=("uniform", 200, 2000), **SMALL)
    truth, records = _single_pulse_rows(run)
    assert len(truth) > 50
    sign = 1.0 if polarity == "positive" else -1.0
    pulse = sign * (records["data"].astype(float) - run.config.baseline_adc)
    assert pulse.min() >= -0.5  # pulses go the announced way
    t_max = records["time"] + np.argmax(pulse, axis=1) * records["dt"]
    assert np.all(np.abs(t_max - truth["time_ns"]) <= run.config.dt_ns)
    # sampled maximum: at most 2 % below the true peak (sampling phase), plus ADC rounding
    height_error = pulse.max(axis=1) - truth["amplitude_adc"]
    assert np.all((height_error <= 0.6) & (height_error >= -0.6 - 0.02 * truth["amplitude_adc"]))
    area = pulse.sum(axis=1) * records["dt"]
    # ADC rounding adds at most half a count per sample
    assert np.all(np.abs(area - truth["area_in_record_adc_ns"]) <= 110 * 0.5 * 4)
    assert np.all(truth["area_in_record_adc_ns"] <= truth["area_adc_ns"] * 1.001)
    assert np.all(truth["area_adc_ns"] > 0)


def test_baseline_samples_are_pulse_free_and_noise_has_the_asked_rms():
    run = synthetic_run(seed=2, noise_rms_adc=4.0, amplitude_spectrum=("fixed", 1000.0),
                        noise_record_fraction=0.5, **SMALL)
    records = run.records()
    baseline = records["data"][:, :40].astype(float)
    assert np.abs(baseline - run.config.baseline_adc).max() < 8 * 4.0
    assert baseline.std() == pytest.approx(4.0, rel=0.05)


def test_noise_records_carry_no_truth_pulse_and_have_the_asked_fraction():
    run = synthetic_run(seed=3, noise_record_fraction=0.8, **SMALL)
    records, truth = run.records(), run.truth()
    noise_only = ~np.isin(records["event_number"], truth["event_number"])
    assert noise_only.mean() == pytest.approx(0.8, abs=0.05)
    data = records["data"][noise_only].astype(float)
    assert np.abs(data - run.config.baseline_adc).max() < 8 * run.config.noise_rms_adc


def test_pile_up_pulse_appears_in_the_open_record_and_in_truth():
    run = synthetic_run(seed=4, n_channels=1, duration_ns=2_000_000, pulse_rate_hz=1_000_000.0)
    truth = run.truth()
    pile_up = truth[~truth["is_trigger"]]
    assert len(pile_up) > 0
    records = run.records()
    rec = records[pile_up["event_number"]]
    assert np.all(pile_up["onset_ns"] >= rec["time"])
    assert np.all(pile_up["onset_ns"] < dtypes.endtime(rec))
    # exactly one triggering pulse per pulse record, placed after the pre-trigger samples
    trig = truth[truth["is_trigger"]]
    assert len(np.unique(trig["event_number"])) == len(trig)
    offset = (trig["onset_ns"] - trig["record_time"]) / run.config.dt_ns
    assert np.all((offset >= 50) & (offset < 51))


def test_samples_are_rounded_and_clipped_to_the_adc_range():
    run = synthetic_run(seed=0, polarity="negative", baseline_adc=500, adc_bits=12,
                        amplitude_spectrum=("fixed", 3000.0), **SMALL)
    data = run.records()["data"]
    assert data.min() == 0  # pulses below zero are clipped like a real ADC
    assert data.max() <= 4095
    run = synthetic_run(seed=0, sample_dtype=np.float32, dt_ns=1.0 / 0.75, **SMALL)
    records = run.records()
    assert records["data"].dtype == np.float32 and records["dt"][0] == pytest.approx(1.3333333)
    assert not np.all(records["data"] == np.rint(records["data"]))  # DRS4-like: not whole counts


@pytest.mark.parametrize("spectrum", [("exponential", 50.0), ("uniform", 10, 20), ("fixed", 77.0), ("gaussian", 100.0, 5.0)])
def test_amplitude_spectra(spectrum):
    amps = synthetic_run(seed=0, amplitude_spectrum=spectrum, **SMALL).truth()["amplitude_adc"]
    kind = spectrum[0]
    if kind == "exponential":
        assert amps.mean() == pytest.approx(50.0, rel=0.1)
    elif kind == "uniform":
        assert amps.min() >= 10 and amps.max() <= 20
    elif kind == "fixed":
        assert np.all(amps == 77.0)
    else:
        assert amps.mean() == pytest.approx(100.0, rel=0.02) and amps.std() == pytest.approx(5.0, rel=0.2)


def test_n_records_sets_the_expected_size():
    run = synthetic_run(n_channels=100, n_records=20_000, pulse_rate_hz=400.0,
                        noise_record_fraction=0.8, dt_ns=10.0)
    assert run.n_records == pytest.approx(20_000, rel=0.03)
    truth = run.truth()
    assert len(truth) / run.n_records == pytest.approx(0.2, abs=0.02)


@pytest.mark.parametrize(
    "kwargs",
    [dict(polarity="up"), dict(pulse_shape="triangle"), dict(amplitude_spectrum=("lorentz", 1.0)),
     dict(noise_record_fraction=1.0), dict(adc_bits=16), dict(pre_trigger_samples=200),
     dict(rise_time_ns=50.0, decay_time_ns=10.0), dict(sample_dtype="U4")],
)
def test_bad_parameters_raise_a_config_error(kwargs):
    with pytest.raises(WfaConfigError, match="synthetic_run"):
        synthetic_run(**kwargs)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    chunk_a=st.floats(1e4, 5e6),
    chunk_b=st.one_of(st.none(), st.floats(1e3, 1e7)),
)
def test_chunks_are_continuous_sorted_contain_their_records_and_do_not_depend_on_chunking(seed, chunk_a, chunk_b):
    run = synthetic_run(seed=seed, n_channels=3, duration_ns=3_000_000, pulse_rate_hz=30_000.0,
                        n_samples=20, slab_duration_ns=700_000)
    contents = []
    for chunk_duration in (chunk_a, chunk_b):
        chunks = list(run.iter_chunks(chunk_duration_ns=chunk_duration))
        assert chunks[0][0] == 0 and chunks[-1][1] == run.duration_ns
        for (_, end, _), (start, _, _) in zip(chunks[:-1], chunks[1:]):
            assert end == start
        for start, end, records in chunks:
            assert start < end
            assert np.all(np.diff(records["time"]) >= 0)
            if len(records):
                assert records["time"].min() >= start and dtypes.endtime(records).max() <= end
        contents.append(np.concatenate([c[2] for c in chunks]))
    assert np.array_equal(contents[0], contents[1])
    assert np.array_equal(contents[0], run.records())
