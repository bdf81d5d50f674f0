"""Matplotlib plots of waveforms, hits and spectra, with units on every axis.

Usable outside notebooks: every function takes an optional ``ax`` and returns the Axes.
matplotlib is imported when a plot is made, not when wfa_notebook is imported.
"""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    # waveforms
    "plot_record",
    "plot_raw_record",
    # peaks and events
    "plot_peak",
    "plot_peak_channels",
    "plot_event",
    # distributions over the run
    "plot_area_spectrum",
    "plot_rate",
    "plot_channel_rates",
]


def _axes(ax: Any = None, figsize: tuple[float, float] = (7.0, 4.0)):
    if ax is not None:
        return ax
    from matplotlib.figure import Figure

    # A bare Figure (no pyplot) works with any backend and in threads.
    return Figure(figsize=figsize, layout="constrained").add_subplot()


def plot_record(record: np.void | np.ndarray, hits: np.ndarray | None = None, threshold_adc: float | None = None,
                ax: Any = None, title: str | None = None):
    """One record's waveform (baseline-subtracted if it is a processed record), its hits shaded.

    Parameters
    ----------
    record : one row of raw records or records.
    hits : hits of any records; those inside this record (same channel and time span) are shaded.
    threshold_adc : draws the hit threshold as a dashed line.
    """
    ax = _axes(ax)
    n = int(record["length"])
    dt = float(record["dt"])
    t0 = int(record["time"])
    times_ns = np.arange(n) * dt  # relative to the record start: absolute ns are unreadable on an axis
    processed = "baseline_adc" in (record.dtype.names or ())
    ax.step(times_ns, record["data"][:n], where="post", color="k", lw=1, label="waveform")
    if processed:
        ax.axhline(0, color="tab:blue", lw=0.8, label="baseline")
    if threshold_adc is not None:
        ax.axhline(threshold_adc, color="tab:red", ls="--", lw=0.8, label=f"threshold {threshold_adc:g} ADC")
    _shade_hits(ax, record, hits, alpha=0.3)
    ax.set_xlabel("time since record start [ns]")
    ax.set_ylabel("amplitude above baseline [ADC]" if processed else "amplitude [ADC]")
    ax.set_title(title or f"channel {int(record['channel'])}, record at {t0} ns")
    ax.legend(loc="upper right", fontsize="small")
    return ax


def plot_area_spectrum(areas_adc_ns: np.ndarray, bins: int | np.ndarray = 100, ax: Any = None,
                       log: bool = True, label: str | None = None, title: str = "Area spectrum"):
    """Histogram of areas in ADC x ns (peaks, hits or events)."""
    ax = _axes(ax)
    areas = np.asarray(areas_adc_ns, dtype=float)
    areas = areas[np.isfinite(areas)]
    ax.hist(areas, bins=bins, histtype="step", label=label or f"{len(areas)} entries")
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("area [ADC x ns]")
    ax.set_ylabel("entries per bin")
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize="small")
    return ax


def plot_rate(times_ns: np.ndarray, bin_s: float = 0.01, ax: Any = None, label: str | None = None,
              title: str = "Rate over time"):
    """Rate in Hz of rows over the run, in bins of ``bin_s`` seconds."""
    ax = _axes(ax)
    t_s = np.asarray(times_ns, dtype=np.int64) / 1e9
    if len(t_s):
        edges = np.arange(0, t_s.max() + bin_s, bin_s)
        counts, edges = np.histogram(t_s, bins=edges)
        ax.stairs(counts / bin_s, edges, label=label)  # every bin drawn, also the last one
    ax.set_ylim(bottom=0)  # a rate axis starting above 0 exaggerates fluctuations
    ax.set_xlabel("time since run start [s]")
    ax.set_ylabel("rate [Hz]")
    ax.set_title(title)
    return ax


def plot_peak(peak: np.void, ax: Any = None):
    """A peak's summed waveform (needs ``data`` and ``dt`` fields of a peak row)."""
    ax = _axes(ax)
    n = int(peak["length"])
    dt = float(peak["dt"])
    t = np.arange(n) * dt
    ax.step(t, peak["data"][:n], where="post", color="k", lw=1)
    ax.set_xlabel("time since peak start [ns]")
    ax.set_ylabel("summed amplitude [ADC]")
    area = float(peak["area_adc_ns"]) if "area_adc_ns" in peak.dtype.names else float("nan")
    ax.set_title(f"peak at {int(peak['time'])} ns, area {area:.0f} ADC x ns")
    return ax


# --- raw waveforms, peak channels, events, channel rates -----------------------------------------


def _shade_hits(ax: Any, record: np.void, hits: np.ndarray | None, alpha: float) -> int:
    """Shade the hits found in ``record`` (same channel, same record start); returns how many."""
    if hits is None or not len(hits):
        return 0
    mine = hits[(hits["channel"] == record["channel"]) & (hits["record_time"] == record["time"])]
    dt = float(record["dt"])
    for i, hit in enumerate(mine):
        left = int(hit["left_sample"]) * dt
        ax.axvspan(left, left + int(hit["length"]) * dt, color="tab:orange", alpha=alpha,
                   label="hit" if i == 0 else None)
    return len(mine)


def plot_raw_record(raw_record: np.void, baseline_adc: float, threshold_adc: float | None = None,
                    hits: np.ndarray | None = None, baseline_samples: int | None = None,
                    polarity: str = "negative", ax: Any = None, title: str | None = None):
    """One raw record as the digitizer wrote it, with its baseline, threshold and hits.

    The view to tune hit finding with: the samples that make the baseline are shaded grey, the
    threshold is drawn at ``baseline -/+ threshold_adc`` (below the baseline for negative pulses),
    and hits found in this record are shaded orange.

    Parameters
    ----------
    raw_record : one row of raw records (``time``, ``length``, ``dt``, ``channel``, ``data``).
    baseline_adc : the record's baseline, ADC (``baseline_adc`` of the processed record).
    threshold_adc : threshold above the baseline, ADC (drawn dashed); None draws none.
    hits : hits of any records; those of this record (same channel, inside its time span) are shaded.
    baseline_samples : the first samples averaged into the baseline (shaded); None shades none.
    polarity : "negative" or "positive": the direction pulses leave the baseline in raw data.

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = _axes(ax)
    n = int(raw_record["length"])
    dt = float(raw_record["dt"])
    t0 = int(raw_record["time"])
    times_ns = np.arange(n) * dt
    sign = -1.0 if polarity == "negative" else 1.0
    if baseline_samples:
        ax.axvspan(0, min(int(baseline_samples), n) * dt, color="0.85", label=f"baseline: {int(baseline_samples)} samples")
    ax.step(times_ns, raw_record["data"][:n], where="post", color="k", lw=1, label="waveform")
    ax.axhline(baseline_adc, color="tab:blue", lw=0.8, label=f"baseline {baseline_adc:.1f} ADC")
    if threshold_adc is not None:
        ax.axhline(baseline_adc + sign * threshold_adc, color="tab:red", ls="--", lw=0.8,
                   label=f"threshold {threshold_adc:.3g} ADC")
    n_shown = _shade_hits(ax, raw_record, hits, alpha=0.35)
    ax.set_xlabel("time since record start [ns]")
    ax.set_ylabel("raw amplitude [ADC]")
    ax.set_title(title or f"channel {int(raw_record['channel'])}, record at {t0} ns: {n_shown} hit{'s' * (n_shown != 1)}")
    ax.legend(loc="lower right" if polarity == "negative" else "upper right", fontsize="small")
    return ax


def plot_peak_channels(peak: np.void, ax: Any = None, title: str | None = None):
    """Area per channel of one peak as bars (channels with no area are left out of the axis)."""
    ax = _axes(ax)
    areas = np.asarray(peak["area_per_channel_adc_ns"], dtype=float)
    channels = np.flatnonzero(areas != 0)
    positions = np.arange(len(channels))
    ax.bar(positions, areas[channels], color="tab:blue")
    ax.set_xticks(positions, [str(c) for c in channels])
    ax.set_xlabel("channel")
    ax.set_ylabel("area [ADC x ns]")
    total = float(areas.sum())
    ax.set_title(title or f"peak at {int(peak['time'])} ns: {total:.0f} ADC x ns in {len(channels)} channels")
    return ax


def plot_event(event: np.void, peaks: np.ndarray, ax: Any = None, title: str | None = None):
    """Event display: the summed waveform of every peak inside the event window on one time axis.

    Parameters
    ----------
    event : one row of ``events`` or ``event_basics`` (``time``, ``endtime``).
    peaks : rows of ``peaks`` (need ``time``, ``length``, ``dt``, ``data``, ``area_adc_ns``);
        those starting inside the window are drawn, the largest in black.

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = _axes(ax)
    t0, t1 = int(event["time"]), int(event["endtime"])
    inside = peaks[(peaks["time"] >= t0) & (peaks["time"] < t1)]
    largest = int(np.argmax(inside["area_adc_ns"])) if len(inside) else -1
    for i, peak in enumerate(inside):
        n = int(peak["length"])
        dt = float(peak["dt"])
        start = int(peak["time"]) - t0
        label = f"{float(peak['area_adc_ns']):.0f} ADC x ns"
        if n:
            ax.step(start + np.arange(n) * dt, peak["data"][:n], where="post", lw=1,
                    color="k" if i == largest else None, label=label)
        else:  # peaks built without records carry no waveform: mark where they are
            ax.axvline(start, color="k" if i == largest else "0.5", lw=1, label=label)
    ax.set_xlim(0, t1 - t0)
    ax.set_xlabel("time since event start [ns]")
    ax.set_ylabel("summed amplitude [ADC]")
    ax.set_title(title or f"event at {t0} ns: {len(inside)} peak{'s' * (len(inside) != 1)} in {t1 - t0} ns")
    if len(inside):
        ax.legend(loc="upper right", fontsize="small", title="peak area")
    return ax


def plot_channel_rates(rows: np.ndarray, duration_ns: float, channels: np.ndarray | None = None,
                       ax: Any = None, title: str = "Rate per channel"):
    """Rate in Hz of rows (records, hits ...) per channel over ``duration_ns``.

    ``channels`` lists the channels to show (default: those present), so that silent channels
    appear with rate 0.
    """
    ax = _axes(ax)
    present = np.asarray(rows["channel"], dtype=np.int64)
    shown = np.unique(present) if channels is None else np.asarray(channels, dtype=np.int64)
    counts = np.array([np.count_nonzero(present == c) for c in shown])
    rates_hz = counts / (float(duration_ns) / 1e9) if duration_ns > 0 else np.zeros(len(shown))
    ax.bar(np.arange(len(shown)), rates_hz, color="tab:blue")
    ax.set_xticks(np.arange(len(shown)), [str(c) for c in shown])
    ax.set_xlabel("channel")
    ax.set_ylabel("rate [Hz]")
    ax.set_title(title)
    return ax
