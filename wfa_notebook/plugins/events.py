"""Built-in plugins for events: windows around large peaks, and their largest peaks."""
from __future__ import annotations

import sys

import numpy as np

from .. import dtypes
from ..processing.events import (
    DEFAULT_EVENT_LEFT_EXTENSION_NS,
    DEFAULT_EVENT_RIGHT_EXTENSION_NS,
    DEFAULT_TRIGGER_MIN_AREA_ADC_NS,
    event_basics,
    find_events,
)
from .base import Plugin
from .options import Option

__all__ = ["Events", "EventBasics"]


class Events(Plugin):
    """Windows around peaks above the trigger threshold, merged where they overlap.

    Windows are clipped to the chunk, so an event never spans two chunks.
    """

    provides = "events"
    depends_on = ("peak_basics",)
    __version__ = "0.1.0"
    # kernels and dtypes are part of what decides the output: hashed into the lineage
    code_dependencies = (sys.modules[find_events.__module__], dtypes)
    dtype = dtypes.event_dtype

    trigger_min_area_adc_ns = Option(
        default=DEFAULT_TRIGGER_MIN_AREA_ADC_NS, type=float,
        help="A peak with at least this area (ADC x ns) triggers an event",
    )
    trigger_min_channels = Option(
        default=1, type=int, help="A trigger peak also needs hits in at least this many channels",
    )
    event_left_extension_ns = Option(
        default=DEFAULT_EVENT_LEFT_EXTENSION_NS, type=int,
        help="The event window opens this long (ns) before the start of a trigger peak",
    )
    event_right_extension_ns = Option(
        default=DEFAULT_EVENT_RIGHT_EXTENSION_NS, type=int,
        help="The event window closes this long (ns) after the end of a trigger peak",
    )

    def compute(self, peak_basics: np.ndarray, start: int, end: int) -> np.ndarray:
        return find_events(
            peak_basics,
            trigger_min_area_adc_ns=self.trigger_min_area_adc_ns,
            left_extension_ns=self.event_left_extension_ns,
            right_extension_ns=self.event_right_extension_ns,
            trigger_min_channels=self.trigger_min_channels,
            start=start,
            end=end,
        )


class EventBasics(Plugin):
    """Per event: number of peaks, total area, largest and second-largest peak, time between them."""

    provides = "event_basics"
    depends_on = ("events", "peak_basics")
    __version__ = "0.1.0"
    # kernels and dtypes are part of what decides the output: hashed into the lineage
    code_dependencies = (sys.modules[event_basics.__module__], dtypes)
    dtype = dtypes.event_basics_dtype

    def compute(self, events: np.ndarray, peak_basics: np.ndarray) -> np.ndarray:
        return event_basics(events, peak_basics)
