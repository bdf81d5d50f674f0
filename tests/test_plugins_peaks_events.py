"""Peaks, PeakBasics, Events and EventBasics plugins, run through a Context."""
from __future__ import annotations

import numpy as np
import pytest

from wfa_notebook import dtypes
from wfa_notebook.context import Context
from wfa_notebook.defaults import default_context
from wfa_notebook.plugins import Option, Plugin, SourcePlugin
from wfa_notebook.plugins.events import EventBasics, Events
from wfa_notebook.plugins.peaks import PeakBasics, Peaks
from wfa_notebook.processing.events import event_basics, find_events
from wfa_notebook.processing.peaks import find_peaks, peak_basics
from test_processing_peaks import make_records, threshold_hits

# Triggers far apart (much more than peak gap and event extensions), each with pulses on a few
# channels; sources may cut chunks between any two triggers.
TRIGGER_SPACING_NS = 20_000
N_TRIGGERS = 12


def hand_records() -> np.ndarray:
    rng = np.random.default_rng(5)
    rows = []
    for k in range(N_TRIGGERS):
        time = 1_000 + k * TRIGGER_SPACING_NS
        onset = int(rng.integers(5, 20))  # the same for all channels: one physical event
        for channel in rng.choice(8, size=rng.integers(1, 5), replace=False):
            samples = np.zeros(64, np.float32)
            samples[onset:onset + 6] = rng.uniform(5, 50) * np.array([0.3, 1, 0.8, 0.5, 0.3, 0.1])
            if k % 3 == 0:  # a second, later pulse: a second peak in the same event
                samples[onset + 30:onset + 33] = 4.0
            rows.append((time, int(channel), 4.0, samples))
    return make_records(rows)


class HandRecords(SourcePlugin):
    """Known records, cut into chunks between triggers."""

    provides = "records"
    dtype = dtypes.record_dtype(64)
    __version__ = "0.1.0"
    triggers_per_chunk = Option(default=N_TRIGGERS, type=int, help="Triggers per chunk", track=False)

    def iter_chunks(self):
        records = hand_records()
        start = 0
        for first in range(0, N_TRIGGERS, self.triggers_per_chunk):
            last = min(first + self.triggers_per_chunk, N_TRIGGERS)
            end = last * TRIGGER_SPACING_NS if last < N_TRIGGERS else N_TRIGGERS * TRIGGER_SPACING_NS
            part = records[(records["time"] >= start) & (records["time"] < end)]
            yield self.make_chunk(part, start, end)
            start = end


class ThresholdHits(Plugin):
    provides = "hits"
    depends_on = ("records",)
    dtype = dtypes.hit_dtype
    __version__ = "0.1.0"

    def compute(self, records):
        return threshold_hits(records, threshold_adc=1.0)


def assert_rows_equal(actual: np.ndarray, expected: np.ndarray) -> None:
    """Structured arrays equal field by field (NaN equals NaN, as for a missing second peak)."""
    assert actual.dtype == expected.dtype
    for name in expected.dtype.names:
        np.testing.assert_array_equal(actual[name], expected[name], err_msg=name)


PLUGINS = [HandRecords, ThresholdHits, Peaks, PeakBasics, Events, EventBasics]
CONFIG = {"n_channels_max": 8, "trigger_min_area_adc_ns": 20.0}


@pytest.fixture
def ctx(tmp_path):
    return Context(tmp_path / "cache", register=PLUGINS, config=CONFIG, max_workers=1)


def test_chain_matches_the_kernels_on_the_whole_run(ctx):
    records = hand_records()
    peaks = find_peaks(threshold_hits(records, 1.0), records=records, n_channels=8)
    np.testing.assert_array_equal(ctx.get_array("run1", "peaks", progress=False), peaks)
    np.testing.assert_array_equal(ctx.get_array("run1", "peak_basics", progress=False), peak_basics(peaks))
    events = find_events(peaks, trigger_min_area_adc_ns=20.0, end=N_TRIGGERS * TRIGGER_SPACING_NS)
    assert len(events) == N_TRIGGERS
    np.testing.assert_array_equal(ctx.get_array("run1", "events", progress=False), events)
    basics = ctx.get_array("run1", "event_basics", progress=False)
    assert_rows_equal(basics, event_basics(events, peaks))
    # every third trigger has a later small pulse: a second peak, about 30 samples later
    two = basics["n_peaks"] == 2
    assert two.sum() == N_TRIGGERS // 3
    assert np.all(np.abs(basics["time_between_largest_ns"][two] - 30 * 4) <= 2 * 4)


@pytest.mark.parametrize("triggers_per_chunk", [1, 5])
def test_chunking_does_not_change_results(ctx, tmp_path, triggers_per_chunk):
    whole = ctx.get_array("run1", "event_basics", progress=False)
    # chunk size is not part of the cache key: compute the cut run in a cache of its own
    cut = ctx.new_context(storage_dir=tmp_path / "cut", config={"triggers_per_chunk": triggers_per_chunk})
    chunks = list(cut.get_iter("run1", "events", progress=False))
    assert len(chunks) == -(-N_TRIGGERS // triggers_per_chunk)
    for chunk in chunks:
        assert np.all((chunk.data["time"] >= chunk.start) & (chunk.data["endtime"] <= chunk.end))
    assert_rows_equal(cut.get_array("run1", "event_basics", progress=False), whole)
    np.testing.assert_array_equal(
        cut.get_array("run1", "peaks", progress=False), ctx.get_array("run1", "peaks", progress=False)
    )


def test_options_reach_the_kernels(ctx):
    default = ctx.get_array("run1", "peaks", progress=False)
    # a gap longer than the 30-sample delay merges the second pulse into the first peak
    merged = ctx.get_array("run1", "peaks", config={"peak_gap_ns": 200}, progress=False)
    assert len(merged) == len(default) - N_TRIGGERS // 3
    multi = ctx.get_array("run1", "peaks", config={"peaks": {"peak_min_channels": 2}}, progress=False)
    assert np.all(multi["n_channels"] >= 2) and 0 < len(multi) < len(default)
    wide = ctx.get_array("run1", "peaks", config={"n_channels_max": 16, "peak_waveform_samples": 20}, progress=False)
    assert wide.dtype == dtypes.peak_dtype(16, 20)
    no_events = ctx.get_array("run1", "events", config={"trigger_min_area_adc_ns": 1e9}, progress=False)
    assert len(no_events) == 0


def test_show_config_and_data_info_carry_units(ctx):
    options = {row["option"]: row for row in ctx.show_config("event_basics").rows}
    for name in ("peak_gap_ns", "peak_min_area_adc_ns", "trigger_min_area_adc_ns",
                 "event_left_extension_ns", "event_right_extension_ns"):
        assert options[name]["help"]
    helps = {row["field"]: row["help"] for row in ctx.data_info("event_basics").rows}
    assert "ns" in helps["time_between_largest_ns"]
    assert "ADC x ns" in helps["largest_peak_area_adc_ns"]


# --- the built-in chain on a synthetic run -------------------------------------------------------

SYNTHETIC = {"synthetic_seed": 7, "synthetic_n_channels": 8, "synthetic_duration_ns": 5_000_000}


def test_default_chain_builds_events_from_a_synthetic_run(tmp_path):
    ctx = default_context(storage_dir=tmp_path / "a", source="synthetic").new_context(config=SYNTHETIC)
    hits = ctx.get_array("run1", "hits", progress=False)
    peaks = ctx.get_array("run1", "peaks", progress=False)
    assert len(peaks) > 10
    assert peaks["n_hits"].sum() == len(hits)
    assert peaks["area_adc_ns"].sum() == pytest.approx(hits["area_adc_ns"].sum(dtype=np.float64), rel=1e-5)
    basics = ctx.get_array("run1", "event_basics", progress=False)
    assert len(basics) > 0
    (trigger,) = [r["current"] for r in ctx.show_config("events") if r["option"] == "trigger_min_area_adc_ns"]
    assert np.all(basics["largest_peak_area_adc_ns"] >= trigger)

    # at this rate (a pulse every ~60 us) chunk cuts fall in gaps much wider than an event window,
    # so small chunks change nothing
    cut = default_context(storage_dir=tmp_path / "b", source="synthetic").new_context(
        config={**SYNTHETIC, "chunk_duration_ns": 300_000}
    )
    chunks = list(cut.get_iter("run1", "events", progress=False))
    assert len(chunks) > 3
    np.testing.assert_array_equal(cut.get_array("run1", "peaks", progress=False), peaks)
    assert_rows_equal(cut.get_array("run1", "event_basics", progress=False), basics)
