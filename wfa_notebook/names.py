"""Validation of names that become parts of file paths (run ids, data types)."""
from __future__ import annotations

import re

from .errors import WfaConfigError

__all__ = ["validate_name"]

# Letters, digits, '_', '-', '.', not starting with '.' (no hidden files, no '..'), at most 128.
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$")


def validate_name(kind: str, value: object) -> str:
    """Return ``value`` if it is safe as one path component, else raise WfaConfigError."""
    if not isinstance(value, str) or not _NAME.match(value) or ".." in value:
        msg = (
            f"Invalid {kind} {value!r}: use 1-128 letters, digits, '_', '-' or '.', not starting "
            "with '.', without path separators or '..' (it becomes a folder name in the cache)."
        )
        raise WfaConfigError(msg)
    return value
