"""Pulse shape of each hit: area, height, width at half height and 10-90 % rise time, in ns.

Area and height are taken over the hit's samples.  The width and rise time are measured from the
highest sample outwards through the whole record, so they are not limited by the hit's
extensions: a crossing of a level is interpolated linearly between the last sample below and the
first sample at or above it.  When the record ends before the pulse crosses a level the value is
NaN: a cut pulse has no honest width.
"""
from __future__ import annotations

import numba
import numpy as np

from .. import dtypes
from ._checks import require_fields
from ._records import record_index
from .hits import _sum_and_maximum

__all__ = ["pulse_properties"]

_HIT_FIELDS = ("time", "length", "dt", "channel", "record_time", "left_sample")
_RECORD_FIELDS = ("time", "length", "channel", "data")


@numba.njit(nogil=True, cache=True)
def _crossing_before(data, i_max, level):  # pragma: no cover - compiled
    """Fractional sample index where data rises through ``level`` before i_max, or NaN."""
    j = i_max
    while j > 0 and data[j - 1] >= level:
        j -= 1
    if j == 0:
        return np.nan
    below, above = data[j - 1], data[j]
    return j - 1 + (level - below) / (above - below)


@numba.njit(nogil=True, cache=True)
def _crossing_after(data, i_max, length, level):  # pragma: no cover - compiled
    """Fractional sample index where data falls through ``level`` after i_max, or NaN."""
    j = i_max
    while j < length - 1 and data[j + 1] >= level:
        j += 1
    if j == length - 1:
        return np.nan
    above, below = data[j], data[j + 1]
    return j + (above - level) / (above - below)


@numba.njit(nogil=True, cache=True)
def _pulse_properties(hits, records, record_index, out):  # pragma: no cover - compiled
    n_samples = len(records[0]["data"]) if len(records) else 0
    for i in range(len(hits)):
        hit = hits[i]
        rec = records[record_index[i]]
        data = rec["data"]
        length = min(max(rec["length"], 0), n_samples)
        start = min(max(hit["left_sample"], 0), length)
        end = min(start + max(hit["length"], 0), length)
        dt = hit["dt"]
        res = out[i]
        res["time"] = hit["time"]
        res["length"] = hit["length"]
        res["dt"] = dt
        res["channel"] = hit["channel"]
        if end <= start:
            res["time_max"] = hit["time"]
            res["area_adc_ns"] = 0.0
            res["height_adc"] = 0.0
            res["width_50_ns"] = np.nan
            res["rise_time_10_90_ns"] = np.nan
            continue
        area, i_max, height = _sum_and_maximum(data, start, end)
        res["time_max"] = rec["time"] + np.int64(np.floor(i_max * dt))
        res["area_adc_ns"] = area * dt
        res["height_adc"] = height
        if height <= 0:
            res["width_50_ns"] = np.nan
            res["rise_time_10_90_ns"] = np.nan
            continue
        half = np.float32(0.5) * height
        left = _crossing_before(data, i_max, half)
        right = _crossing_after(data, i_max, length, half)
        res["width_50_ns"] = (right - left) * dt
        t10 = _crossing_before(data, i_max, np.float32(0.1) * height)
        t90 = _crossing_before(data, i_max, np.float32(0.9) * height)
        res["rise_time_10_90_ns"] = (t90 - t10) * dt


def pulse_properties(hits: np.ndarray, records: np.ndarray) -> np.ndarray:
    """Area, height, width at 50 % and 10-90 % rise time of each hit, from its record's samples.

    Parameters
    ----------
    hits : np.ndarray
        Hits of :data:`wfa_notebook.dtypes.hit_dtype` (from :func:`find_hits`).
    records : np.ndarray
        The processed records the hits were found in (or more, in any order).  Each hit is
        matched to the record with its ``record_time`` and ``channel``.

    Returns
    -------
    np.ndarray
        One row of :data:`wfa_notebook.dtypes.pulse_dtype` per hit, in the order of ``hits``:
        ``area_adc_ns`` and ``height_adc`` over the hit's samples, ``time_max`` (ns),
        ``width_50_ns`` (full width at half height) and ``rise_time_10_90_ns``, both NaN when
        the record ends before the pulse crosses the level.

    Raises
    ------
    WfaConfigError
        When a field is missing.
    WfaChunkError
        When a hit's record is not among ``records``.

    Examples
    --------
    >>> shapes = pulse_properties(find_hits(records, threshold_adc=15), records)
    >>> shapes["width_50_ns"].mean()
    """
    hint = "pass the output of find_hits and baseline"
    require_fields(hits, _HIT_FIELDS, "hits", "pulse_properties", hint)
    require_fields(records, _RECORD_FIELDS, "records", "pulse_properties", hint)
    out = np.zeros(len(hits), dtypes.pulse_dtype)
    if len(hits) == 0:
        return out
    record_time = records["time"]
    if not np.all(record_time[1:] >= record_time[:-1]):
        # matching uses binary search on time
        order = np.argsort(record_time, kind="stable")
        records = records[order]
        record_time = records["time"]
    index = record_index(hits, records, "pulse_properties")
    _pulse_properties(np.ascontiguousarray(hits), np.ascontiguousarray(records), index, out)
    return out
