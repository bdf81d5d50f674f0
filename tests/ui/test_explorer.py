"""Threshold explorer: the plain model (no widgets) and the ipywidgets panel built with display=False."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import wfa_notebook as wfa
from wfa_notebook.errors import WfaConfigError
from wfa_notebook.processing import baseline, find_hits
from wfa_notebook.ui.explorer_model import ThresholdExplorerModel

RUN = "run0"
SYNTHETIC = dict(
    synthetic_seed=5,
    synthetic_n_channels=4,
    synthetic_duration_ns=20_000_000,
    synthetic_noise_record_fraction=0.5,
    synthetic_amplitude_spectrum=("exponential", 40.0),
)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def make_context(folder, **config):
    return wfa.default_context(folder, config={**SYNTHETIC, **config})


@pytest.fixture
def context(tmp_path):
    return make_context(tmp_path / "cache")


@pytest.fixture(scope="module")
def shared_model(tmp_path_factory):
    """A model for read-only property tests (building one per example would be slow)."""
    return ThresholdExplorerModel(make_context(tmp_path_factory.mktemp("explorer") / "cache"), RUN)


def in_span(rows, model):
    return rows[(rows["time"] >= model.start_ns) & (rows["time"] < model.end_ns)]


# --- the model ------------------------------------------------------------------------------------


def test_model_starts_from_the_context_options(tmp_path):
    context = make_context(tmp_path, threshold_adc=12.0, baseline_samples=30, right_extension_samples=20)
    model = ThresholdExplorerModel(context, RUN, channel=2)
    assert (model.threshold, model.threshold_unit) == (12.0, "adc")
    assert model.baseline_samples == 30
    assert (model.left_extension_samples, model.right_extension_samples) == (5, 20)
    assert model.channel == 2 and model.channels == [0, 1, 2, 3]
    assert model.polarity == "negative"


def test_model_starts_in_rms_units_when_the_context_uses_only_an_rms_threshold(tmp_path):
    model = ThresholdExplorerModel(make_context(tmp_path, threshold_adc=0.0, threshold_rms=4.0), RUN)
    assert (model.threshold, model.threshold_unit) == (4.0, "rms")


def test_per_channel_thresholds_start_from_the_shown_channel(tmp_path):
    model = ThresholdExplorerModel(make_context(tmp_path, threshold_adc=[10.0, 11.0, 12.0, 13.0]), RUN, channel=3)
    assert model.threshold == 13.0


def test_model_finds_the_hits_the_context_finds_with_the_same_options(context):
    model = ThresholdExplorerModel(context, RUN)
    hits = in_span(context.get_array(RUN, "hits", progress=False), model)
    assert len(model.hits) > 0
    assert model.hits.tobytes() == hits.tobytes()


def test_lower_threshold_gives_more_hits_and_counts_add_up(context):
    model = ThresholdExplorerModel(context, RUN)
    high = model.set(threshold=40.0).hit_counts()
    low = model.set(threshold=8.0).hit_counts()
    assert all(low[c] > high[c] for c in model.channels)
    assert sum(low.values()) == len(model.hits)
    seconds = model.duration_ns / 1e9
    assert model.hit_rates_hz() == pytest.approx({c: n / seconds for c, n in low.items()})
    assert model.last_recompute_s > 0


@settings(max_examples=25, deadline=None)
@given(st.floats(0.0, 60.0), st.floats(0.0, 60.0))
def test_records_with_hits_never_rise_with_the_threshold(shared_model, a, b):
    low, high = sorted((a, b))
    at_low = shared_model.set(threshold_unit="adc", threshold=low).records_with_hits()
    at_high = shared_model.set(threshold=high).records_with_hits()
    assert all(at_high[c] <= at_low[c] for c in shared_model.channels)
    assert all(0.0 <= v <= 1.0 for v in at_low.values())


def test_rms_threshold_is_relative_to_each_records_noise(context):
    model = ThresholdExplorerModel(context, RUN)
    model.set(threshold_unit="rms", threshold=4.0)
    expected = find_hits(model.records, threshold_rms=4.0, left_extension_samples=5, right_extension_samples=30)
    assert model.hits.tobytes() == expected.tobytes()
    assert model.record_threshold_adc == pytest.approx(4.0 * float(model.record["baseline_rms_adc"]))


def test_switching_the_unit_keeps_the_threshold_where_it_was(context):
    model = ThresholdExplorerModel(context, RUN, channel=1)
    model.set(threshold=15.0)
    model.set(threshold_unit="rms")
    rms = np.median(model.records["baseline_rms_adc"][model.records["channel"] == 1])
    assert model.threshold == pytest.approx(15.0 / rms, abs=0.05)
    model.set(threshold_unit="adc")
    assert model.threshold == pytest.approx(15.0, abs=0.3)


def test_baseline_samples_change_the_baseline(context):
    model = ThresholdExplorerModel(context, RUN)
    model.set(baseline_samples=10)
    expected = baseline(model.raw_records, baseline_samples=10, polarity="negative")
    assert np.array_equal(model.records["baseline_adc"], expected["baseline_adc"])
    assert model.config()["records"] == {"baseline_samples": 10}


def test_extensions_widen_the_hits(context):
    model = ThresholdExplorerModel(context, RUN)
    narrow = model.set(threshold=30.0, left_extension_samples=0, right_extension_samples=0).hits.copy()
    wide = model.set(left_extension_samples=3, right_extension_samples=10).hits
    assert len(wide) <= len(narrow)  # wider hits may merge, never split
    assert wide["length"].sum() > narrow["length"].sum()


def test_displayed_record_and_its_hits(context):
    model = ThresholdExplorerModel(context, RUN, channel=2)
    indices = model.channel_record_indices()
    assert model.n_channel_records == len(indices) > 1
    model.set(record_index=1)
    assert model.raw_record["time"] == model.raw_records["time"][indices[1]]
    assert model.raw_record["channel"] == 2
    mine = model.record_hits()
    assert np.all(mine["record_time"] == model.raw_record["time"]) and np.all(mine["channel"] == 2)
    model.set(channel=1)
    assert model.record_index == 0 and model.raw_record["channel"] == 1


def test_channel_summary_lists_every_channel(context):
    model = ThresholdExplorerModel(context, RUN)
    summary = model.channel_summary()
    assert [row["channel"] for row in summary] == model.channels
    assert sum(row["records"] for row in summary) == len(model.raw_records)
    assert [row["hits"] for row in summary] == list(model.hit_counts().values())


def test_max_records_keeps_the_first_records_and_their_time_span(context):
    full = ThresholdExplorerModel(context, RUN)
    small = ThresholdExplorerModel(context, RUN, max_records=50)
    assert len(small.raw_records) == 50
    assert small.raw_records.tobytes() == full.raw_records[:50].tobytes()
    assert small.end_ns == full.raw_records["time"][50]


def test_apply_writes_the_options_and_the_next_get_array_uses_them(context):
    model = ThresholdExplorerModel(context, RUN)
    model.set(threshold=25.0, baseline_samples=30, left_extension_samples=2, right_extension_samples=12)
    chosen = model.apply()
    assert chosen == {
        "records": {"baseline_samples": 30},
        "hits": {"threshold_adc": 25.0, "threshold_rms": 0.0, "left_extension_samples": 2,
                 "right_extension_samples": 12},
    }
    assert context.config["hits"]["threshold_adc"] == 25.0
    hits = context.get_array(RUN, "hits", progress=False)
    assert np.all(hits["threshold_adc"] == 25.0)
    assert in_span(hits, model).tobytes() == model.hits.tobytes()


def test_apply_in_rms_units_turns_the_adc_threshold_off(context):
    model = ThresholdExplorerModel(context, RUN)
    model.set(threshold_unit="rms", threshold=6.0).apply()
    assert context.config["hits"]["threshold_rms"] == 6.0 and context.config["hits"]["threshold_adc"] == 0.0
    assert in_span(context.get_array(RUN, "hits", progress=False), model).tobytes() == model.hits.tobytes()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"channel": 9}, "channels present: [0, 1, 2, 3]"),
        ({"threshold": -1.0}, "threshold must be finite and >= 0"),
        ({"threshold_unit": "volts"}, "threshold_unit must be one of"),
        ({"baseline_samples": 0}, "baseline_samples must be a whole number of samples >= 1"),
        ({"right_extension_samples": 2.5}, "right_extension_samples must be a whole number"),
        ({"record_index": 10_000}, "record_index must be in [0,"),
        ({"treshold": 3.0}, "unknown options ['treshold']"),
        ({"threshold": "high"}, "threshold must be finite and >= 0"),
        ({"channel": 2, "threshold": float("nan")}, "threshold must be finite and >= 0"),
    ],
)
def test_bad_changes_say_what_is_allowed_and_change_nothing(shared_model, changes, message):
    before = (shared_model.channel, shared_model.threshold, shared_model.threshold_unit,
              shared_model.baseline_samples, shared_model.record_index, len(shared_model.hits))
    with pytest.raises(WfaConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        shared_model.set(**changes)
    after = (shared_model.channel, shared_model.threshold, shared_model.threshold_unit,
             shared_model.baseline_samples, shared_model.record_index, len(shared_model.hits))
    assert after == before


def test_a_chunk_that_does_not_exist_is_a_clear_error(context):
    with pytest.raises(WfaConfigError, match=r"has only 1 chunks; choose chunk_index below 1"):
        ThresholdExplorerModel(context, RUN, chunk_index=3)


def test_a_context_without_hit_finding_is_a_clear_error(tmp_path):
    from wfa_notebook.plugins.sources import SyntheticSource

    bare = wfa.Context(tmp_path, register=[SyntheticSource])
    with pytest.raises(WfaConfigError, match="no plugin providing 'records'"):
        ThresholdExplorerModel(bare, RUN)


def test_threshold_range_covers_the_threshold_and_the_noise(context):
    model = ThresholdExplorerModel(context, RUN)
    low, high, step = model.threshold_range()
    assert (low, step) == (0.0, 0.5) and 100.0 <= high <= 200.0  # noise RMS 3 ADC: up to 50 RMS
    model.set(threshold=450.0)
    assert model.threshold_range()[1] >= 450.0
    model.set(threshold_unit="rms", threshold=4.0)
    assert model.threshold_range() == (0.0, 30.0, 0.1)


def test_model_plot_draws_the_displayed_record(context):
    model = ThresholdExplorerModel(context, RUN, channel=1)
    ax = model.plot()
    assert ax.get_xlabel() == "time since record start [ns]"
    assert ax.get_ylabel() == "raw amplitude [ADC]"
    assert ax.get_title().startswith("channel 1, record 1 of")


# --- the panel --------------------------------------------------------------------------------------

widgets = pytest.importorskip("ipywidgets")


@pytest.fixture
def explorer(context):
    from wfa_notebook.ui.explorer import ThresholdExplorer

    return ThresholdExplorer(context, RUN, channel=1, display=False)


def shown_count(explorer) -> int:
    label = explorer.hit_count_label.value
    return int(label.split("<span class='wfa-hit-count'>")[1].split("<")[0])


def test_panel_shows_the_models_state(explorer):
    model = explorer.model
    assert isinstance(explorer, widgets.VBox)
    assert explorer.threshold_slider.value == model.threshold == 15.0
    assert explorer.threshold_unit_buttons.value == "adc"
    assert explorer.channel_picker.options == (0, 1, 2, 3) and explorer.channel_picker.value == 1
    assert explorer.record_picker.max == model.n_channel_records - 1
    assert shown_count(explorer) == model.hit_counts()[1]
    assert bytes(explorer.waveform_image.value).startswith(PNG_SIGNATURE)
    assert explorer.channel_table.value.count("<tr") == 1 + len(model.channels)


def test_moving_the_threshold_slider_changes_the_hit_count(explorer):
    before = shown_count(explorer)
    image = explorer.waveform_image.value
    explorer.threshold_slider.value = 6.0
    assert explorer.model.threshold == 6.0
    assert shown_count(explorer) > before
    assert shown_count(explorer) == explorer.model.hit_counts()[1]
    assert explorer.waveform_image.value != image  # the threshold line moved
    assert "hit finding" in explorer.timing_label.value


def test_other_sliders_reach_the_model(explorer):
    explorer.baseline_slider.value = 20
    explorer.left_extension_slider.value = 1
    explorer.right_extension_slider.value = 8
    model = explorer.model
    assert (model.baseline_samples, model.left_extension_samples, model.right_extension_samples) == (20, 1, 8)


def test_unit_toggle_switches_the_slider_to_rms(explorer):
    explorer.threshold_unit_buttons.value = "rms"
    assert explorer.model.threshold_unit == "rms"
    assert explorer.threshold_slider.step == pytest.approx(0.1)
    assert explorer.threshold_slider.max == 30.0
    assert 3.0 < explorer.threshold_slider.value == explorer.model.threshold < 8.0
    assert "\u00d7 RMS" in explorer.hit_count_label.value


def test_channel_and_record_pickers(explorer):
    explorer.channel_picker.value = 3
    model = explorer.model
    assert model.channel == 3
    assert explorer.record_picker.max == model.n_channel_records - 1 and explorer.record_picker.value == 0
    assert "in channel 3" in explorer.hit_count_label.value
    image = explorer.waveform_image.value
    explorer.record_picker.value = 2
    assert model.record_index == 2 and explorer.waveform_image.value != image


def test_apply_button_updates_the_context_and_the_next_get_array(explorer, context):
    explorer.threshold_slider.value = 30.0
    explorer.right_extension_slider.value = 10
    explorer.apply_button.click()
    assert context.config["hits"]["threshold_adc"] == 30.0
    assert context.config["hits"]["right_extension_samples"] == 10
    assert explorer.status_label.value.startswith("Applied: threshold_adc = 30")
    hits = context.get_array(RUN, "hits", progress=False)
    assert np.all(hits["threshold_adc"] == 30.0)
    assert in_span(hits, explorer.model).tobytes() == explorer.model.hits.tobytes()


def test_status_tells_when_the_sliders_moved_after_apply(explorer, context):
    assert explorer.status_label.value == ""
    explorer.apply_button.click()
    assert explorer.status_label.value.startswith("Applied: threshold_adc = 15")
    explorer.record_picker.value = 1  # looking at another record changes no option
    assert explorer.status_label.value.startswith("Applied:")
    explorer.threshold_slider.value = 20.0
    assert "Changed since the last Apply" in explorer.status_label.value
    assert context.config["hits"]["threshold_adc"] == 15.0
