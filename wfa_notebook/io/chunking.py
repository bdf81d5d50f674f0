"""Cut a time-ordered stream of records into chunks, only in gaps where no record is present.

Readers and generators produce records in blocks; a Context wants continuous chunks of roughly a
requested duration whose boundaries never cut through a record (of any channel).  This module
turns the former into the latter without ever holding more than about one chunk in memory.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from wfa_notebook import dtypes
from wfa_notebook.errors import WfaChunkError

__all__ = ["DEFAULT_CHUNK_MIN_GAP_NS", "first_gap_at_or_after", "cut_is_safe", "rechunk_in_gaps", "merge_sorted_streams"]

#: Chunk boundaries fall only in gaps at least this long between records (of any channel). It
#: must exceed the widest time window of later plugins, or results would depend on chunking: the
#: default event window is 500 ns left + 500 ns right of a peak and peaks join hits 50 ns apart,
#: 1.05 us in all; 5 us leaves room for wider windows while gaps of 5 us still occur every few
#: records at 200 kHz of records over 100 channels (the kernel benchmark's rate).
DEFAULT_CHUNK_MIN_GAP_NS = 5_000


def first_gap_at_or_after(records: np.ndarray, target_ns: int, min_gap_ns: int = 0) -> int:
    """Smallest time >= ``target_ns`` where a chunk boundary cuts no record of ``records``.

    With ``min_gap_ns`` the boundary lies in a gap between records at least that wide, with at
    least half of it on each side, so that plugins looking a time window around a row (peak
    clustering, event windows) see the same rows whatever the chunking. ``records`` must be
    sorted by time. When no such gap is inside ``records`` the answer is half a gap past their
    last end; it is valid only if no later record starts before ``answer + min_gap_ns - half``
    (see :func:`cut_is_safe`).
    """
    target_ns = int(target_ns)
    half = int(min_gap_ns) // 2
    rest = int(min_gap_ns) - half
    if len(records) == 0:
        return target_ns
    times = records["time"]
    ends = np.maximum.accumulate(dtypes.endtime(records))
    idx = int(np.searchsorted(times, target_ns, side="left"))
    # gap i lies between ends[i - 1] (nothing before the first record) and times[i]
    before = np.concatenate(([np.iinfo(np.int64).min // 4], ends[:-1]))[idx:]
    cuts = np.maximum(before + half, target_ns)
    wide = np.flatnonzero(times[idx:] - cuts >= rest)
    if len(wide):
        return int(cuts[wide[0]])
    return max(target_ns, int(ends[-1]) + half)


def cut_is_safe(cut_ns: int, watermark_ns: int, min_gap_ns: int = 0) -> bool:
    """Whether a cut from :func:`first_gap_at_or_after` is final, given that no record not yet
    seen starts before ``watermark_ns``."""
    return cut_ns + int(min_gap_ns) - int(min_gap_ns) // 2 <= watermark_ns


def rechunk_in_gaps(
    blocks: Iterable[tuple[np.ndarray, int]],
    chunk_duration_ns: float | None,
    start_ns: int,
    end_ns: int | None = None,
    source: str = "records",
    min_gap_ns: int = 0,
) -> Iterator[tuple[int, int, np.ndarray]]:
    """Re-cut ``(records, watermark_ns)`` blocks into continuous ``(start, end, records)`` chunks.

    Parameters
    ----------
    blocks
        Records sorted by time across blocks, each with a watermark: every later record starts at
        or after it (a slab end for a generator, the next unread trigger time for a reader).
    chunk_duration_ns
        Wanted chunk length in ns: a chunk ends at the first gap at or after
        ``chunk_duration_ns`` past its start (or past its first record, so that a long quiet
        stretch joins the next chunk rather than making many empty ones).  ``None`` gives one
        chunk per input block.
    start_ns, end_ns
        Start of the first chunk and end of the last one (``None``: the end of the last record,
        or the last watermark, whichever is later).
    source
        Name used in error messages.
    min_gap_ns
        Cut only in gaps at least this long (see :func:`first_gap_at_or_after`).

    Yields
    ------
    (start_ns, end_ns, records)
        Half-open chunk ranges with ``end`` of one chunk equal to ``start`` of the next.
    """
    chunk_start = int(start_ns)
    buffered: list[np.ndarray] = []
    last_watermark = chunk_start
    previous_watermark: int | None = None
    dtype = None
    for records, watermark in blocks:
        watermark = int(watermark)
        dtype = records.dtype
        if len(records):
            if records["time"][0] < chunk_start:
                msg = (
                    f"{source}: records are not time-ordered across blocks: a record at "
                    f"{int(records['time'][0])} ns came after the chunk boundary {chunk_start} ns."
                )
                raise WfaChunkError(msg)
            buffered.append(records)
        if watermark < last_watermark:
            msg = f"{source}: watermark went back in time ({watermark} < {last_watermark} ns)."
            raise WfaChunkError(msg)
        last_watermark = watermark
        step = None if chunk_duration_ns is None else max(int(np.ceil(chunk_duration_ns)), 1)
        if step is not None and buffered and max(chunk_start, int(buffered[0]["time"][0])) + step > watermark:
            continue  # no cut possible yet: keep the blocks as they are instead of merging them again
        buf = np.concatenate(buffered) if len(buffered) > 1 else (buffered[0] if buffered else records[:0])
        buffered = [buf] if len(buf) else []
        if chunk_duration_ns is None:
            # about one chunk per block: cut near the previous block's watermark once the records
            # after it are known, so the width of the gap there can be judged
            if previous_watermark is not None and previous_watermark > chunk_start:
                cut = first_gap_at_or_after(buf, previous_watermark, min_gap_ns)
                if cut_is_safe(cut, watermark, min_gap_ns):
                    chunk, buf = _split(buf, cut)
                    yield chunk_start, cut, chunk
                    chunk_start = cut
            previous_watermark = watermark
            buffered = [buf] if len(buf) else []
            continue
        # a chunk holds about ``step`` ns of data after its first record, so long quiet
        # stretches join the next chunk instead of becoming a stream of empty chunks
        while len(buf):
            target = max(chunk_start, int(buf["time"][0])) + step
            if target > watermark:
                break
            cut = first_gap_at_or_after(buf, target, min_gap_ns)
            if not cut_is_safe(cut, watermark, min_gap_ns):
                break
            chunk, buf = _split(buf, cut)
            yield chunk_start, cut, chunk
            chunk_start = cut
        buffered = [buf] if len(buf) else []
    if dtype is None:
        return
    buf = (np.concatenate(buffered) if len(buffered) > 1 else buffered[0]) if buffered else None
    final_end = last_watermark if end_ns is None else int(end_ns)
    if buf is not None and len(buf):
        final_end = max(final_end, int(dtypes.endtime(buf).max()))
    if final_end > chunk_start or buf is not None:
        yield chunk_start, max(final_end, chunk_start), (buf if buf is not None else np.zeros(0, dtype))


def _split(buf: np.ndarray, cut: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``buf`` starting before ``cut``, and the rest."""
    n = int(np.searchsorted(buf["time"], cut, side="left"))
    return buf[:n], buf[n:]


def merge_sorted_streams(
    streams: list[Iterator[np.ndarray]], dtype: np.dtype
) -> Iterator[tuple[np.ndarray, int]]:
    """Merge per-file streams of time-sorted record blocks into ``(records, watermark_ns)``.

    Each stream yields blocks sorted by time, later blocks never earlier than former ones (one
    channel file of a digitizer).  The output blocks are sorted by (time, channel) and every
    later record starts at or after the block's watermark; the last watermark is the end of the
    last record.  Only about one block per stream is held in memory.
    """
    iterators = [iter(s) for s in streams]
    pending: list[np.ndarray] = [np.zeros(0, dtype) for _ in iterators]
    last_seen = [np.iinfo(np.int64).min] * len(iterators)
    alive = [True] * len(iterators)
    run_end = np.iinfo(np.int64).min

    def pull(i: int) -> None:
        nonlocal run_end
        block = next(iterators[i], None)
        if block is None:
            alive[i] = False
            return
        if len(block):
            pending[i] = np.concatenate([pending[i], block]) if len(pending[i]) else block
            last_seen[i] = int(block["time"][-1])
            run_end = max(run_end, int(dtypes.endtime(block).max()))

    for i in range(len(iterators)):
        pull(i)
    while any(alive):
        # every stream still open can only deliver records at or after its last seen time
        open_streams = [i for i in range(len(iterators)) if alive[i]]
        watermark = min(last_seen[i] for i in open_streams)
        ready = []
        for i in range(len(iterators)):
            n = int(np.searchsorted(pending[i]["time"], watermark, side="left"))
            if n:
                ready.append(pending[i][:n])
                pending[i] = pending[i][n:]
        if ready:
            yield _sorted_by_time(np.concatenate(ready)), watermark
        slowest = min(open_streams, key=lambda i: last_seen[i])
        pull(slowest)
    rest = [p for p in pending if len(p)]
    if rest:
        yield _sorted_by_time(np.concatenate(rest)), run_end
    elif run_end > np.iinfo(np.int64).min:
        yield np.zeros(0, dtype), run_end


def _sorted_by_time(records: np.ndarray) -> np.ndarray:
    if "channel" in (records.dtype.names or ()):
        order = np.lexsort((records["channel"], records["time"]))
    else:
        order = np.argsort(records["time"], kind="stable")
    return records[order]
