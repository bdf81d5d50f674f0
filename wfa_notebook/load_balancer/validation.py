"""Checks of worker counts and sizes, shared by the balancer and the execution layer."""
from __future__ import annotations

from typing import Any

from ..errors import WfaConfigError

__all__ = ["is_whole_number", "is_real_number", "check_count"]


def is_whole_number(value: Any) -> bool:
    """An int or numpy integer, not a bool."""
    return not isinstance(value, (bool, float)) and (isinstance(value, int) or hasattr(value, "__index__"))


def is_real_number(value: Any) -> bool:
    """An int, float or numpy number, not a bool."""
    return not isinstance(value, bool) and (
        isinstance(value, (int, float)) or (type(value).__module__ == "numpy" and hasattr(value, "__float__"))
    )


def check_count(owner: str, name: str, value: Any, none_means: str | None = None) -> Any:
    """Raise WfaConfigError unless ``value`` is a whole number >= 1 (or None when ``none_means``)."""
    if value is None and none_means is not None:
        return None
    if not is_whole_number(value) or value < 1:
        alternative = f", or None {none_means}" if none_means is not None else ""
        msg = f"{owner}: {name}={value!r} must be an integer >= 1{alternative}."
        raise WfaConfigError(msg)
    return int(value)
