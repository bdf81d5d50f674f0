"""Pulse shape per hit: width at half height and 10-90 % rise time in ns, for both polarities;
NaN rather than a wrong number when the record cuts the pulse."""
from __future__ import annotations

import math

import numpy as np
import pytest

from wfa_notebook import dtypes
from wfa_notebook.errors import WfaChunkError, WfaConfigError
from wfa_notebook.processing import baseline, find_hits, pulse_properties

# shared with the float32 case of test_accuracy: each record size is a separate compilation
N_SAMPLES = 300


def raw_with_pulse(shape, polarity="negative", dt=0.5, base=3000, n_samples=N_SAMPLES, time=0, channel=0):
    """One raw record: flat baseline plus ``shape`` (positive, ADC) in the given polarity."""
    raw = np.zeros(1, dtypes.raw_record_dtype(n_samples, np.float32))
    sign = -1 if polarity == "negative" else 1
    raw["data"][0] = base + sign * np.asarray(shape, np.float64)
    raw["length"], raw["dt"], raw["time"], raw["channel"] = n_samples, dt, time, channel
    return raw


def gaussian(center, sigma, height=100.0, n_samples=N_SAMPLES):
    x = np.arange(n_samples)
    return height * np.exp(-0.5 * ((x - center) / sigma) ** 2)


def properties_of(raw, polarity="negative", **kwargs):
    records = baseline(raw, baseline_samples=20, polarity=polarity)
    hits = find_hits(records, threshold_adc=kwargs.pop("threshold_adc", 5), **kwargs)
    return hits, pulse_properties(hits, records)


@pytest.mark.parametrize("polarity", ["negative", "positive"])
def test_gaussian_width_and_rise_time_in_ns(polarity):
    sigma, dt = 8.0, 0.5  # samples, ns per sample
    hits, props = properties_of(raw_with_pulse(gaussian(100.3, sigma), polarity, dt=dt), polarity)
    assert len(props) == 1
    p = props[0]
    fwhm_ns = 2 * math.sqrt(2 * math.log(2)) * sigma * dt
    rise_ns = (math.sqrt(2 * math.log(10)) - math.sqrt(2 * math.log(1 / 0.9))) * sigma * dt
    assert p["width_50_ns"] == pytest.approx(fwhm_ns, rel=0.01)
    assert p["rise_time_10_90_ns"] == pytest.approx(rise_ns, rel=0.02)
    assert p["height_adc"] == pytest.approx(100.0, rel=1e-3)
    # area and height over the hit's samples, as the hit itself has them
    assert p["area_adc_ns"] == pytest.approx(hits["area_adc_ns"][0], rel=1e-6)
    assert p["time_max"] == hits["time_max"][0] == 50
    assert (p["time"], p["length"], p["channel"]) == (hits["time"][0], hits["length"][0], hits["channel"][0])


def test_linear_edges_are_interpolated_exactly():
    # rises 0 -> 100 over 10 samples (10 per sample), flat for 5, falls over 20 samples
    shape = np.zeros(N_SAMPLES)
    shape[50:61] = np.arange(0, 101, 10)
    shape[61:66] = 100
    shape[66:86] = np.arange(95, -5, -5)
    _, props = properties_of(raw_with_pulse(shape, dt=2.0))
    p = props[0]
    # 10 % at sample 51, 90 % at 59: 8 samples of 2 ns
    assert p["rise_time_10_90_ns"] == pytest.approx(16.0)
    # 50 % at sample 55 on the rise and 65 + 10 = 75 on the fall
    assert p["width_50_ns"] == pytest.approx(40.0)


def test_pulse_cut_by_the_record_start_has_no_rise_time_or_width():
    shape = gaussian(-2.0, 6.0)
    raw = raw_with_pulse(shape)
    records = baseline(raw, baseline_samples=1)
    # baseline from the first sample would eat the pulse: set the records by hand instead
    records["data"][0] = shape.astype(np.float32)
    hits = find_hits(records, threshold_adc=5)
    p = pulse_properties(hits, records)[0]
    assert hits["record_edge"][0] & dtypes.RECORD_EDGE_START
    assert np.isnan(p["rise_time_10_90_ns"]) and np.isnan(p["width_50_ns"])
    assert p["height_adc"] > 5


def test_pulse_cut_by_the_record_end_keeps_its_rise_time():
    _, props = properties_of(raw_with_pulse(gaussian(N_SAMPLES - 3, 6.0)))
    p = props[0]
    assert np.isnan(p["width_50_ns"])
    assert p["rise_time_10_90_ns"] == pytest.approx(
        (math.sqrt(2 * math.log(10)) - math.sqrt(2 * math.log(1 / 0.9))) * 6.0 * 0.5, rel=0.03
    )


def test_each_hit_is_matched_to_its_own_record_in_any_order():
    raws = np.concatenate([
        raw_with_pulse(gaussian(60, 4.0, height=50), time=0, channel=1),
        raw_with_pulse(gaussian(60, 10.0, height=80), time=0, channel=2),
        raw_with_pulse(gaussian(120, 2.0, height=30), time=5000, channel=1),
    ])
    records = baseline(raws, baseline_samples=20)
    hits = find_hits(records, threshold_adc=5)
    shuffled = records[[2, 0, 1]]
    props = pulse_properties(hits, shuffled)
    by_sigma = {4.0: 50, 10.0: 80, 2.0: 30}
    for p in props:
        sigma = [s for s, h in by_sigma.items() if abs(p["height_adc"] - h) < 1][0]
        assert p["width_50_ns"] == pytest.approx(2.3548 * sigma * 0.5, rel=0.03)


def test_hit_without_its_record_is_an_error():
    records = baseline(raw_with_pulse(gaussian(60, 4.0)), baseline_samples=20)
    hits = find_hits(records, threshold_adc=5)
    other = records.copy()
    other["channel"] = 9
    with pytest.raises(WfaChunkError, match="no record"):
        pulse_properties(hits, other)
    with pytest.raises(WfaConfigError, match="lack the fields"):
        pulse_properties(hits, np.zeros(1, [("time", np.int64)]))


def test_no_hits_no_rows():
    records = baseline(raw_with_pulse(np.zeros(N_SAMPLES)), baseline_samples=20)
    props = pulse_properties(find_hits(records, threshold_adc=5), records)
    assert len(props) == 0 and props.dtype == dtypes.pulse_dtype
