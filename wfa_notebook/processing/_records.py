"""Finding the record each hit was found in (shared by peak building and pulse properties)."""
from __future__ import annotations

import numba
import numpy as np

from ..errors import WfaChunkError

__all__ = ["record_index"]


@numba.njit(nogil=True, cache=True)
def _match_records(hit_record_time, hit_channel, record_time, record_channel):  # pragma: no cover - compiled
    """Index of the record each hit was found in (same start time and channel), -1 if none."""
    n = len(hit_record_time)
    index = np.full(n, -1, np.int64)
    for i in range(n):
        j = np.searchsorted(record_time, hit_record_time[i])
        # records of all channels of one trigger share a start time: scan them for the channel
        while j < len(record_time) and record_time[j] == hit_record_time[i]:
            if record_channel[j] == hit_channel[i]:
                index[i] = j
                break
            j += 1
    return index


def record_index(hits: np.ndarray, records: np.ndarray, owner: str) -> np.ndarray:
    """Index into ``records`` (sorted by time) of each hit's record; raises naming ``owner``
    when a hit's record is not among them."""
    index = _match_records(
        hits["record_time"].astype(np.int64), hits["channel"].astype(np.int64),
        records["time"].astype(np.int64), records["channel"].astype(np.int64),
    )
    if np.any(index < 0):
        i = int(np.flatnonzero(index < 0)[0])
        msg = (
            f"{owner}: hit {i} (channel {int(hits['channel'][i])}, record time "
            f"{int(hits['record_time'][i])} ns) has no record among the {len(records)} records "
            "given. Pass the records of the same chunk the hits were found in."
        )
        raise WfaChunkError(msg)
    return index
