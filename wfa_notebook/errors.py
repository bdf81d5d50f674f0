"""One exception hierarchy for the whole toolkit, rooted at :class:`WfaError`.

Every message names the plugin, file, option or task concerned, shows what was expected and what
was found, and suggests a fix.
"""
from __future__ import annotations

__all__ = [
    "WfaError",
    "WfaConfigError",
    "WfaPluginError",
    "WfaChunkError",
    "WfaStorageError",
    "WfaCacheCorruptError",
    "WfaFormatError",
    "WfaExecutionError",
    "WfaTaskError",
    "WfaWorkerDiedError",
    "WfaDependencyError",
]


class WfaError(Exception):
    """Base class of every error raised on purpose by wfa_notebook."""


class WfaConfigError(WfaError, ValueError):
    """An option, argument or name has a value that cannot be used."""


class WfaPluginError(WfaError, TypeError):
    """A plugin declaration is invalid, or a plugin delivered something other than it promised."""


class WfaChunkError(WfaError, ValueError):
    """A chunk invariant (sorted rows, rows inside [start, end), continuity) would break."""


class WfaStorageError(WfaError, OSError):
    """The on-disk cache cannot be read or written."""


class WfaCacheCorruptError(WfaStorageError):
    """A cached file is truncated or fails its checksum; it will be recomputed, never returned."""


class WfaFormatError(WfaError, ValueError):
    """An input file does not have the format it claims (names the file and byte offset)."""


class WfaExecutionError(WfaError, RuntimeError):
    """Parallel execution failed."""


class WfaTaskError(WfaExecutionError):
    """A task raised; the original exception is chained as ``__cause__``.

    Attributes
    ----------
    task_index : int
        Position of the failing task in the input sequence.
    """

    def __init__(self, message: str, task_index: int | None = None):
        super().__init__(message)
        self.task_index = task_index


class WfaWorkerDiedError(WfaExecutionError):
    """A worker process died (killed, crashed, out of memory) while running a task."""


class WfaDependencyError(WfaError, ImportError):
    """An optional dependency is needed for this feature but is not installed."""
