"""Embedded data sets: deterministic synthetic digitizer runs with a truth table."""
from __future__ import annotations

from wfa_notebook.datasets.synthetic import (
    AMPLITUDE_SPECTRA,
    PULSE_SHAPES,
    SyntheticConfig,
    SyntheticRun,
    synthetic_run,
)

__all__ = ["AMPLITUDE_SPECTRA", "PULSE_SHAPES", "SyntheticConfig", "SyntheticRun", "synthetic_run"]
