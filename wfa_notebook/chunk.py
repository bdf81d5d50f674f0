"""Chunks: a time-ordered slice of one data type over a half-open interval [start, end) in ns."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .dtypes import endtime
from .errors import WfaChunkError

__all__ = ["Chunk", "check_continuous"]


class Chunk:
    """Rows of one data type of one run, covering the half-open time interval ``[start, end)``.

    Invariants, checked on construction: rows are sorted by ``time`` and every row's
    ``[time, endtime)`` lies inside ``[start, end)``.

    Parameters
    ----------
    data : numpy structured array with an int64 ``time`` field (ns)
    start, end : int
        Interval covered by the chunk, ns since run start; ``start <= end``.
    run_id, data_type : str
        What the rows are, used in error messages and by storage.
    """

    __slots__ = ("data", "start", "end", "run_id", "data_type")

    def __init__(self, data: np.ndarray, start: int, end: int, run_id: str, data_type: str):
        self.data = data
        self.start = int(start)
        self.end = int(end)
        self.run_id = run_id
        self.data_type = data_type
        self._check()

    def __repr__(self) -> str:
        return (
            f"Chunk({self.data_type!r} of run {self.run_id!r}, [{self.start}, {self.end}) ns, "
            f"{len(self.data)} rows, {self.nbytes / 1e6:.3f} MB)"
        )

    def __len__(self) -> int:
        return len(self.data)

    @property
    def nbytes(self) -> int:
        return int(self.data.nbytes)

    @property
    def duration_ns(self) -> int:
        return self.end - self.start

    def _where(self) -> str:
        return f"chunk [{self.start}, {self.end}) ns of {self.data_type!r} (run {self.run_id!r})"

    def _check(self) -> None:
        if self.end < self.start:
            msg = f"{self._where()}: end must be >= start."
            raise WfaChunkError(msg)
        names = self.data.dtype.names or ()
        if "time" not in names:
            msg = f"{self._where()}: data needs an int64 'time' field; got fields {list(names)}."
            raise WfaChunkError(msg)
        if not len(self.data):
            return
        times = self.data["time"]
        if len(times) > 1:
            unsorted = np.flatnonzero(times[1:] < times[:-1])
            if len(unsorted):
                i = int(unsorted[0])
                msg = (
                    f"{self._where()}: rows must be sorted by time; row {i + 1} has time "
                    f"{int(times[i + 1])} ns < row {i} at {int(times[i])} ns. "
                    "Sort the output (np.sort(arr, order='time')) before returning it."
                )
                raise WfaChunkError(msg)
        first, last_end = int(times[0]), int(endtime(self.data).max())
        if first < self.start or last_end > self.end:
            msg = (
                f"{self._where()}: rows must lie inside the chunk. Promised: [{self.start}, "
                f"{self.end}) ns. Delivered: rows spanning [{first}, {last_end}) ns."
            )
            raise WfaChunkError(msg)

    # --- combining and cutting ---------------------------------------------------------------

    @classmethod
    def concat(cls, chunks: Sequence[Chunk]) -> Chunk:
        """Join consecutive chunks of one data type into one chunk covering all of them."""
        if not chunks:
            msg = "Chunk.concat needs at least one chunk; got none."
            raise WfaChunkError(msg)
        first = chunks[0]
        for a, b in zip(chunks[:-1], chunks[1:]):
            _check_same_kind(a, b, "concat")
            if a.data.dtype != b.data.dtype:
                msg = f"Chunk.concat: {b._where()} has dtype {b.data.dtype}, expected {a.data.dtype}."
                raise WfaChunkError(msg)
        check_continuous(chunks)
        data = np.concatenate([c.data for c in chunks]) if len(chunks) > 1 else first.data
        return cls(data, first.start, chunks[-1].end, first.run_id, first.data_type)

    def split(self, at_ns: int) -> tuple[Chunk, Chunk]:
        """Cut into ``[start, at_ns)`` and ``[at_ns, end)``; no row may straddle ``at_ns``."""
        at_ns = int(at_ns)
        if not self.start <= at_ns <= self.end:
            msg = f"{self._where()}: cannot split at {at_ns} ns, outside the chunk."
            raise WfaChunkError(msg)
        cut = int(np.searchsorted(self.data["time"], at_ns, side="left"))
        if cut and int(endtime(self.data[:cut]).max()) > at_ns:
            msg = (
                f"{self._where()}: cannot split at {at_ns} ns: a row starting before it ends "
                f"after it. Split in a gap between rows instead."
            )
            raise WfaChunkError(msg)
        left = Chunk(self.data[:cut], self.start, at_ns, self.run_id, self.data_type)
        right = Chunk(self.data[cut:], at_ns, self.end, self.run_id, self.data_type)
        return left, right

    @classmethod
    def merge(cls, chunks: Sequence[Chunk], data_type: str | None = None) -> Chunk:
        """Combine chunks holding the same rows with different fields into one wider chunk."""
        if not chunks:
            msg = "Chunk.merge needs at least one chunk; got none."
            raise WfaChunkError(msg)
        first = chunks[0]
        fields: list[tuple] = []
        seen: set[str] = set()
        for c in chunks:
            if (c.start, c.end) != (first.start, first.end) or len(c) != len(first):
                msg = (
                    f"Chunk.merge: {c._where()} has {len(c)} rows; expected the same interval "
                    f"[{first.start}, {first.end}) ns and {len(first)} rows as {first.data_type!r}."
                )
                raise WfaChunkError(msg)
            if not np.array_equal(c.data["time"], first.data["time"]):
                msg = f"Chunk.merge: {c._where()} rows have other times than {first.data_type!r}."
                raise WfaChunkError(msg)
            for name in c.data.dtype.names:
                if name not in seen:
                    seen.add(name)
                    fields.append((c, name))
        descr = []
        for c, name in fields:
            info = c.data.dtype.fields[name]
            title = info[2] if len(info) > 2 else None
            descr.append(((title, name) if title else name, info[0]))
        out = np.empty(len(first), dtype=np.dtype(descr))
        for c, name in fields:
            out[name] = c.data[name]
        return cls(out, first.start, first.end, first.run_id, data_type or first.data_type)


def _check_same_kind(a: Chunk, b: Chunk, what: str) -> None:
    if (a.run_id, a.data_type) != (b.run_id, b.data_type):
        msg = (
            f"Chunk.{what}: chunks must be of one run and data type; got {a.data_type!r} of "
            f"{a.run_id!r} and {b.data_type!r} of {b.run_id!r}."
        )
        raise WfaChunkError(msg)


def check_continuous(chunks: Sequence[Chunk]) -> None:
    """Raise unless each chunk starts exactly where the previous one ended."""
    for a, b in zip(chunks[:-1], chunks[1:]):
        if a.end != b.start:
            msg = (
                f"{b._where()} does not continue {a._where()}: expected start {a.end} ns, got "
                f"{b.start} ns. Chunks of a stream must be continuous."
            )
            raise WfaChunkError(msg)
