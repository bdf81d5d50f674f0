"""Baseline subtraction: raw digitizer records to processed records with positive pulses.

The baseline of a record is the mean of its first ``baseline_samples`` samples and its RMS is the
standard deviation of those samples.  A record shorter than ``baseline_samples`` uses all of its
samples; a record of length 0 gets baseline 0, RMS 0 and stays all zeros.  Each record is treated
on its own, so the result does not depend on how records are grouped into chunks.
"""
from __future__ import annotations

import numba
import numpy as np

from .. import dtypes
from ..errors import WfaConfigError

__all__ = ["POLARITIES", "DEFAULT_BASELINE_SAMPLES", "baseline"]

#: Allowed values of ``polarity``: the direction in which pulses leave the baseline in raw data.
POLARITIES = ("negative", "positive")
#: Samples averaged for the baseline; strax uses the same number for 100-sample PMT records.
DEFAULT_BASELINE_SAMPLES = 40

#: Fields copied unchanged from raw to processed records.
_COPIED_FIELDS = ("time", "length", "dt", "channel", "event_number")


@numba.njit(nogil=True, cache=True, fastmath={"reassoc"})
def _mean_and_rms(samples, n):  # pragma: no cover - compiled
    """Mean and RMS of samples[:n] (n >= 1), accumulated in float64.

    Reassociation lets the sums vectorise; for integer samples the float64 sums are exact anyway.
    """
    total = 0.0
    for j in range(n):
        total += np.float64(samples[j])
    mean = total / n
    squares = 0.0
    for j in range(n):
        deviation = np.float64(samples[j]) - mean
        squares += deviation * deviation
    return mean, np.sqrt(squares / n)


@numba.njit(nogil=True, cache=True)
def _baseline(raw_records, out, baseline_samples, negative):  # pragma: no cover - compiled
    """Fill ``out`` (record_dtype, same length) from ``raw_records``."""
    if len(out) == 0:
        return
    n_samples = len(out[0]["data"])
    for i in range(len(raw_records)):
        raw = raw_records[i]
        rec = out[i]
        # never trust length for indexing: clamp to the array
        length = min(max(raw["length"], 0), n_samples)
        n_base = min(baseline_samples, length)
        samples = raw["data"]
        if n_base > 0:
            mean, rms = _mean_and_rms(samples, n_base)
        else:
            mean, rms = 0.0, 0.0
        rec["time"] = raw["time"]
        rec["length"] = raw["length"]
        rec["dt"] = raw["dt"]
        rec["channel"] = raw["channel"]
        rec["event_number"] = raw["event_number"]
        rec["baseline_adc"] = mean
        rec["baseline_rms_adc"] = rms
        data = rec["data"]
        # float32 arithmetic keeps the loop as wide as the int16 input; the rounding of the
        # baseline to float32 is below 1e-3 ADC for 14-bit data
        base = np.float32(mean)
        if negative:
            for j in range(length):
                data[j] = base - np.float32(samples[j])
        else:
            for j in range(length):
                data[j] = np.float32(samples[j]) - base
        for j in range(length, n_samples):
            data[j] = 0


def _check_raw_records(raw_records: np.ndarray) -> int:
    """Validate the input of :func:`baseline`; return the number of samples per record."""
    if not isinstance(raw_records, np.ndarray) or raw_records.dtype.names is None:
        msg = (
            f"baseline: raw_records must be a numpy structured array of "
            f"dtypes.raw_record_dtype(...); got {type(raw_records).__name__}."
        )
        raise WfaConfigError(msg)
    names = raw_records.dtype.names
    missing = [f for f in (*_COPIED_FIELDS, "data") if f not in names]
    if missing:
        msg = (
            f"baseline: raw_records lacks the fields {missing}; expected the fields of "
            f"dtypes.raw_record_dtype() ({list(dtypes.raw_record_dtype().names)}), got {list(names)}."
        )
        raise WfaConfigError(msg)
    data_type = raw_records.dtype["data"]
    if data_type.ndim != 1 or data_type.base.kind not in "iuf":
        msg = (
            f"baseline: raw_records['data'] must hold one row of integer or float samples per "
            f"record (uint16, int16 or float32); got {data_type}."
        )
        raise WfaConfigError(msg)
    n_samples = int(data_type.shape[0])
    if len(raw_records):
        lengths = raw_records["length"]
        low, high = int(lengths.min()), int(lengths.max())
        if low < 0 or high > n_samples:
            bad = int(np.flatnonzero((lengths < 0) | (lengths > n_samples))[0])
            msg = (
                f"baseline: record {bad} (channel {int(raw_records['channel'][bad])}, time "
                f"{int(raw_records['time'][bad])} ns) has length {int(lengths[bad])}; expected "
                f"0 <= length <= {n_samples} (the size of the data field). Check the reader."
            )
            raise WfaConfigError(msg)
    return n_samples


def baseline(
    raw_records: np.ndarray,
    baseline_samples: int = DEFAULT_BASELINE_SAMPLES,
    polarity: str = "negative",
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Subtract the per-record baseline and flip negative pulses; the input is left untouched.

    Parameters
    ----------
    raw_records : np.ndarray
        Structured array of :func:`wfa_notebook.dtypes.raw_record_dtype` (uint16, int16 or
        float32 samples; only the first ``length`` samples of each record are used).
    baseline_samples : int
        Number of samples at the start of each record whose mean is the baseline and whose
        standard deviation is stored as ``baseline_rms_adc``.  Records shorter than this use all
        their samples; records of length 0 get baseline 0 and RMS 0.
    polarity : {"negative", "positive"}
        Direction of the pulses in the raw samples.  Processed records always have positive
        pulses: ``data = baseline - raw`` for negative, ``raw - baseline`` for positive pulses.
    out : np.ndarray, optional
        Array of ``record_dtype(n_samples)`` with ``len(raw_records)`` rows to fill (lets
        threads fill slices of one array); a new array is made when omitted.

    Returns
    -------
    np.ndarray
        Records of :func:`wfa_notebook.dtypes.record_dtype` with the same ``n_samples``:
        float32 samples in ADC above the baseline, zero beyond ``length``.

    Raises
    ------
    WfaConfigError
        For an unknown polarity, ``baseline_samples < 1``, a record length outside
        ``[0, n_samples]`` or an array without the raw record fields.

    Examples
    --------
    >>> records = baseline(raw_records, baseline_samples=40, polarity="negative")
    >>> records["data"][0, :records["length"][0]].max()   # pulse height, ADC
    """
    n_samples = _check_raw_records(raw_records)
    if polarity not in POLARITIES:
        msg = f"baseline: polarity must be one of {list(POLARITIES)}; got {polarity!r}."
        raise WfaConfigError(msg)
    whole = isinstance(baseline_samples, (int, np.integer)) and not isinstance(baseline_samples, bool)
    if not whole or baseline_samples < 1:
        msg = (
            f"baseline: baseline_samples must be a whole number of samples >= 1; got "
            f"{baseline_samples!r}. {DEFAULT_BASELINE_SAMPLES} is a common choice."
        )
        raise WfaConfigError(msg)
    wanted = dtypes.record_dtype(n_samples)
    if out is None:
        out = np.empty(len(raw_records), wanted)
    elif not isinstance(out, np.ndarray) or out.dtype != wanted or out.shape != raw_records.shape:
        got = f"{out.dtype} x {out.shape}" if isinstance(out, np.ndarray) else type(out).__name__
        msg = (
            f"baseline: out must be an array of dtypes.record_dtype({n_samples}) with shape "
            f"{raw_records.shape}; got {got}."
        )
        raise WfaConfigError(msg)
    if len(raw_records):
        _baseline(
            np.ascontiguousarray(raw_records), out, int(baseline_samples), polarity == "negative"
        )
    return out
