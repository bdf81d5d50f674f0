"""Embedded data sets: deterministic synthetic digitizer runs with a truth table."""
from __future__ import annotations

from wfa_notebook.datasets.synthetic import (
    AMPLITUDE_SPECTRA,
    PULSE_SHAPES,
    SyntheticConfig,
    SyntheticRun,
    synthetic_run,
)

from wfa_notebook.datasets.truth import pulses_found

__all__ = ["pulses_found", "AMPLITUDE_SPECTRA", "PULSE_SHAPES", "SyntheticConfig", "SyntheticRun", "synthetic_run"]
