"""Numba kernels over structured arrays: pure functions, no configuration, no plugins.

Each public function validates and normalises its arguments and calls a private compiled
``_name`` that releases the GIL, so threads scale.
"""
from __future__ import annotations

# records and hits
from .baseline import POLARITIES, baseline
from .hits import concatenate_hits, find_hits, sort_hits
from .pulse import pulse_properties

# peaks and events
from .events import event_basics, find_events
from .peaks import find_peaks, peak_basics

__all__ = [
    # records and hits
    "POLARITIES",
    "baseline",
    "find_hits",
    "sort_hits",
    "concatenate_hits",
    "pulse_properties",
    # peaks and events
    "find_peaks",
    "peak_basics",
    "find_events",
    "event_basics",
]
