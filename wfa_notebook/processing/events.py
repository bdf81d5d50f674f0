"""Event building: time windows around large peaks, and a summary of the peaks in each window.

Every peak with at least ``trigger_min_area_adc_ns`` (and ``trigger_min_channels``) opens a window
``[time - left_extension_ns, endtime + right_extension_ns)``. Overlapping windows are merged, and
a window is stretched to the end of every peak that starts inside it, so an event fully contains
its peaks (stretching may merge it with the next window). Windows are clipped to ``[start, end)``,
the interval of the data at hand.
"""
from __future__ import annotations

import numba
import numpy as np

from .. import dtypes
from ..errors import WfaChunkError, WfaConfigError
from ._checks import check_sorted, require_fields

__all__ = [
    "DEFAULT_TRIGGER_MIN_AREA_ADC_NS",
    "DEFAULT_EVENT_LEFT_EXTENSION_NS",
    "DEFAULT_EVENT_RIGHT_EXTENSION_NS",
    "find_events",
    "event_basics",
]

#: About ten photoelectrons of a typical PMT read out at 1.333 ns per sample.
DEFAULT_TRIGGER_MIN_AREA_ADC_NS = 100.0
#: Look back far enough for a small earlier pulse (an S1 before its S2) in a DRS4 window.
DEFAULT_EVENT_LEFT_EXTENSION_NS = 500
#: Look ahead far enough for afterpulses and delayed light in a 1024-sample DRS4 window.
DEFAULT_EVENT_RIGHT_EXTENSION_NS = 500

_INT64_MIN = np.iinfo(np.int64).min
_INT64_MAX = np.iinfo(np.int64).max


# --- kernels -------------------------------------------------------------------------------------


@numba.njit(nogil=True, cache=True)
def _find_events(peak_time, peak_end, is_trigger, left_ns, right_ns, start, end):  # pragma: no cover - compiled
    """Merged, stretched and clipped windows around trigger peaks, with peak counts."""
    n = len(peak_time)
    triggers = np.flatnonzero(is_trigger)
    n_triggers = len(triggers)
    event_time = np.empty(n_triggers, np.int64)
    event_end = np.empty(n_triggers, np.int64)
    n_peaks = np.zeros(n_triggers, np.int32)
    n_trigger_peaks = np.zeros(n_triggers, np.int32)
    n_events = 0
    i = 0  # next peak not yet assigned or skipped
    k = 0  # next trigger whose window is not yet part of an event
    while k < n_triggers:
        t = triggers[k]
        window_start = peak_time[t] - left_ns
        window_end = peak_end[t] + right_ns
        k += 1
        # peaks between the previous event and this window belong to no event
        while i < n and peak_time[i] < window_start:
            i += 1
        count = 0
        count_triggers = 0
        while True:
            while i < n and peak_time[i] < window_end:
                window_end = max(window_end, peak_end[i])
                count += 1
                count_triggers += is_trigger[i]
                i += 1
            if k < n_triggers and peak_time[triggers[k]] - left_ns < window_end:
                window_end = max(window_end, peak_end[triggers[k]] + right_ns)
                k += 1
            else:
                break
        event_time[n_events] = max(window_start, start)
        event_end[n_events] = min(window_end, end)
        n_peaks[n_events] = count
        n_trigger_peaks[n_events] = count_triggers
        n_events += 1
    return (
        event_time[:n_events], event_end[:n_events], n_peaks[:n_events],
        n_trigger_peaks[:n_events],
    )  # fmt: skip


@numba.njit(nogil=True, cache=True)
def _rank_peaks_in_events(event_time, event_end, peak_time, peak_area):  # pragma: no cover - compiled
    """Per event: number of peaks starting inside, their total area, largest and second largest."""
    n_events = len(event_time)
    n = len(peak_time)
    n_peaks = np.zeros(n_events, np.int32)
    total = np.zeros(n_events, np.float64)
    largest = np.full(n_events, -1, np.int64)
    second = np.full(n_events, -1, np.int64)
    j = 0
    for e in range(n_events):
        while j < n and peak_time[j] < event_time[e]:
            j += 1
        while j < n and peak_time[j] < event_end[e]:
            n_peaks[e] += 1
            total[e] += peak_area[j]
            # strict comparisons: among equal areas the earlier peak ranks higher
            if largest[e] < 0 or peak_area[j] > peak_area[largest[e]]:
                second[e] = largest[e]
                largest[e] = j
            elif second[e] < 0 or peak_area[j] > peak_area[second[e]]:
                second[e] = j
            j += 1
    return n_peaks, total, largest, second


# --- public wrappers -----------------------------------------------------------------------------


_FIELDS_HINT = "pass the output of find_peaks or peak_basics"


def find_events(
    peaks: np.ndarray,
    trigger_min_area_adc_ns: float = DEFAULT_TRIGGER_MIN_AREA_ADC_NS,
    left_extension_ns: int = DEFAULT_EVENT_LEFT_EXTENSION_NS,
    right_extension_ns: int = DEFAULT_EVENT_RIGHT_EXTENSION_NS,
    trigger_min_channels: int = 1,
    start: int = 0,
    end: int | None = None,
) -> np.ndarray:
    """Build events: windows around trigger peaks, merged where they overlap.

    Parameters
    ----------
    peaks : np.ndarray
        Peaks or peak basics sorted by time (fields time, endtime, area_adc_ns, n_channels).
    trigger_min_area_adc_ns : float
        A peak with at least this area (ADC x ns) triggers an event.
    left_extension_ns, right_extension_ns : int
        The window of a trigger peak is ``[time - left_extension_ns, endtime + right_extension_ns)``.
    trigger_min_channels : int
        A trigger peak also needs hits in at least this many channels.
    start, end : int
        Interval of the data, ns; windows are clipped to it (``end=None``: no upper clip). The
        default ``start=0`` keeps windows after the start of the run.

    Returns
    -------
    np.ndarray
        Events of ``dtypes.event_dtype``, sorted by time, not overlapping. Each event contains
        every peak that starts inside it completely, and at least one trigger peak.

    Raises
    ------
    WfaConfigError
        For missing fields or negative extensions.
    WfaChunkError
        If peaks are not sorted or lie outside ``[start, end)``.
    """
    owner = "find_events"
    require_fields(peaks, ("time", "endtime", "area_adc_ns", "n_channels"), "peaks", owner, _FIELDS_HINT)
    left_ns, right_ns = int(left_extension_ns), int(right_extension_ns)
    if left_ns < 0 or right_ns < 0:
        msg = (
            f"{owner}: left_extension_ns and right_extension_ns must be >= 0 ns; got "
            f"{left_extension_ns} and {right_extension_ns}."
        )
        raise WfaConfigError(msg)
    lo = _INT64_MIN if start is None else int(start)
    hi = _INT64_MAX if end is None else int(end)
    if len(peaks) == 0:
        return np.zeros(0, dtypes.event_dtype)
    peak_time = peaks["time"].astype(np.int64)
    peak_end = peaks["endtime"].astype(np.int64)
    check_sorted(peak_time, "peaks", owner)
    if peak_time[0] < lo or peak_end.max() > hi:
        msg = (
            f"{owner}: peaks span [{peak_time[0]}, {peak_end.max()}) ns, outside the interval "
            f"[{start}, {end}) given as start/end. Pass the bounds of the chunk the peaks came from."
        )
        raise WfaChunkError(msg)
    is_trigger = (peaks["area_adc_ns"] >= trigger_min_area_adc_ns) & (
        peaks["n_channels"] >= trigger_min_channels
    )
    time, end_ns, n_peaks, n_triggers = _find_events(
        peak_time, peak_end, is_trigger.astype(np.int32), left_ns, right_ns, lo, hi
    )
    events = np.zeros(len(time), dtypes.event_dtype)
    events["time"] = time
    events["endtime"] = end_ns
    events["n_peaks"] = n_peaks
    events["n_trigger_peaks"] = n_triggers
    return events


def event_basics(events: np.ndarray, peaks: np.ndarray) -> np.ndarray:
    """Summarise each event by its largest and second-largest peak (by area).

    Parameters
    ----------
    events : np.ndarray
        Output of :func:`find_events`.
    peaks : np.ndarray
        Peaks or peak basics sorted by time; a peak belongs to the event it starts in.

    Returns
    -------
    np.ndarray
        Rows of ``dtypes.event_basics_dtype``, one per event. ``time_between_largest_ns`` is the
        time of maximum of the second-largest peak minus that of the largest: negative when the
        smaller peak comes first, like a scintillation pulse before its larger delayed signal.
    """
    owner = "event_basics"
    require_fields(events, ("time", "endtime"), "events", owner, _FIELDS_HINT)
    require_fields(
        peaks, ("time", "area_adc_ns", "time_max", "width_ns", "n_channels"), "peaks", owner, _FIELDS_HINT
    )
    check_sorted(events["time"], "events", owner)
    check_sorted(peaks["time"], "peaks", owner)
    out = np.zeros(len(events), dtypes.event_basics_dtype)
    out["time"] = events["time"]
    out["endtime"] = events["endtime"]
    n_peaks, total, largest, second = _rank_peaks_in_events(
        events["time"].astype(np.int64), events["endtime"].astype(np.int64),
        peaks["time"].astype(np.int64), peaks["area_adc_ns"].astype(np.float64),
    )  # fmt: skip
    out["n_peaks"] = n_peaks
    out["area_adc_ns"] = total
    for prefix, index in (("largest_peak", largest), ("second_peak", second)):
        found = index >= 0
        rows = index[found]
        # field by field: fancy indexing whole rows of a titled structured array is much slower
        for field, missing in (("area_adc_ns", np.nan), ("width_ns", np.nan), ("time", -1),
                               ("time_max", -1), ("n_channels", 0)):
            column = out[f"{prefix}_{field}"]
            column[:] = missing
            column[found] = peaks[field][rows]
    both = second >= 0
    out["time_between_largest_ns"][both] = (
        out["second_peak_time_max"][both] - out["largest_peak_time_max"][both]
    )
    return out
