"""Argument checks shared by the public kernel wrappers."""
from __future__ import annotations

import numpy as np

from ..errors import WfaChunkError, WfaConfigError

__all__ = ["require_fields", "check_sorted"]


def require_fields(array: np.ndarray, fields: tuple[str, ...], what: str, owner: str, hint: str) -> None:
    """Raise WfaConfigError naming ``owner`` when ``array`` lacks any of ``fields``."""
    names = getattr(getattr(array, "dtype", None), "names", None) or ()
    missing = [f for f in fields if f not in names]
    if missing:
        msg = f"{owner}: {what} lack the fields {missing} (got {list(names)}); {hint}."
        raise WfaConfigError(msg)


def check_sorted(time: np.ndarray, what: str, owner: str) -> None:
    """Raise WfaChunkError naming ``owner`` when ``time`` decreases anywhere."""
    if len(time) > 1:
        bad = np.flatnonzero(np.diff(time) < 0)
        if len(bad):
            i = int(bad[0])
            msg = (
                f"{owner}: {what} must be sorted by time; row {i + 1} starts at {time[i + 1]} ns, "
                f"before row {i} at {time[i]} ns. Sort with np.sort(array, order='time')."
            )
            raise WfaChunkError(msg)
