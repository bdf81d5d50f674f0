"""wfa_notebook: waveform analysis for particle- and radiation-detector digitizers, notebook first.

Data flows through plugins as time-ordered chunks of numpy structured arrays; a Context resolves
which plugins a request needs, streams chunks through them and caches every result on disk under a
hash of its full lineage.
"""
from __future__ import annotations

from importlib import import_module
from typing import Any

# --- core: light, imported eagerly ---------------------------------------------------------------
from .chunk import Chunk
from .context import Context
from .errors import (
    WfaCacheCorruptError,
    WfaChunkError,
    WfaConfigError,
    WfaDependencyError,
    WfaError,
    WfaExecutionError,
    WfaFormatError,
    WfaPluginError,
    WfaStorageError,
    WfaTaskError,
    WfaWorkerDiedError,
)
from .plugins import REQUIRED, Option, Plugin, SourcePlugin, StreamingPlugin

__version__ = "0.1.0"

__all__ = [
    "__version__",
    # core
    "Chunk",
    "Context",
    "Plugin",
    "SourcePlugin",
    "StreamingPlugin",
    "Option",
    "REQUIRED",
    # built-in chain and data (loaded on first use: they compile numba kernels)
    "default_context",
    "synthetic_run",
    # errors
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

# Names resolved lazily so that `import wfa_notebook` stays fast and needs no numba compile,
# IPython or ipywidgets.
_LAZY = {
    "default_context": ("wfa_notebook.defaults", "default_context"),
    "synthetic_run": ("wfa_notebook.datasets", "synthetic_run"),
}


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext wfa_notebook``: register the magics (see wfa_notebook.magics)."""
    from .magics import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext wfa_notebook``: remove the magics again."""
    from .magics import unload_ipython_extension as unload

    unload(ipython)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(import_module(module), attr)
        globals()[name] = value
        return value
    msg = f"module 'wfa_notebook' has no attribute {name!r}"
    raise AttributeError(msg)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
