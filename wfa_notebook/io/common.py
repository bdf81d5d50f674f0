"""Small pieces shared by the file readers: warnings, fingerprints, time-tag unwrapping."""
from __future__ import annotations

import contextlib
import hashlib
import mmap
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

__all__ = ["TruncatedFileWarning", "files_fingerprint", "TimeTagUnwrapper", "mapped_bytes"]


class TruncatedFileWarning(UserWarning):
    """A file ends in the middle of an event; the incomplete event was dropped."""


def files_fingerprint(paths: Iterable[str | Path]) -> str:
    """Hash of names, sizes and modification times: changes when any input file changes."""
    digest = hashlib.sha256()
    for path in sorted(Path(p) for p in paths):
        stat = path.stat()
        digest.update(f"{path.name}|{stat.st_size}|{stat.st_mtime_ns};".encode())
    return digest.hexdigest()[:16]


class TimeTagUnwrapper:
    """Turn a digitizer's wrapping trigger time tag into monotonic int64 ns, block by block.

    Only the low ``bits`` of each tag are used (a roll-over flag in a higher bit is ignored);
    every decrease of the masked value counts as one roll-over.  Consecutive events of one file
    must therefore be less than ``2**bits`` ticks apart (17 s for 31 bits of 8 ns).
    """

    def __init__(self, bits: int, tick_ns: float):
        self.bits = int(bits)
        self.tick_ns = float(tick_ns)
        self._previous: int | None = None
        self._wraps = 0

    def __call__(self, tags: np.ndarray) -> np.ndarray:
        masked = tags.astype(np.int64) & ((1 << self.bits) - 1)
        if len(masked) == 0:
            return np.zeros(0, np.int64)
        previous = masked[0] if self._previous is None else self._previous
        steps = np.diff(masked, prepend=previous)
        wraps = self._wraps + np.cumsum(steps < 0)
        self._previous = int(masked[-1])
        self._wraps = int(wraps[-1])
        ticks = masked + (wraps << self.bits)
        if self.tick_ns == int(self.tick_ns):
            return ticks * int(self.tick_ns)
        return np.rint(ticks * self.tick_ns).astype(np.int64)


@contextlib.contextmanager
def mapped_bytes(path: str | Path) -> Iterator[bytes | mmap.mmap]:
    """The file's content as a read-only memory map (``b""`` for an empty file).

    Slicing gives ``bytes``; ``re`` and ``numpy.frombuffer`` work on it directly, and the pages
    come from the file cache, so a file larger than memory can still be scanned.
    """
    with open(path, "rb") as f:
        if Path(path).stat().st_size == 0:
            yield b""
            return
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            yield mapped
