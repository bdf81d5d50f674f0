"""Small plugins for testing the framework without the waveform chain."""
from __future__ import annotations

import numpy as np

from wfa_notebook.plugins import Option, Plugin, SourcePlugin, StreamingPlugin

pulse_dtype = np.dtype([("time", np.int64), ("length", np.int32), ("dt", np.float64), ("value", np.float64)])


def make_pulses(n_rows: int, seed: int = 0, spacing_ns: int = 100) -> np.ndarray:
    """Rows with random gaps; each row lasts 10 ns."""
    rng = np.random.default_rng(seed)
    rows = np.zeros(n_rows, pulse_dtype)
    rows["time"] = np.cumsum(rng.integers(20, spacing_ns, n_rows))
    rows["length"], rows["dt"] = 1, 10.0
    rows["value"] = rng.normal(size=n_rows)
    return rows


class PulseSource(SourcePlugin):
    """Yields make_pulses() cut into chunks at gaps, at the edges given by chunk_rows."""

    provides = "pulses"
    dtype = pulse_dtype
    __version__ = "0.1.0"
    n_rows = Option(default=200, type=int, help="Number of rows in the run")
    seed = Option(default=0, type=int, help="Random seed")
    chunk_rows = Option(default=50, type=int, help="Rows per chunk", track=False)
    save = True  # cached like any other data type, so tests can count source calls
    calls = 0

    def iter_chunks(self):
        type(self).calls += 1
        rows = make_pulses(self.n_rows, self.seed)
        end_all = int(rows["time"][-1]) + 10 if len(rows) else 0
        start = 0
        for lo in range(0, len(rows), self.chunk_rows):
            part = rows[lo:lo + self.chunk_rows]
            nxt = lo + self.chunk_rows
            end = int(rows["time"][nxt]) if nxt < len(rows) else end_all
            yield self.make_chunk(part, start, end)
            start = end


class Scaled(Plugin):
    provides = "scaled"
    depends_on = ("pulses",)
    dtype = pulse_dtype
    __version__ = "0.1.0"
    factor = Option(default=2.0, type=float, help="Multiplier of value")

    def compute(self, pulses):
        out = pulses.copy()
        out["value"] *= self.factor
        return out


class Summed(Plugin):
    """Depends on two data types with the same rows."""

    provides = "summed"
    depends_on = ("pulses", "scaled")
    dtype = pulse_dtype
    __version__ = "0.1.0"

    def compute(self, pulses, scaled):
        out = pulses.copy()
        out["value"] += scaled["value"]
        return out


class NeighbourCount(StreamingPlugin):
    """For each row, how many rows lie within halo_ns before or after it (chunking must not matter)."""

    provides = "neighbours"
    depends_on = ("pulses",)
    dtype = pulse_dtype
    __version__ = "0.1.0"
    halo_ns = 300

    def compute_chunk(self, chunk, context, run_id, **kwargs):
        t = chunk.data["time"]
        out = chunk.data.copy()
        lo = np.searchsorted(t, t - self.halo_ns, side="left")
        hi = np.searchsorted(t, t + self.halo_ns, side="right")
        out["value"] = hi - lo - 1
        return out
