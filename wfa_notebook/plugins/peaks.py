"""Built-in plugins for peaks: hits of all channels clustered in time, and their light summary."""
from __future__ import annotations

import sys

import numpy as np

from .. import dtypes
from ..processing import _records
from ..processing.peaks import (
    DEFAULT_N_CHANNELS,
    DEFAULT_PEAK_GAP_NS,
    DEFAULT_PEAK_WAVEFORM_SAMPLES,
    find_peaks,
    peak_basics,
)
from .base import Plugin
from .options import Option

__all__ = ["Peaks", "PeakBasics"]


class Peaks(Plugin):
    """Hits of all channels closer than ``peak_gap_ns``, with their summed waveform."""

    provides = "peaks"
    depends_on = ("hits", "records")
    __version__ = "0.1.0"
    # kernels and dtypes are part of what decides the output: hashed into the lineage
    code_dependencies = (sys.modules[find_peaks.__module__], _records, dtypes)

    peak_gap_ns = Option(
        default=DEFAULT_PEAK_GAP_NS, type=int,
        help="A hit starting this long (ns) after the end of all earlier hits starts a new peak",
    )
    peak_min_channels = Option(
        default=1, type=int, help="Drop peaks with hits in fewer channels than this",
    )
    peak_min_area_adc_ns = Option(
        default=0.0, type=float, help="Drop peaks with a smaller area, ADC x ns",
    )
    n_channels_max = Option(
        default=DEFAULT_N_CHANNELS, type=int,
        help="Length of the per-channel area array; every channel number must be below it",
    )
    peak_waveform_samples = Option(
        default=DEFAULT_PEAK_WAVEFORM_SAMPLES, type=int,
        help="Bins of the summed waveform; longer peaks are downsampled to fit",
    )

    def infer_dtype(self) -> np.dtype:
        return dtypes.peak_dtype(self.n_channels_max, self.peak_waveform_samples)

    def compute(self, hits: np.ndarray, records: np.ndarray) -> np.ndarray:
        return find_peaks(
            hits,
            gap_ns=self.peak_gap_ns,
            min_channels=self.peak_min_channels,
            min_area_adc_ns=self.peak_min_area_adc_ns,
            n_channels=self.n_channels_max,
            n_samples=self.peak_waveform_samples,
            records=records,
        )


class PeakBasics(Plugin):
    """Peak properties without the waveform and per-channel areas: small and fast to load."""

    provides = "peak_basics"
    depends_on = ("peaks",)
    __version__ = "0.1.0"
    # kernels and dtypes are part of what decides the output: hashed into the lineage
    code_dependencies = (sys.modules[peak_basics.__module__], dtypes)
    dtype = dtypes.peak_basics_dtype

    def compute(self, peaks: np.ndarray) -> np.ndarray:
        return peak_basics(peaks)
