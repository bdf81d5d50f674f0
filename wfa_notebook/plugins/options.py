"""Plugin options as descriptors: ``threshold_adc = Option(default=15.0, type=float, help=...)``."""
from __future__ import annotations

from typing import Any

from ..errors import WfaConfigError

__all__ = ["Option", "REQUIRED"]


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


#: Default of an option that has no default: the user must set it in the config.
REQUIRED: Any = _Required()


class Option:
    """A configurable, documented and (by default) lineage-tracked plugin option.

    Parameters
    ----------
    default : value used when the config does not set the option; ``REQUIRED`` for none.
    type : type or tuple of types the value must have (ints are accepted for floats).
    help : one line a physicist understands, with the unit.
    track : whether the value is part of the lineage hash (False for options that cannot change
        results, such as a chunk size or a progress flag).
    choices : optional collection of allowed values.
    """

    def __init__(
        self,
        default: Any = REQUIRED,
        type: type | tuple[type, ...] | None = None,
        help: str = "",
        track: bool = True,
        choices: tuple | list | None = None,
    ):
        self.default = default
        self.type = type
        self.help = help
        self.track = track
        self.choices = tuple(choices) if choices is not None else None
        self.name = "<unnamed>"
        self.owner_name = "<plugin>"

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name
        self.owner_name = owner.__name__

    def __repr__(self) -> str:
        return f"Option({self.name!r}, default={self.default!r}, help={self.help!r})"

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        values = instance.__dict__.get("_option_values")
        if values is not None and self.name in values:
            return values[self.name]
        if self.default is REQUIRED:
            msg = (
                f"{type(instance).__name__}.{self.name} has no default and was not configured. "
                f"Set it with context.set_config({{{self.name!r}: ...}})."
            )
            raise WfaConfigError(msg)
        return self.default

    def __set__(self, instance: Any, value: Any) -> None:
        msg = (
            f"{type(instance).__name__}.{self.name} is an option: set it through the Context "
            f"config (context.set_config({{{self.name!r}: {value!r}}})), not on the plugin."
        )
        raise AttributeError(msg)

    def validate(self, value: Any, plugin_name: str) -> Any:
        """Return ``value`` converted to the option's type, or raise naming plugin and option."""
        if self.type is not None and value is not None:
            wanted = self.type if isinstance(self.type, tuple) else (self.type,)
            if float in wanted and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if bool not in wanted and isinstance(value, bool) and (int in wanted or float in wanted):
                msg = f"{plugin_name} option {self.name!r}: expected a number, got the bool {value!r}."
                raise WfaConfigError(msg)
            if not isinstance(value, wanted):
                names = " or ".join(t.__name__ for t in wanted)
                msg = (
                    f"{plugin_name} option {self.name!r}: expected {names}, got "
                    f"{type(value).__name__} {value!r}. ({self.help})"
                )
                raise WfaConfigError(msg)
        if self.choices is not None and value not in self.choices:
            msg = (
                f"{plugin_name} option {self.name!r}: expected one of {list(self.choices)}, "
                f"got {value!r}."
            )
            raise WfaConfigError(msg)
        return value
