"""Plots: each draws what it says, with units on every axis, with or without a given Axes."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from matplotlib.colors import to_rgb  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from wfa_notebook import dtypes, plot  # noqa: E402
from wfa_notebook.processing import baseline, find_hits  # noqa: E402

UNIT = ("[ns]", "[ADC]", "[ADC x ns]", "[Hz]", "[s]")


def raw_record(amplitude=200.0, n=110, dt=4.0, base=1000.0, channel=3, time=1_000):
    raw = np.zeros(1, dtypes.raw_record_dtype(n))
    raw["time"], raw["length"], raw["dt"], raw["channel"] = time, n, dt, channel
    samples = np.full(n, base)
    samples[50:60] -= amplitude  # a negative pulse
    raw["data"][0] = samples.astype(np.int16)
    return raw


def peak_row(areas=None, n_samples=20):
    peaks = np.zeros(1, dtypes.peak_dtype(8, 50))
    peaks["time"], peaks["endtime"], peaks["length"], peaks["dt"] = 5_000, 5_100, n_samples, 5.0
    peaks["data"][0, :n_samples] = np.hanning(n_samples) * 100
    per_channel = np.zeros(8)
    for channel, area in (areas or {1: 300.0, 4: 700.0}).items():
        per_channel[channel] = area
    peaks["area_per_channel_adc_ns"][0] = per_channel
    peaks["area_adc_ns"] = per_channel.sum()
    return peaks


def labelled(label):
    """A unit in brackets, or a count that has none (channel numbers, entries per bin)."""
    return any(u in label for u in UNIT) or label in ("channel", "entries per bin")


def has_units(ax):
    return labelled(ax.get_xlabel()), labelled(ax.get_ylabel())


def test_every_plot_labels_its_axes_with_units():
    raw = raw_record()
    records = baseline(raw)
    hits = find_hits(records, threshold_adc=15)
    peaks = peak_row()
    events = np.zeros(1, dtypes.event_dtype)
    events["time"], events["endtime"] = 4_000, 7_000
    axes = [
        plot.plot_record(records[0], hits, threshold_adc=15),
        plot.plot_raw_record(raw[0], baseline_adc=1000.0, threshold_adc=15, hits=hits, baseline_samples=40),
        plot.plot_peak(peaks[0]),
        plot.plot_peak_channels(peaks[0]),
        plot.plot_event(events[0], peaks),
        plot.plot_area_spectrum(hits["area_adc_ns"]),
        plot.plot_rate(np.arange(0, 10**9, 10**6)),
        plot.plot_channel_rates(hits, duration_ns=1e9),
    ]
    for ax in axes:
        assert all(has_units(ax)), (ax.get_title(), ax.get_xlabel(), ax.get_ylabel())


def test_plots_draw_into_a_given_axes_and_return_it():
    figure = Figure()
    ax = figure.add_subplot()
    assert plot.plot_area_spectrum(np.array([1.0, 2.0, 3.0]), ax=ax) is ax
    assert plot.plot_peak_channels(peak_row()[0], ax=ax) is ax


def test_raw_record_shows_baseline_threshold_and_hit_on_the_pulse_side():
    raw = raw_record(amplitude=200.0)
    records = baseline(raw, baseline_samples=40)
    hits = find_hits(records, threshold_adc=15, left_extension_samples=0, right_extension_samples=0)
    ax = plot.plot_raw_record(raw[0], baseline_adc=float(records["baseline_adc"][0]), threshold_adc=15,
                              hits=hits, baseline_samples=40, polarity="negative")
    levels = sorted(line.get_ydata()[0] for line in ax.get_lines() if len(set(line.get_ydata())) == 1)
    assert levels == [pytest.approx(985.0), pytest.approx(1000.0)]  # threshold below the baseline
    spans = [p.get_x() for p in ax.patches]  # baseline window at 0, the hit at sample 50
    assert sorted(spans) == [0.0, 200.0]
    assert ax.get_title().endswith("1 hit")
    positive = plot.plot_raw_record(raw[0], baseline_adc=1000.0, threshold_adc=15, polarity="positive")
    levels = sorted(line.get_ydata()[0] for line in positive.get_lines() if len(set(line.get_ydata())) == 1)
    assert levels == [pytest.approx(1000.0), pytest.approx(1015.0)]


def test_peak_channels_shows_only_channels_with_area():
    ax = plot.plot_peak_channels(peak_row({1: 300.0, 4: 700.0})[0])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "4"]
    assert [bar.get_height() for bar in ax.patches] == [300.0, 700.0]
    assert "1000 ADC x ns in 2 channels" in ax.get_title()


def test_event_display_draws_the_peaks_inside_the_window():
    peaks = np.concatenate([peak_row(), peak_row()])
    peaks["time"] = [5_000, 9_000]  # the second starts after the window
    event = np.zeros(1, dtypes.event_dtype)[0]
    event["time"], event["endtime"] = 4_000, 7_000
    ax = plot.plot_event(event, peaks)
    assert len(ax.get_lines()) == 1
    assert ax.get_lines()[0].get_xdata()[0] == 1_000  # ns after the event start
    assert ax.get_xlim() == (0, 3_000)
    assert "1 peak in 3000 ns" in ax.get_title()


def test_channel_rates_include_silent_channels():
    rows = np.zeros(6, [("channel", np.int16)])
    rows["channel"] = [0, 0, 0, 2, 2, 2]
    ax = plot.plot_channel_rates(rows, duration_ns=2e9, channels=[0, 1, 2])
    assert [bar.get_height() for bar in ax.patches] == [1.5, 0.0, 1.5]


def test_rate_over_time_counts_per_second():
    times_ns = np.arange(0, 2 * 10**9, 10**7)  # 100 Hz for 2 s
    ax = plot.plot_rate(times_ns, bin_s=0.5)
    (stairs,) = ax.patches
    assert np.allclose(stairs.get_data().values, 100.0)
    assert ax.get_ylim()[0] == 0


@pytest.mark.parametrize("draw", ["plot_record", "plot_raw_record"])
def test_hits_of_the_record_are_shaded_where_they_are(draw):
    raw = np.concatenate([raw_record(), raw_record(channel=4)])  # a second record, other channel
    records = baseline(raw)
    hits = find_hits(records, threshold_adc=15, left_extension_samples=0, right_extension_samples=0)
    assert len(hits) == 2
    if draw == "plot_record":
        ax = plot.plot_record(records[0], hits)
    else:
        ax = plot.plot_raw_record(raw[0], baseline_adc=1000.0, hits=hits)
    orange = to_rgb("tab:orange")
    shaded = [p for p in ax.patches if p.get_facecolor()[:3] == orange]
    # one hit, the pulse at samples 50-59 of channel 3's record; the other channel's is not drawn
    assert [(p.get_x(), p.get_width()) for p in shaded] == [(50 * 4.0, 10 * 4.0)]
