"""Every structured dtype of the toolkit, in one place.

Conventions: every time is int64 nanoseconds since the start of the run; ``dt`` is the sample
period in ns as float64 (DRS4 boards sample at 1.333 ns or 0.2 ns, not a whole number of ns); a
row covers the half-open interval ``[time, endtime)``.  Fields and options carry their unit in the
name where it would otherwise be ambiguous (``area_adc_ns``, ``threshold_adc``).
"""
from __future__ import annotations

import math

import numpy as np

__all__ = [
    "raw_record_dtype",
    "endtime",
    "duration_ns",
    "field_help",
    "check_time_fields",
    "record_dtype",
    "hit_dtype",
    "pulse_dtype",
    "RECORD_EDGE_START",
    "RECORD_EDGE_END",
    "peak_dtype",
    "peak_basics_dtype",
    "event_dtype",
    "event_basics_dtype",
    "synthetic_truth_dtype",
]

_RAW_RECORD_FIELDS = [
    (("Start time of the first sample, ns since run start", "time"), np.int64),
    (("Number of valid samples in data", "length"), np.int32),
    (("Sample period, ns", "dt"), np.float64),
    (("Global channel number", "channel"), np.int16),
    (("Event or trigger number given by the digitizer (or the generator)", "event_number"), np.int64),
]


def raw_record_dtype(n_samples: int = 110, sample_dtype: np.dtype | type = np.int16) -> np.dtype:
    """Dtype of raw digitizer records with ``n_samples`` samples of ``sample_dtype`` each.

    Most CAEN boards write uint16/int16 ADC counts; x742 (DRS4) boards write float32.
    """
    n_samples = int(n_samples)
    if n_samples <= 0:
        msg = f"raw_record_dtype: n_samples must be a positive number of samples, got {n_samples}."
        raise ValueError(msg)
    return np.dtype(
        _RAW_RECORD_FIELDS
        + [(("Raw samples, ADC counts (first `length` are valid)", "data"), sample_dtype, n_samples)]
    )


def duration_ns(n_samples: int, dt_ns: float) -> int:
    """Whole ns covered by ``n_samples`` samples of ``dt_ns`` each (rounded up, as ``endtime``)."""
    return int(math.ceil(n_samples * dt_ns))


def endtime(rows: np.ndarray) -> np.ndarray:
    """Exclusive end time in ns of each row: the ``endtime`` field, or time + length * dt rounded up."""
    names = rows.dtype.names or ()
    if "endtime" in names:
        return rows["endtime"].astype(np.int64, copy=False)
    if "length" in names and "dt" in names:
        return rows["time"] + np.ceil(rows["length"] * rows["dt"]).astype(np.int64)
    # a point-like row (no duration) still occupies its own nanosecond
    return rows["time"] + 1


def field_help(dtype: np.dtype) -> dict[str, str]:
    """Map field name to its help text (the title given in the dtype), '' where none is given."""
    out: dict[str, str] = {}
    for name in dtype.names or ():
        info = dtype.fields[name]
        out[name] = info[2] if len(info) > 2 and isinstance(info[2], str) else ""
    return out


def check_time_fields(dtype: np.dtype, owner: str) -> None:
    """Raise if ``dtype`` lacks an int64 ``time`` field (every data type needs one)."""
    names = dtype.names or ()
    if "time" not in names:
        msg = f"{owner}: dtype must have an int64 'time' field (ns); got fields {list(names)}."
        raise TypeError(msg)
    if dtype["time"] != np.dtype(np.int64):
        msg = f"{owner}: field 'time' must be int64 ns; got {dtype['time']}."
        raise TypeError(msg)


# --- processed records and hits ------------------------------------------------------------------


def record_dtype(n_samples: int = 110) -> np.dtype:
    """Dtype of baseline-subtracted records: pulses are positive whatever the input polarity.

    Samples are float32 so that the fractional part of the baseline is kept (an integer baseline
    biases small areas) and float32 DRS4 samples lose nothing.
    """
    n_samples = int(n_samples)
    if n_samples <= 0:
        msg = f"record_dtype: n_samples must be a positive number of samples, got {n_samples}."
        raise ValueError(msg)
    return np.dtype(
        _RAW_RECORD_FIELDS
        + [
            (("Baseline (mean of the first baseline samples), ADC", "baseline_adc"), np.float32),
            (("RMS of the baseline samples, ADC", "baseline_rms_adc"), np.float32),
            (("Samples minus baseline, pulses positive, ADC (0 beyond length)", "data"), np.float32, n_samples),
        ]
    )


#: Bits of ``hit_dtype['record_edge']``: the above-threshold part starts at the first sample ...
RECORD_EDGE_START = 1
#: ... or ends at the last valid sample of the record, so the pulse is probably cut.
RECORD_EDGE_END = 2

_HIT_FIELDS = [
    (("Start time of the first hit sample (left extension included), ns since run start", "time"), np.int64),
    (("Number of samples in the hit (extensions included)", "length"), np.int32),
    (("Sample period, ns", "dt"), np.float64),
    (("Global channel number", "channel"), np.int16),
    (("Time of the highest sample, ns since run start", "time_max"), np.int64),
    (("Integral of the samples in the hit, ADC x ns", "area_adc_ns"), np.float32),
    (("Highest sample above baseline, ADC", "height_adc"), np.float32),
]

hit_dtype = np.dtype(
    _HIT_FIELDS
    + [
        (("Threshold that was applied to this hit, ADC", "threshold_adc"), np.float32),
        (("Start time of the record the hit was found in, ns", "record_time"), np.int64),
        (("Index of the first hit sample inside its record", "left_sample"), np.int32),
        (("Pulse cut by the record: 1 = above threshold at the first sample, 2 = at the last, 3 = both", "record_edge"), np.int8),
    ]
)

#: Shape of each pulse found as a hit (``wfa_notebook.processing.pulse_properties``).
pulse_dtype = np.dtype(
    _HIT_FIELDS
    + [
        (("Width at half of the height, interpolated between samples (NaN if cut by the record), ns", "width_50_ns"), np.float32),
        (("Rise time from 10 % to 90 % of the height (NaN if cut by the record), ns", "rise_time_10_90_ns"), np.float32),
    ]
)
# --- end of processed records and hits -----------------------------------------------------------


# --- peaks and events ----------------------------------------------------------------------------
# Peaks cluster hits of all channels; events are time windows around large peaks.  ``endtime`` is
# stored explicitly because the summed waveform is downsampled and its ``dt`` is not the peak's.


_PEAK_SUMMARY_FIELDS = [
    (("Start time of the earliest hit of the peak, ns since run start", "time"), np.int64),
    (("End of the latest hit of the peak (exclusive), ns since run start", "endtime"), np.int64),
    (("Sum of the hit areas of all channels, ADC x ns", "area_adc_ns"), np.float32),
    (("Height of the summed waveform (without records: of the highest hit), ADC", "height_adc"), np.float32),
    (("Time of the maximum of the summed waveform (without records: of the highest hit), ns", "time_max"), np.int64),
    (("Width containing the central 50 % of the area (25 % to 75 %), ns", "width_ns"), np.float32),
    (("Time from 10 % to 50 % of the area, ns", "rise_time_ns"), np.float32),
    (("Number of hits in the peak", "n_hits"), np.int32),
    (("Number of channels with at least one hit in the peak", "n_channels"), np.int16),
]


def peak_dtype(n_channels: int = 128, n_samples: int = 200) -> np.dtype:
    """Dtype of peaks: properties, area per channel and a summed waveform of ``n_samples`` bins.

    The summed waveform starts at the first hit sample (``time`` up to the rounding of hit times
    to whole ns); bin ``k`` covers ``[k*dt, (k+1)*dt)`` after it, where ``dt`` is the smallest
    whole multiple of the finest hit sample period that makes the peak fit. Bins hold the summed
    amplitude in ADC averaged over the bin, so ``data[:length].sum() * dt`` is the area.
    ``length`` is 0 when the peaks were built from hits alone.
    """
    n_channels, n_samples = int(n_channels), int(n_samples)
    if n_channels <= 0 or n_samples <= 0:
        msg = (
            f"peak_dtype: n_channels and n_samples must be positive, got n_channels={n_channels}, "
            f"n_samples={n_samples}."
        )
        raise ValueError(msg)
    return np.dtype(
        _PEAK_SUMMARY_FIELDS
        + [
            (("Hit area per channel (index = channel number), ADC x ns", "area_per_channel_adc_ns"), np.float32, n_channels),
            (("Number of valid bins in data (0 when built without records)", "length"), np.int32),
            (("Bin width of the summed waveform, ns", "dt"), np.float64),
            (("Summed waveform of all channels, ADC averaged over each bin of width dt", "data"), np.float32, n_samples),
        ]
    )


peak_basics_dtype = np.dtype(
    _PEAK_SUMMARY_FIELDS
    + [
        (("Channel with the largest area in the peak", "max_channel"), np.int16),
        (("Fraction of the peak area seen by max_channel", "max_channel_area_fraction"), np.float32),
    ]
)

event_dtype = np.dtype(
    [
        (("Start of the event window, ns since run start", "time"), np.int64),
        (("End of the event window (exclusive), ns since run start", "endtime"), np.int64),
        (("Number of peaks starting inside the window", "n_peaks"), np.int32),
        (("Number of those peaks that passed the trigger", "n_trigger_peaks"), np.int32),
    ]
)

event_basics_dtype = np.dtype(
    [
        (("Start of the event window, ns since run start", "time"), np.int64),
        (("End of the event window (exclusive), ns since run start", "endtime"), np.int64),
        (("Number of peaks in the event", "n_peaks"), np.int32),
        (("Summed area of all peaks in the event, ADC x ns", "area_adc_ns"), np.float32),
        (("Area of the largest peak, ADC x ns", "largest_peak_area_adc_ns"), np.float32),
        (("Start time of the largest peak, ns since run start", "largest_peak_time"), np.int64),
        (("Time of maximum of the largest peak, ns since run start", "largest_peak_time_max"), np.int64),
        (("50 % area width of the largest peak, ns", "largest_peak_width_ns"), np.float32),
        (("Number of channels of the largest peak", "largest_peak_n_channels"), np.int16),
        (("Area of the second-largest peak (NaN when n_peaks < 2), ADC x ns", "second_peak_area_adc_ns"), np.float32),
        (("Start time of the second-largest peak (-1 when n_peaks < 2), ns", "second_peak_time"), np.int64),
        (("Time of maximum of the second-largest peak (-1 when n_peaks < 2), ns", "second_peak_time_max"), np.int64),
        (("50 % area width of the second-largest peak (NaN when n_peaks < 2), ns", "second_peak_width_ns"), np.float32),
        (("Number of channels of the second-largest peak (0 when n_peaks < 2)", "second_peak_n_channels"), np.int16),
        (("Time of maximum of the second-largest minus the largest peak, negative when the second comes first (0 when n_peaks < 2), ns", "time_between_largest_ns"), np.int64),
    ]
)
# --- end of peaks and events ---------------------------------------------------------------------


# --- synthetic truth -----------------------------------------------------------------------------

#: One row per pulse recorded by ``wfa_notebook.datasets.synthetic_run`` (its truth table).
synthetic_truth_dtype = np.dtype(
    [
        (("Global channel number", "channel"), np.int16),
        (("Time of the pulse maximum, ns since run start (rounded to the ns)", "time_ns"), np.int64),
        (("Peak height above baseline, ADC (positive for both polarities)", "amplitude_adc"), np.float64),
        (("Full integral of the pulse above baseline, ADC x ns (positive)", "area_adc_ns"), np.float64),
        (("Integral of the noise-free pulse over its record's samples, ADC x ns", "area_in_record_adc_ns"), np.float64),
        (("Pulse onset (start of the rise), ns since run start", "onset_ns"), np.float64),
        (("event_number of the raw record that contains the pulse", "event_number"), np.int64),
        (("Start time of that record, ns since run start", "record_time"), np.int64),
        (("True for the pulse that triggered its record, False for pile-up", "is_trigger"), np.bool_),
    ]
)
# --- end of synthetic truth ----------------------------------------------------------------------
