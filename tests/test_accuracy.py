"""Accuracy of baseline + hit finding against the truth of synthetic runs.

Pulses of 5 to 20 x the noise RMS, threshold 3 x RMS: at least 99 % of the pulses are found, at
most 1 fake hit per 10^4 noise-only records, the summed hit area is unbiased within 2 %, and the
time of the highest sample is within one sample of the true maximum (without noise; with noise
the highest sample wanders over the flat top, so there its median offset is within one sample).
Both polarities, integer and float32 (DRS4-like, 1.333 ns) samples.

White noise exceeds 3 RMS in 0.13 % of the samples, so a single-sample criterion would give ~1500
fake hits per 10^4 records of 110 samples; requiring 3 consecutive samples above a threshold of
3 x the noise RMS brings that to ~0.003 while pulses, several samples wide, pass.  A threshold of
3 x each record's own baseline RMS (estimated from 40 samples, so ~10 % low in 1 record of 6)
needs 4 consecutive samples for the same fake rate.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wfa_notebook import dtypes
from wfa_notebook.context import Context
from wfa_notebook.datasets import synthetic_run
from wfa_notebook.plugins.sources import SyntheticSource
from wfa_notebook.plugins.waveform import Hits, Records
from wfa_notebook.processing import baseline, find_hits
from wfa_notebook.registry import configure_plugin

NOISE_RMS_ADC = 3.0
THRESHOLDS = {
    "3 x noise RMS in ADC": dict(threshold_adc=3 * NOISE_RMS_ADC, min_consecutive_samples=3),
    "3 x record baseline RMS": dict(threshold_rms=3.0, min_consecutive_samples=4),
}

CASES = {
    "int16, 4 ns": dict(sample_dtype=np.int16, dt_ns=4.0),
    "float32, 1.333 ns": dict(sample_dtype=np.float32, dt_ns=4.0 / 3.0, n_samples=300,
                              rise_time_ns=2.0, decay_time_ns=15.0),
}
#: The right extension must cover the pulse tail (~4 decay times) for an unbiased area.
EXTENSIONS = {
    "int16, 4 ns": dict(left_extension_samples=5, right_extension_samples=30),
    "float32, 1.333 ns": dict(left_extension_samples=5, right_extension_samples=50),
}


def run_for(polarity, case, noise_rms=NOISE_RMS_ADC, n_records=25_000, **kwargs):
    return synthetic_run(
        seed=11, n_channels=8, n_records=n_records, pulse_rate_hz=2_000.0, noise_rms_adc=noise_rms,
        amplitude_spectrum=("uniform", 5 * NOISE_RMS_ADC, 20 * NOISE_RMS_ADC), polarity=polarity,
        **{**CASES[case], **kwargs},
    )


def process(run, polarity, case, threshold):
    raw = run.records()
    records = baseline(raw, baseline_samples=40, polarity=polarity)
    return raw, find_hits(records, **THRESHOLDS[threshold], **EXTENSIONS[case])


def record_of_hits(raw, hits):
    """Index of each hit's record (records are sorted by time, then channel)."""
    key = {(int(t), int(c)): i for i, (t, c) in enumerate(zip(raw["time"], raw["channel"]))}
    return np.array([key[(int(t), int(c))] for t, c in zip(hits["record_time"], hits["channel"])], np.int64)


def match_truth(run, raw, hits):
    """For each truth pulse, the index of the hit whose interval holds its maximum (-1: missed)."""
    truth = run.truth()
    rec = record_of_hits(raw, hits)
    by_record: dict[int, list[int]] = {}
    for k, r in enumerate(rec):
        by_record.setdefault(int(r), []).append(k)
    ends = dtypes.endtime(hits)
    found = np.full(len(truth), -1, np.int64)
    for i, (event, t_max) in enumerate(zip(truth["event_number"], truth["time_ns"])):
        for k in by_record.get(int(event), ()):
            if hits["time"][k] <= t_max < ends[k]:
                found[i] = k
    return truth, rec, found


@pytest.mark.parametrize("threshold", list(THRESHOLDS))
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("polarity", ["negative", "positive"])
def test_pulses_found_with_unbiased_area_and_few_fakes(polarity, case, threshold):
    run = run_for(polarity, case, noise_record_fraction=0.5)
    raw, hits = process(run, polarity, case, threshold)
    truth, rec, found = match_truth(run, raw, hits)
    assert len(truth) > 10_000

    efficiency = np.mean(found >= 0)
    assert efficiency >= 0.99, f"found {efficiency:.4f} of {len(truth)} pulses of 5-20 x RMS"

    pulse_records = np.zeros(len(raw), bool)
    pulse_records[truth["event_number"]] = True
    n_noise_records = int(np.sum(~pulse_records))
    fakes = int(np.sum(~pulse_records[rec]))
    assert n_noise_records >= 10_000
    assert fakes <= n_noise_records // 10_000, f"{fakes} hits in {n_noise_records} noise-only records"

    # area: all hits of a record holding exactly one pulse against that pulse's area in the record
    pulses_per_record = np.bincount(truth["event_number"], minlength=len(raw))
    hit_area = np.bincount(rec, weights=hits["area_adc_ns"], minlength=len(raw))
    single = truth[pulses_per_record[truth["event_number"]] == 1]
    ratio = hit_area[single["event_number"]] / single["area_in_record_adc_ns"]
    assert abs(np.mean(ratio) - 1) < 0.02, f"area bias {np.mean(ratio) - 1:+.4f}"

    # time of the highest sample: noise moves it around the flat top, but not by more than a sample
    lone = (pulses_per_record[truth["event_number"]] == 1) & (found >= 0)
    offset = (hits["time_max"][found[lone]] - truth["time_ns"][lone]) / run.config.dt_ns
    assert np.median(np.abs(offset)) <= 1.0
    assert abs(np.mean(offset)) <= 0.5


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("polarity", ["negative", "positive"])
def test_without_noise_time_of_maximum_within_one_sample(polarity, case):
    run = run_for(polarity, case, noise_rms=0.0, n_records=2_000)
    raw = run.records()
    records = baseline(raw, baseline_samples=40, polarity=polarity)
    hits = find_hits(records, threshold_adc=3 * NOISE_RMS_ADC, **EXTENSIONS[case])
    truth, rec, found = match_truth(run, raw, hits)
    assert np.all(found >= 0)
    lone = np.bincount(truth["event_number"], minlength=len(raw))[truth["event_number"]] == 1
    offset = (hits["time_max"][found[lone]] - truth["time_ns"][lone]) / run.config.dt_ns
    assert np.all(np.abs(offset) <= 1.0)


# --- chunk boundaries and the built-in plugins -----------------------------------------------------


@settings(max_examples=15, deadline=None)
@given(chunk_duration_ns=st.integers(20_000, 3_000_000))
def test_hits_do_not_depend_on_chunk_boundaries(chunk_duration_ns):
    run = synthetic_run(seed=4, n_channels=4, duration_ns=3_000_000, pulse_rate_hz=20_000.0, slab_duration_ns=500_000)
    whole = find_hits(baseline(run.records()), threshold_adc=15)
    parts = [find_hits(baseline(raw), threshold_adc=15) for _, _, raw in run.iter_chunks(chunk_duration_ns)]
    assert len(parts) >= 1
    assert np.array_equal(np.concatenate(parts), whole)


CONTEXT_RUN = {"synthetic_seed": 8, "synthetic_n_channels": 4, "synthetic_duration_ns": 4_000_000,
               "synthetic_pulse_rate_hz": 10_000.0}


@pytest.mark.parametrize("polarity", ["negative", "positive"])
def test_plugins_through_a_context_give_the_kernel_results_for_any_chunking(tmp_path, polarity):
    # 40-sample records (20 before the trigger): the records dtype follows the source's
    config = {**CONTEXT_RUN, "polarity": polarity,
              "synthetic_n_samples": 40, "baseline_samples": 15, "threshold_adc": 12.0}
    results = []
    for i, chunk_ns in enumerate([None, 150_000.0]):
        context = Context(storage_dir=tmp_path / str(i), register=[SyntheticSource, Records, Hits],
                          config={**config, "chunk_duration_ns": chunk_ns})
        results.append((context.get_array("run1", "records"), context.get_array("run1", "hits")))
    source = configure_plugin(SyntheticSource, config, "run1", None)
    expected_records = baseline(source.make_run().records(), baseline_samples=15, polarity=polarity)
    expected_hits = find_hits(expected_records, threshold_adc=12.0)
    assert expected_records.dtype == dtypes.record_dtype(40) and len(expected_hits) > 100
    for records, hits in results:
        assert np.array_equal(records, expected_records)
        assert np.array_equal(hits, expected_hits)
    # pulses are positive whatever the raw polarity
    assert np.all(expected_hits["height_adc"] > 12.0)


def test_hits_options_are_documented_and_reach_the_kernel(tmp_path):
    context = Context(storage_dir=tmp_path, register=[SyntheticSource, Records, Hits], config={
        **CONTEXT_RUN, "hits": {"threshold_rms": 6.0, "threshold_adc": 0.0, "right_extension_samples": 3,
                                "min_consecutive_samples": 2},
    })
    hits = context.get_array("run1", "hits")
    records = context.get_array("run1", "records")
    assert len(hits) > 100
    assert np.all(hits["threshold_adc"] > 0)
    expected = find_hits(records, threshold_rms=6.0, right_extension_samples=3, min_consecutive_samples=2)
    assert np.array_equal(hits, expected)
    for plugin in (Records, Hits):
        for name, option in plugin.options().items():
            assert option.help, f"{plugin.__name__}.{name} has no help text"
