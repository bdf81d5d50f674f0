"""Built-in plugins for single-channel waveforms: raw_records -> records -> hits."""
from __future__ import annotations

import sys

import numpy as np

from .. import dtypes
from ..processing.baseline import DEFAULT_BASELINE_SAMPLES, POLARITIES, baseline
from ..processing.hits import (
    DEFAULT_LEFT_EXTENSION_SAMPLES,
    DEFAULT_RIGHT_EXTENSION_SAMPLES,
    find_hits,
)
from .base import Plugin, SourcePlugin
from .options import Option

__all__ = ["Records", "Hits"]


class Records(Plugin):
    """Baseline-subtracted records with positive pulses (see :func:`processing.baseline`)."""

    provides = "records"
    depends_on = ("raw_records",)
    __version__ = "0.1.0"
    # kernels and dtypes are part of what decides the output: hashed into the lineage
    code_dependencies = (sys.modules[baseline.__module__], dtypes)

    baseline_samples = Option(
        default=DEFAULT_BASELINE_SAMPLES, type=int,
        help="Samples at the start of each record whose mean is the baseline (all of a shorter record)",
    )
    polarity = Option(
        default=None, type=(str, type(None)), choices=(*POLARITIES, None),
        help="Direction of the pulses in the raw samples (None: as the source says, e.g. the WaveDump "
             "config's PULSE_POLARITY; negative if it does not say); records always have them positive",
    )

    def resolved_polarity(self) -> str:
        """The polarity option, or else the one the raw_records source reports, or else negative."""
        if self.polarity is not None:
            return self.polarity
        source = self.dependency_plugins.get("raw_records")
        reported = source.pulse_polarity() if isinstance(source, SourcePlugin) else None
        return reported or "negative"

    def setup(self) -> None:
        self._polarity = self.resolved_polarity()

    def infer_dtype(self) -> np.dtype:
        raw = self.dependency_dtype("raw_records")
        return dtypes.record_dtype(raw["data"].shape[0])

    def compute(self, raw_records: np.ndarray) -> np.ndarray:
        return baseline(raw_records, baseline_samples=self.baseline_samples, polarity=self._polarity)


class Hits(Plugin):
    """Intervals of each record above threshold (see :func:`processing.find_hits`)."""

    provides = "hits"
    depends_on = ("records",)
    __version__ = "0.1.0"
    # kernels and dtypes are part of what decides the output: hashed into the lineage
    code_dependencies = (sys.modules[find_hits.__module__], dtypes)
    dtype = dtypes.hit_dtype

    # 15 ADC is strax's default for PMT records; 5 x the 3-ADC noise of the synthetic runs
    threshold_adc = Option(
        default=15.0, type=(float, list, tuple),
        help="Threshold above the baseline, ADC; one number or a list indexed by channel",
    )
    threshold_rms = Option(
        default=0.0, type=(float, list, tuple),
        help="Threshold in units of each record's baseline RMS (0: off); the larger threshold applies",
    )
    left_extension_samples = Option(
        default=DEFAULT_LEFT_EXTENSION_SAMPLES, type=int,
        help="Samples added before the first sample above threshold (the rise of the pulse)",
    )
    right_extension_samples = Option(
        default=DEFAULT_RIGHT_EXTENSION_SAMPLES, type=int,
        help="Samples added after the last sample above threshold (the tail of the pulse)",
    )
    min_consecutive_samples = Option(
        default=1, type=int,
        help="Ignore runs of fewer samples above threshold; 3 rejects white noise at a 3-RMS threshold",
    )

    def compute(self, records: np.ndarray) -> np.ndarray:
        return find_hits(
            records,
            threshold_adc=self.threshold_adc,
            threshold_rms=self.threshold_rms,
            left_extension_samples=self.left_extension_samples,
            right_extension_samples=self.right_extension_samples,
            min_consecutive_samples=self.min_consecutive_samples,
        )
