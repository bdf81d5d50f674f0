"""Peak finding: cluster the hits of all channels that are close in time and sum their waveforms.

A peak is a run of hits (all channels together, in time order) in which each hit starts less than
``gap_ns`` after the end of every earlier hit of the peak.  Its area is the sum of the hit areas;
when the records are given, the samples of its hits are summed into one waveform of at most
``n_samples`` bins, from which height, time of maximum, 50 % area width and rise time are taken.
Without records the width and rise time come from the hits alone, each hit's area spread evenly
over its duration.
"""
from __future__ import annotations

import numba
import numpy as np

from .. import dtypes
from ..errors import WfaConfigError
from ._checks import check_sorted, require_fields
from ._records import record_index

__all__ = [
    "DEFAULT_PEAK_GAP_NS",
    "DEFAULT_N_CHANNELS",
    "DEFAULT_PEAK_WAVEFORM_SAMPLES",
    "find_peaks",
    "peak_basics",
]

#: Hits further apart than this start a new peak. Fast PMT/SiPM pulses digitised at 0.2-4 ns last
#: some tens of ns; 50 ns keeps the samples of one pulse together and separates distinct pulses.
DEFAULT_PEAK_GAP_NS = 50
#: Size of ``area_per_channel_adc_ns``: channel numbers of up to eight 16-channel boards.
DEFAULT_N_CHANNELS = 128
#: Bins of the summed waveform: a 1024-sample DRS4 record needs downsampling by 6 at most.
DEFAULT_PEAK_WAVEFORM_SAMPLES = 200

_HIT_FIELDS = ("time", "length", "dt", "channel", "area_adc_ns", "height_adc", "time_max")
_RECORD_FIELDS = ("time", "length", "dt", "channel", "data")


# --- kernels -------------------------------------------------------------------------------------


@numba.njit(nogil=True, cache=True)
def _cluster_hits(time, end, gap_ns):  # pragma: no cover - compiled
    """Index of the first hit of each peak, plus len(time) at the end."""
    n = len(time)
    bounds = np.empty(n + 1, np.int64)
    bounds[0] = 0
    if n == 0:
        return bounds[:1]
    n_peaks = 1
    # the gap counts from the latest end so far: a long hit keeps later short ones in its peak
    latest_end = end[0]
    for i in range(1, n):
        if time[i] - latest_end >= gap_ns:
            bounds[n_peaks] = i
            n_peaks += 1
            latest_end = end[i]
        elif end[i] > latest_end:
            latest_end = end[i]
    bounds[n_peaks] = n
    return bounds[: n_peaks + 1]


@numba.njit(nogil=True, cache=True)
def _area_position(waveform, length, fraction, bin_ns):  # pragma: no cover - compiled
    """Position (ns from the first bin) where the cumulative area reaches ``fraction`` of the total."""
    total = 0.0
    for k in range(length):
        total += waveform[k]
    if not total > 0:
        return np.nan
    target = fraction * total
    cumulative = 0.0
    for k in range(length):
        if waveform[k] > 0 and cumulative + waveform[k] >= target:
            # the area is taken as evenly spread within a bin
            return (k + (target - cumulative) / waveform[k]) * bin_ns
        cumulative += waveform[k]
    return length * bin_ns


@numba.njit(nogil=True, cache=True)
def _build_peaks(
    bounds,
    hit_time,
    hit_end,
    hit_dt,
    hit_length,
    hit_channel,
    hit_area,
    hit_height,
    hit_time_max,
    hit_left_sample,
    hit_record,
    record_time,
    record_length,
    record_dt,
    record_data,
    use_records,
    time,
    end,
    area,
    height,
    time_max,
    width,
    rise_time,
    n_hits,
    n_channels_hit,
    area_per_channel,
    length,
    bin_dt,
    data,
):  # pragma: no cover - compiled
    """Fill the output fields (views into the zeroed peak array) from each cluster of hits."""
    n_peaks = len(bounds) - 1
    n_channels = area_per_channel.shape[1]
    n_samples = data.shape[1]
    # area per bin, ADC x ns; float64 so that long sums of float32 samples keep their precision
    waveform = np.zeros(n_samples, np.float64)
    channel_area = np.zeros(n_channels, np.float64)
    channel_seen = np.zeros(n_channels, np.bool_)
    n_record_samples = record_data.shape[1]

    for p in range(n_peaks):
        first, stop = bounds[p], bounds[p + 1]
        t0 = hit_time[first]
        t1 = hit_end[first]
        base_dt = hit_dt[first]
        total = 0.0
        for h in range(first, stop):
            t1 = max(t1, hit_end[h])
            base_dt = min(base_dt, hit_dt[h])
            total += hit_area[h]
            channel_area[hit_channel[h]] += hit_area[h]
            channel_seen[hit_channel[h]] = True
        count = 0
        for h in range(first, stop):
            c = hit_channel[h]
            if channel_seen[c]:
                count += 1
                area_per_channel[p, c] = channel_area[c]
                channel_seen[c] = False
                channel_area[c] = 0.0
        time[p] = t0
        end[p] = t1
        area[p] = total
        n_hits[p] = stop - first
        n_channels_hit[p] = count
        waveform[:] = 0.0

        if use_records:
            # Bins are anchored at the exact (float) time of the earliest hit sample and samples go
            # to the nearest point of the finest sample grid: hit times are whole ns, samples not.
            anchor = np.inf
            for h in range(first, stop):
                r = hit_record[h]
                anchor = min(anchor, record_time[r] + hit_left_sample[h] * record_dt[r])
            n_base = 1
            for h in range(first, stop):
                r = hit_record[h]
                # samples a hit claims beyond the end of its record are never read
                last = min(hit_left_sample[h] + hit_length[h], record_length[r], n_record_samples) - 1
                offset = record_time[r] + last * record_dt[r] - anchor
                n_base = max(n_base, int(np.round(offset / base_dt)) + 1)
            factor = (n_base + n_samples - 1) // n_samples
            n_bins = (n_base + factor - 1) // factor
            bin_ns = base_dt * factor
            for h in range(first, stop):
                r = hit_record[h]
                sample_dt = record_dt[r]
                lo = max(hit_left_sample[h], 0)
                hi = min(hit_left_sample[h] + hit_length[h], record_length[r], n_record_samples)
                for j in range(lo, hi):
                    offset = record_time[r] + j * sample_dt - anchor
                    k = int(np.round(offset / base_dt)) // factor
                    k = min(max(k, 0), n_bins - 1)
                    waveform[k] += record_data[r, j] * sample_dt
            k_max = 0
            for k in range(n_bins):
                data[p, k] = waveform[k] / bin_ns
                if waveform[k] > waveform[k_max]:
                    k_max = k
            length[p] = n_bins
            height[p] = waveform[k_max] / bin_ns
            # centre of the highest bin, on the finest sample grid
            t_max = anchor + (k_max * factor + (factor - 1) / 2.0) * base_dt
            time_max[p] = min(max(np.int64(np.round(t_max)), t0), t1 - 1)
        else:
            duration = t1 - t0
            n_base = max(1, int(np.ceil(duration / base_dt)))
            factor = (n_base + n_samples - 1) // n_samples
            bin_ns = base_dt * factor
            n_bins = min(n_samples, max(1, int(np.ceil(duration / bin_ns))))
            highest = first
            for h in range(first, stop):
                if hit_height[h] > hit_height[highest]:
                    highest = h
                # spread the hit area evenly over [time, end) of the hit
                a = hit_time[h] - t0
                b = hit_end[h] - t0
                span = b - a
                k_first = min(int(a / bin_ns), n_bins - 1)
                k_last = min(int(np.ceil(b / bin_ns)) - 1, n_bins - 1)
                for k in range(k_first, k_last + 1):
                    left = max(a, k * bin_ns)
                    right = b if k == n_bins - 1 else min(b, (k + 1) * bin_ns)
                    if right > left:
                        waveform[k] += hit_area[h] * (right - left) / span
            height[p] = hit_height[highest]
            time_max[p] = hit_time_max[highest]
        bin_dt[p] = bin_ns
        p10 = _area_position(waveform, n_bins, 0.10, bin_ns)
        p25 = _area_position(waveform, n_bins, 0.25, bin_ns)
        p50 = _area_position(waveform, n_bins, 0.50, bin_ns)
        p75 = _area_position(waveform, n_bins, 0.75, bin_ns)
        width[p] = p75 - p25
        rise_time[p] = p50 - p10


# --- public wrappers -----------------------------------------------------------------------------


_FIELDS_HINT = "pass the output of find_hits / baseline"


def find_peaks(
    hits: np.ndarray,
    gap_ns: float = DEFAULT_PEAK_GAP_NS,
    min_channels: int = 1,
    min_area_adc_ns: float = 0.0,
    n_channels: int = DEFAULT_N_CHANNELS,
    n_samples: int = DEFAULT_PEAK_WAVEFORM_SAMPLES,
    records: np.ndarray | None = None,
) -> np.ndarray:
    """Cluster hits of all channels into peaks and compute their properties.

    Parameters
    ----------
    hits : np.ndarray
        Hits sorted by time (``dtypes.hit_dtype`` or any array with its fields).
    gap_ns : float
        A hit that starts ``gap_ns`` or more after the end of every earlier hit of the current
        peak starts a new peak. Hits that overlap always share a peak.
    min_channels : int
        Peaks with hits in fewer channels are dropped.
    min_area_adc_ns : float
        Peaks with a smaller area (sum of hit areas, ADC x ns) are dropped.
    n_channels : int
        Length of ``area_per_channel_adc_ns``; every hit channel must be below it.
    n_samples : int
        Bins of the summed waveform. A longer peak is downsampled by the smallest whole factor
        that makes it fit.
    records : np.ndarray, optional
        Baseline-subtracted records (``dtypes.record_dtype``) the hits were found in. When given,
        the hit samples are summed into the waveform and height, time of maximum, width and rise
        time come from it; otherwise from the hits alone (``length`` is then 0).

    Returns
    -------
    np.ndarray
        Peaks of ``dtypes.peak_dtype(n_channels, n_samples)``, sorted by time. Peaks never overlap
        and each lies inside ``[min hit time, max hit end)`` of its hits.

    Raises
    ------
    WfaConfigError
        For missing fields or meaningless arguments, or a channel >= ``n_channels``.
    WfaChunkError
        If hits are not sorted, or a hit's record is not among ``records``.
    """
    gap_ns = float(gap_ns)
    if not np.isfinite(gap_ns) or gap_ns < 0:
        msg = f"find_peaks: gap_ns must be a finite number of ns >= 0, got {gap_ns}."
        raise WfaConfigError(msg)
    if int(min_channels) < 0 or int(n_channels) < 1 or int(n_samples) < 1:
        msg = (
            f"find_peaks: expected min_channels >= 0, n_channels >= 1 and n_samples >= 1; got "
            f"min_channels={min_channels}, n_channels={n_channels}, n_samples={n_samples}."
        )
        raise WfaConfigError(msg)
    n_channels, n_samples = int(n_channels), int(n_samples)
    out_dtype = dtypes.peak_dtype(n_channels, n_samples)
    require_fields(hits, _HIT_FIELDS, "hits", "find_peaks", _FIELDS_HINT)
    if len(hits) == 0:
        return np.zeros(0, out_dtype)
    check_sorted(hits["time"], "hits", "find_peaks")
    channel = hits["channel"].astype(np.int64)
    if channel.min() < 0 or channel.max() >= n_channels:
        msg = (
            f"find_peaks: hit channels must lie in [0, {n_channels}); got channels "
            f"{channel.min()} to {channel.max()}. Raise n_channels to at least {channel.max() + 1}."
        )
        raise WfaConfigError(msg)
    hit_dt = hits["dt"].astype(np.float64)
    if not np.all(hit_dt > 0):
        msg = f"find_peaks: every hit needs a sample period dt > 0 ns; got minimum {hit_dt.min()}."
        raise WfaConfigError(msg)
    hit_time = hits["time"].astype(np.int64)
    hit_end = dtypes.endtime(hits)
    hit_length = hits["length"].astype(np.int64)

    use_records = records is not None
    if use_records:
        require_fields(hits, ("record_time", "left_sample"), "hits", "find_peaks", _FIELDS_HINT)
        require_fields(records, _RECORD_FIELDS, "records", "find_peaks", _FIELDS_HINT)
        if records.dtype["data"].base != np.float32:
            msg = (
                f"find_peaks: records['data'] must hold float32 baseline-subtracted samples "
                f"(dtypes.record_dtype); got {records.dtype['data'].base}. Pass the output of "
                "processing.baseline, not raw records."
            )
            raise WfaConfigError(msg)
        check_sorted(records["time"], "records", "find_peaks")
        hit_record = record_index(hits, records, "find_peaks")
        left_sample = hits["left_sample"].astype(np.int64)
        record_time = records["time"].astype(np.float64)
        record_length = records["length"].astype(np.int64)
        record_dt = records["dt"].astype(np.float64)
        # a strided view: copying every sample would cost more than building the peaks
        record_data = records["data"]
    else:
        hit_record = np.zeros(len(hits), np.int64)
        left_sample = np.zeros(len(hits), np.int64)
        record_time = np.zeros(0, np.float64)
        record_length = np.zeros(0, np.int64)
        record_dt = np.zeros(0, np.float64)
        # a strided view like the data field of real records: one compiled variant serves both
        record_data = np.zeros(2, dtypes.record_dtype(1))["data"]

    bounds = _cluster_hits(hit_time, hit_end, gap_ns)
    # the kernel writes straight into the fields of the (large) output: no copies
    peaks = np.zeros(len(bounds) - 1, out_dtype)
    _build_peaks(
        bounds, hit_time, hit_end, hit_dt, hit_length, channel,
        hits["area_adc_ns"].astype(np.float64), hits["height_adc"].astype(np.float32),
        hits["time_max"].astype(np.int64), left_sample, hit_record,
        record_time, record_length, record_dt, record_data, use_records,
        peaks["time"], peaks["endtime"], peaks["area_adc_ns"], peaks["height_adc"],
        peaks["time_max"], peaks["width_ns"], peaks["rise_time_ns"], peaks["n_hits"],
        peaks["n_channels"], peaks["area_per_channel_adc_ns"], peaks["length"], peaks["dt"],
        peaks["data"],
    )  # fmt: skip
    keep = (peaks["n_channels"] >= min_channels) & (peaks["area_adc_ns"] >= min_area_adc_ns)
    return peaks if keep.all() else peaks[keep]


def peak_basics(peaks: np.ndarray) -> np.ndarray:
    """The light summary of each peak (no waveform), plus the channel that saw most of it.

    Parameters
    ----------
    peaks : np.ndarray
        Output of :func:`find_peaks`.

    Returns
    -------
    np.ndarray
        Rows of ``dtypes.peak_basics_dtype``, one per peak, same order.
    """
    out = np.zeros(len(peaks), dtypes.peak_basics_dtype)
    names = peaks.dtype.names or ()
    wanted = [n for n in out.dtype.names if n not in ("max_channel", "max_channel_area_fraction")]
    wanted.append("area_per_channel_adc_ns")
    missing = [n for n in wanted if n not in names]
    if missing:
        msg = f"peak_basics: peaks lack the fields {missing}; pass the output of find_peaks."
        raise WfaConfigError(msg)
    for name in wanted[:-1]:
        out[name] = peaks[name]
    if len(peaks):
        per_channel = peaks["area_per_channel_adc_ns"]
        out["max_channel"] = np.argmax(per_channel, axis=1)
        largest = per_channel[np.arange(len(peaks)), out["max_channel"]]
        area = peaks["area_adc_ns"]
        fraction = np.full(len(peaks), np.nan, np.float32)
        np.divide(largest, area, out=fraction, where=area > 0)
        out["max_channel_area_fraction"] = fraction
    return out
