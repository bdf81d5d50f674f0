"""Hit finding: intervals of a processed record whose samples exceed a threshold.

A *run* is a stretch of consecutive samples strictly above the record's threshold.  Runs shorter
than ``min_consecutive_samples`` are ignored (white noise rarely gives several neighbouring
samples above threshold, pulses do).  Each kept run is extended by ``left_extension_samples``
before and ``right_extension_samples`` after it, clipped to the record; runs whose extended
intervals overlap become one hit, so no sample is counted in two hits.  Hits never cross record
boundaries; a hit whose above-threshold part touches the first or last valid sample has
``record_edge`` set (see :data:`wfa_notebook.dtypes.RECORD_EDGE_START`).

Times are whole ns: a hit starts at ``record_time + floor(left_sample * dt)``, which keeps every
hit inside its record for any ``dt`` (also the 1.333 ns of DRS4 boards).
"""
from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np

from .. import dtypes
from ..errors import WfaConfigError

__all__ = [
    "DEFAULT_LEFT_EXTENSION_SAMPLES",
    "DEFAULT_RIGHT_EXTENSION_SAMPLES",
    "find_hits",
    "sort_hits",
    "concatenate_hits",
]

#: Samples added before a hit: the rise of a pulse starts below threshold.
DEFAULT_LEFT_EXTENSION_SAMPLES = 5
#: Samples added after a hit, for the tail below threshold.  Measured in tests/test_accuracy.py:
#: for 40 ns decay pulses sampled at 4 ns, pulses of 5-20 x noise RMS at a 3-RMS threshold lose
#: 3.5 % of their area with 10 samples and under 1 % with 30 (about 4 decay times).
DEFAULT_RIGHT_EXTENSION_SAMPLES = 30

_RECORD_FIELDS = ("time", "length", "dt", "channel", "baseline_rms_adc", "data")


@numba.njit(nogil=True, cache=True)
def _sum_and_maximum(data, start, end):  # pragma: no cover - compiled
    """Sum of data[start:end] and index and value of its highest sample (end > start).

    When the highest value repeats on neighbouring samples (a flat top, or ADC rounding near the
    peak) the middle of that plateau is taken, rounding up: the first of two equal samples would
    put the maximum of a rounded 14-bit pulse more than a sample early.
    """
    total = 0.0
    height = data[start]
    first = start
    last = start
    for j in range(start, end):
        value = data[j]
        total += value
        if value > height:
            height = value
            first = j
            last = j
        elif value == height and last == j - 1:
            last = j
    return total, (first + last + 1) // 2, height


@numba.njit(nogil=True, cache=True)
def _edge_flags(first_above, last_above_end, length):  # pragma: no cover - compiled
    """record_edge bits of a hit whose above-threshold samples are [first_above, last_above_end)."""
    edge = 0
    if first_above == 0:
        edge |= dtypes.RECORD_EDGE_START
    if last_above_end == length:
        edge |= dtypes.RECORD_EDGE_END
    return edge


@numba.njit(nogil=True, cache=True)
def _store_hit(buffer, k, rec, start, end, edge, threshold):  # pragma: no cover - compiled
    """Write hit number ``k`` covering samples [start, end) of ``rec``."""
    data = rec["data"]
    area, i_max, height = _sum_and_maximum(data, start, end)
    dt = rec["dt"]
    hit = buffer[k]
    hit["time"] = rec["time"] + np.int64(np.floor(start * dt))
    hit["length"] = end - start
    hit["dt"] = dt
    hit["channel"] = rec["channel"]
    hit["time_max"] = rec["time"] + np.int64(np.floor(i_max * dt))
    hit["area_adc_ns"] = area * dt
    hit["height_adc"] = height
    hit["threshold_adc"] = threshold
    hit["record_time"] = rec["time"]
    hit["left_sample"] = start
    hit["record_edge"] = edge


@numba.njit(nogil=True, cache=True)
def _find_hits(
    records, threshold_adc, threshold_rms, left_extension, right_extension, min_samples, buffer,
    first_record,
):  # pragma: no cover - compiled
    """Fill ``buffer`` with hits of records[first_record:]; return (n_hits, next record).

    Stops early, before a record whose hits might not fit, so the caller can continue with a
    fresh buffer from the returned record index.
    """
    n_found = 0
    if len(records) == 0:
        return 0, 0
    n_samples = len(records[0]["data"])
    most_per_record = (n_samples + 1) // 2
    for i in range(first_record, len(records)):
        if n_found + most_per_record > len(buffer):
            return n_found, i
        rec = records[i]
        length = min(max(rec["length"], 0), n_samples)
        channel = rec["channel"]
        threshold = max(threshold_adc[channel], threshold_rms[channel] * rec["baseline_rms_adc"])
        level = np.float32(threshold)
        data = rec["data"]
        # branch-free test first: most records hold no hit, and this loop vectorises
        any_above = False
        for j in range(length):
            any_above |= data[j] > level
        if not any_above:
            continue
        start = -1  # extended interval [start, end) of the hit being built, -1: none yet
        end = -1
        first_above = -1
        last_above_end = -1
        j = 0
        while j < length:
            if data[j] > level:
                run_start = j
                j += 1
                while j < length and data[j] > level:
                    j += 1
                if j - run_start >= min_samples:
                    lo = max(run_start - left_extension, 0)
                    hi = min(j + right_extension, length)
                    if start >= 0 and lo < end:
                        end = hi
                        last_above_end = j
                    else:
                        if start >= 0:
                            edge = _edge_flags(first_above, last_above_end, length)
                            _store_hit(buffer, n_found, rec, start, end, edge, threshold)
                            n_found += 1
                        start, end, first_above, last_above_end = lo, hi, run_start, j
            # data[j] is at or below the threshold (or j == length): skip it
            j += 1
        if start >= 0:
            edge = _edge_flags(first_above, last_above_end, length)
            _store_hit(buffer, n_found, rec, start, end, edge, threshold)
            n_found += 1
    return n_found, len(records)


@numba.njit(nogil=True, cache=True)
def _is_sorted(times):  # pragma: no cover - compiled
    for i in range(1, len(times)):
        if times[i] < times[i - 1]:
            return False
    return True


@numba.njit(nogil=True, cache=True)
def _take(rows, order, out):  # pragma: no cover - compiled
    # numpy fancy indexing of a titled structured array is ~10x slower than this loop
    for i in range(len(order)):
        out[i] = rows[order[i]]


def sort_hits(hits: np.ndarray) -> np.ndarray:
    """Return ``hits`` sorted by time; equal times keep their order.

    Use it after concatenating hits found in blocks of records that were processed separately
    (hits of neighbouring blocks may interleave in time).

    Parameters
    ----------
    hits : np.ndarray
        Any structured array with an int64 ``time`` field.

    Returns
    -------
    np.ndarray
        ``hits`` itself when already sorted, else a sorted copy.
    """
    if _is_sorted(hits["time"]):
        return hits
    order = np.argsort(hits["time"], kind="stable")
    out = np.empty(len(hits), hits.dtype)
    _take(hits, order, out)
    return out


def concatenate_hits(parts: Sequence[np.ndarray]) -> np.ndarray:
    """Join hits found in separate blocks of records into one array sorted by time.

    Parameters
    ----------
    parts : sequence of np.ndarray
        Hit arrays of one dtype, e.g. the results of :func:`find_hits` on consecutive blocks of
        records processed in threads.

    Returns
    -------
    np.ndarray
        All hits, sorted by time (equal times keep the order of ``parts``).
    """
    parts = list(parts)
    if not parts:
        return np.zeros(0, dtypes.hit_dtype)
    dtype = parts[0].dtype
    if any(p.dtype != dtype for p in parts):
        msg = f"concatenate_hits: all parts must have one dtype; got {sorted({str(p.dtype) for p in parts})}."
        raise WfaConfigError(msg)
    # numpy copies many-field structured arrays field by field, ~20x slower than their bytes
    joined = np.concatenate([np.ascontiguousarray(p).view(np.uint8) for p in parts]).view(dtype)
    return sort_hits(joined)


def _per_channel_thresholds(
    threshold: float | Sequence[float] | np.ndarray | None, n_channels: int, name: str
) -> np.ndarray:
    """Turn a scalar or per-channel threshold into a float64 array of length ``n_channels``.

    ``None`` means 0 (no threshold of this kind).  Raises WfaConfigError naming ``name`` for
    negative or non-finite values or a per-channel array too short for the channels present.
    """
    if threshold is None:
        return np.zeros(n_channels)
    values = np.asarray(threshold, dtype=np.float64)
    if values.ndim == 0:
        values = np.full(n_channels, float(values))
    elif values.ndim != 1:
        msg = (
            f"find_hits: {name} must be a number or a 1-d array indexed by channel; got shape "
            f"{values.shape}."
        )
        raise WfaConfigError(msg)
    elif len(values) < n_channels:
        msg = (
            f"find_hits: {name} has {len(values)} per-channel values but the records contain "
            f"channel {n_channels - 1}; give at least {n_channels} values (index = channel)."
        )
        raise WfaConfigError(msg)
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        msg = f"find_hits: {name} must be finite and >= 0 (amount above the baseline); got {threshold!r}."
        raise WfaConfigError(msg)
    return values


def _initial_capacity(n_records: int, n_samples: int) -> int:
    """Rows of the first result buffer; it must hold the most hits one record can have."""
    # one hit per record fits most data; the buffer is np.empty, so unused rows cost no memory
    return n_records + (n_samples + 1) // 2 + 64


def _check_records(records: np.ndarray) -> None:
    """Raise WfaConfigError unless ``records`` look like processed records."""
    if not isinstance(records, np.ndarray) or records.dtype.names is None:
        msg = (
            f"find_hits: records must be a structured array of dtypes.record_dtype(...); got "
            f"{type(records).__name__}."
        )
        raise WfaConfigError(msg)
    missing = [f for f in _RECORD_FIELDS if f not in records.dtype.names]
    if missing:
        hint = " Run processing.baseline(raw_records) first." if "baseline_rms_adc" in missing else ""
        msg = f"find_hits: records lack the fields {missing}; got {list(records.dtype.names)}.{hint}"
        raise WfaConfigError(msg)
    data = records.dtype["data"]
    if data.base != np.float32 or data.ndim != 1:
        msg = f"find_hits: records['data'] must be float32 samples (record_dtype); got {data}."
        raise WfaConfigError(msg)


def _check_count(value: int, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        msg = f"find_hits: {name} must be a whole number of samples >= {minimum}; got {value!r}."
        raise WfaConfigError(msg)
    return int(value)


def find_hits(
    records: np.ndarray,
    threshold_adc: float | Sequence[float] | np.ndarray | None = None,
    threshold_rms: float | Sequence[float] | np.ndarray | None = None,
    left_extension_samples: int = DEFAULT_LEFT_EXTENSION_SAMPLES,
    right_extension_samples: int = DEFAULT_RIGHT_EXTENSION_SAMPLES,
    min_consecutive_samples: int = 1,
) -> np.ndarray:
    """Find hits (intervals above threshold) in baseline-subtracted records.

    Parameters
    ----------
    records : np.ndarray
        Records of :func:`wfa_notebook.dtypes.record_dtype` (output of
        :func:`~wfa_notebook.processing.baseline`), pulses positive.
    threshold_adc : float or array, optional
        Threshold above the baseline in ADC counts, one number or one per channel (index =
        channel number).
    threshold_rms : float or array, optional
        Threshold in units of each record's ``baseline_rms_adc``, one number or one per channel.
        When both thresholds are given the larger one applies, record by record.  At least one
        is required.
    left_extension_samples, right_extension_samples : int
        Samples added before the first and after the last sample above threshold (clipped to the
        record), so the area includes the rise and the tail of the pulse.
    min_consecutive_samples : int
        Runs of fewer consecutive samples above threshold are ignored.  1 accepts any sample
        above threshold; 3 rejects almost all white-noise excursions at a threshold of 3 RMS.

    Returns
    -------
    np.ndarray
        Hits of :data:`wfa_notebook.dtypes.hit_dtype` sorted by time: ``time``/``time_max`` in
        ns since run start, ``length`` in samples, ``area_adc_ns`` (sum of samples x dt),
        ``height_adc``, the applied ``threshold_adc``, and where the hit sits in its record.

    Raises
    ------
    WfaConfigError
        When no threshold is given, a threshold is negative or a per-channel array is too short,
        an extension is negative, or the records lack the processed-record fields.

    Examples
    --------
    >>> hits = find_hits(records, threshold_adc=15, left_extension_samples=3)
    >>> hits = find_hits(records, threshold_rms=5, min_consecutive_samples=2)
    """
    _check_records(records)
    if threshold_adc is None and threshold_rms is None:
        msg = (
            "find_hits: give threshold_adc (ADC above baseline) or threshold_rms (x baseline "
            "RMS), or both."
        )
        raise WfaConfigError(msg)
    left = _check_count(left_extension_samples, "left_extension_samples", 0)
    right = _check_count(right_extension_samples, "right_extension_samples", 0)
    min_samples = _check_count(min_consecutive_samples, "min_consecutive_samples", 1)
    if len(records) == 0:
        return np.zeros(0, dtypes.hit_dtype)
    channels = records["channel"]
    lowest, highest = int(channels.min()), int(channels.max())
    if lowest < 0:
        msg = f"find_hits: channel numbers must be >= 0; found channel {lowest}."
        raise WfaConfigError(msg)
    adc = _per_channel_thresholds(threshold_adc, highest + 1, "threshold_adc")
    rms = _per_channel_thresholds(threshold_rms, highest + 1, "threshold_rms")
    records = np.ascontiguousarray(records)

    capacity = _initial_capacity(len(records), records.dtype["data"].shape[0])
    parts = []
    first = 0
    while True:
        buffer = np.empty(capacity, dtypes.hit_dtype)
        n_found, first = _find_hits(records, adc, rms, left, right, min_samples, buffer, first)
        parts.append(buffer[:n_found])
        if first >= len(records):
            break
        capacity *= 2
    if len(parts) > 1:
        return concatenate_hits(parts)
    hits = sort_hits(parts[0])
    if hits is parts[0]:
        # a slice would keep the whole (mostly unused) buffer alive; numpy copies many-field
        # structured arrays field by field, ~20x slower than copying the bytes
        hits = hits.view(np.uint8).copy().view(dtypes.hit_dtype)
    return hits
