"""Comparing found hits with the truth table of a synthetic run."""
from __future__ import annotations

import numpy as np

from ..dtypes import endtime

__all__ = ["pulses_found"]


def pulses_found(truth: np.ndarray, hits: np.ndarray) -> np.ndarray:
    """Boolean mask over ``truth``: a hit on the pulse's channel contains the pulse maximum.

    Parameters
    ----------
    truth : truth table of :meth:`SyntheticRun.truth` (``channel``, ``time_ns``).
    hits : hits of the same run (``channel``, ``time``, ``length``, ``dt``).
    """
    found = np.zeros(len(truth), dtype=bool)
    if not len(truth) or not len(hits):
        return found
    for channel in np.unique(truth["channel"]):
        mine = truth["channel"] == channel
        h = hits[hits["channel"] == channel]
        if not len(h):
            continue
        order = np.argsort(h["time"], kind="stable")
        starts, ends = h["time"][order], endtime(h[order])
        ends = np.maximum.accumulate(ends)  # hits may nest; the latest end so far covers them
        t = truth["time_ns"][mine]
        i = np.searchsorted(starts, t, side="right") - 1
        found[mine] = (i >= 0) & (t < ends[np.clip(i, 0, None)])
    return found
