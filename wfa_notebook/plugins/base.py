"""Plugin base classes: declarations (provides, depends_on, dtype, options) plus a short compute.

A plugin turns one chunk's worth of each dependency into one chunk of its own data type. The
Context decides which plugins run, feeds them aligned chunks and stores what they deliver.
"""
from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from ..chunk import Chunk
from ..dtypes import check_time_fields
from ..errors import WfaChunkError, WfaPluginError
from .options import Option

__all__ = ["Plugin", "SourcePlugin", "Mapper", "serial_map", "parallel_mapper", "align_chunks"]

#: Runs a function over an iterable, yielding results in input order (serial or parallel).
Mapper = Callable[[Callable[[Any], Any], Iterable[Any]], Iterator[Any]]


def serial_map(func: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
    """The mapper used when nothing runs in parallel."""
    for item in items:
        yield func(item)


def parallel_mapper(max_workers: int | None = None) -> Mapper:
    """A mapper running items on threads through the execution layer (balanced when enabled)."""

    def mapper(func: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        from ..execution import imap_ordered  # loaded on first parallel use

        return imap_ordered(func, items, max_workers=max_workers, executor_type="thread")

    mapper.max_workers = max_workers  # type: ignore[attr-defined]
    return mapper


_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CHUNK_BOUNDS = ("start", "end")


class Plugin:
    """Base class of every plugin.

    Subclasses declare ``provides`` (str), ``depends_on`` (tuple of str), ``dtype`` (or override
    :meth:`infer_dtype`), ``__version__`` and options as :class:`Option` descriptors, and implement
    ``compute(self, <one argument per dependency>)`` returning a structured array (or a Chunk) for
    one chunk. ``compute`` may also take ``start`` and ``end`` (ns) of the current chunk.
    """

    provides: str = ""
    depends_on: tuple[str, ...] = ()
    dtype: np.dtype | None = None
    __version__: str = "0.0.0"
    #: True when chunks are independent, so the Context may compute several at once.
    parallel: bool = True
    #: Whether the Context caches this data type on disk.
    save: bool = True
    #: Modules or functions (e.g. kernels) whose source is hashed into the lineage with the class.
    code_dependencies: tuple = ()

    def __init__(self) -> None:
        self._option_values: dict[str, Any] = {}
        self.run_id: str = ""
        self.context: Any = None
        #: Configured plugins of the dependencies, set by the Context before setup().
        self.dependency_plugins: dict[str, Plugin] = {}
        self._dtype: np.dtype | None = None
        self._wants_bounds: tuple[str, ...] | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} provides {self.provides!r} v{self.__version__}>"

    # --- declarations ------------------------------------------------------------------------

    @classmethod
    def options(cls) -> dict[str, Option]:
        """All options of the plugin, including inherited ones, by name."""
        found: dict[str, Option] = {}
        for klass in reversed(cls.__mro__):
            for name, value in vars(klass).items():
                if isinstance(value, Option):
                    found[name] = value
        return found

    @classmethod
    def validate_declaration(cls) -> None:
        """Raise WfaPluginError naming the class if a declaration is missing or malformed."""
        name = cls.__name__

        def fail(what: str, expected: str, got: Any) -> None:
            msg = f"Plugin {name}: {what}: expected {expected}, got {got!r}."
            raise WfaPluginError(msg)

        if not isinstance(cls.provides, str) or not _IDENTIFIER.match(cls.provides):
            fail("'provides'", "a data type name such as 'hits' (letters, digits, '_')", cls.provides)
        if not isinstance(cls.depends_on, tuple):
            hint = f" (write ({cls.depends_on!r},))" if isinstance(cls.depends_on, str) else ""
            fail("'depends_on'", f"a tuple of data type names{hint}", cls.depends_on)
        for dep in cls.depends_on:
            if not isinstance(dep, str) or not _IDENTIFIER.match(dep):
                fail("'depends_on' entry", "a data type name", dep)
        if len(set(cls.depends_on)) != len(cls.depends_on):
            fail("'depends_on'", "each data type once", cls.depends_on)
        if cls.provides in cls.depends_on:
            fail("'depends_on'", f"not to contain its own data type {cls.provides!r}", cls.depends_on)
        if not isinstance(cls.__dict__.get("__version__", cls.__version__), str):
            fail("'__version__'", "a string such as '0.1.0'", cls.__version__)
        has_infer = cls.infer_dtype is not Plugin.infer_dtype
        if cls.dtype is None and not has_infer:
            fail("'dtype'", "a numpy structured dtype, or an infer_dtype() method", None)
        if cls.dtype is not None:
            try:
                check_time_fields(np.dtype(cls.dtype), f"Plugin {name}")
            except TypeError as exc:
                raise WfaPluginError(str(exc)) from None
        for opt_name, opt in cls.options().items():
            if opt_name in cls.depends_on or opt_name in ("provides", "depends_on", "dtype"):
                fail(f"option {opt_name!r}", "a name that is not a dependency or declaration", opt_name)
        cls._validate_compute()

    @classmethod
    def _validate_compute(cls) -> None:
        name = cls.__name__
        if not cls.depends_on:
            msg = (
                f"Plugin {name}: 'depends_on' is empty; expected a tuple of data types. A plugin "
                "that reads files or generates data should subclass SourcePlugin."
            )
            raise WfaPluginError(msg)
        if cls.compute is Plugin.compute:
            msg = f"Plugin {name}: expected a compute({', '.join(cls.depends_on)}) method; none found."
            raise WfaPluginError(msg)
        params = [
            p.name
            for p in inspect.signature(cls.compute).parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        ]
        wanted = [p for p in params if p not in _CHUNK_BOUNDS]
        if sorted(wanted) != sorted(cls.depends_on):
            msg = (
                f"Plugin {name}: compute() arguments must be the dependencies. Expected "
                f"{list(cls.depends_on)} (plus optional 'start', 'end'), got {params}."
            )
            raise WfaPluginError(msg)

    # --- per-run set-up ------------------------------------------------------------------------

    def infer_dtype(self) -> np.dtype:
        """The output dtype; override when it depends on options or input files."""
        return np.dtype(self.dtype)

    def resolved_dtype(self) -> np.dtype:
        """The output dtype, computed once per plugin instance and checked."""
        if self._dtype is None:
            dtype = np.dtype(self.infer_dtype())
            try:
                check_time_fields(dtype, f"Plugin {type(self).__name__}")
            except TypeError as exc:
                raise WfaPluginError(str(exc)) from None
            self._dtype = dtype
        return self._dtype

    def dependency_dtype(self, data_type: str) -> np.dtype:
        """The dtype a dependency delivers (for ``infer_dtype`` of plugins that follow their input)."""
        provider = self.dependency_plugins.get(data_type)
        if provider is None:
            msg = (
                f"Plugin {type(self).__name__}: the dtype of {data_type!r} is known only once a "
                f"Context has resolved the plugin's dependencies {list(self.depends_on)}."
            )
            raise WfaPluginError(msg)
        return provider.resolved_dtype()

    def setup(self) -> None:
        """Runs once per run before the first chunk; options and ``run_id`` are readable here."""

    def compute(self, **dependencies: np.ndarray) -> np.ndarray | Chunk:
        raise NotImplementedError

    # --- chunk streaming -----------------------------------------------------------------------

    def plugin_mapper(self, mapper: Mapper) -> Mapper:
        """The mapper this plugin's chunks run through; a plugin with its own balancer wraps it."""
        return mapper

    def iter_compute(self, inputs: dict[str, Iterator[Chunk]], mapper: Mapper) -> Iterator[Chunk]:
        """Yield output chunks, one per aligned set of input chunks, in time order."""
        yield from mapper(self.compute_aligned, align_chunks(inputs, type(self).__name__))

    def compute_aligned(self, aligned: dict[str, Chunk]) -> Chunk:
        """One output chunk from one chunk of each dependency (all covering the same interval)."""
        first = next(iter(aligned.values()))
        kwargs: dict[str, Any] = {dep: aligned[dep].data for dep in self.depends_on}
        if self._wants_bounds is None:
            params = inspect.signature(self.compute).parameters
            self._wants_bounds = tuple(p for p in _CHUNK_BOUNDS if p in params)
        if "start" in self._wants_bounds:
            kwargs["start"] = first.start
        if "end" in self._wants_bounds:
            kwargs["end"] = first.end
        return self.make_output(self.compute(**kwargs), first.start, first.end)

    def make_output(self, result: Any, start: int, end: int) -> Chunk:
        """Check what compute returned against what the plugin promised, and wrap it in a Chunk."""
        name = type(self).__name__
        if isinstance(result, Chunk):
            if (result.start, result.end) != (start, end):
                msg = (
                    f"Plugin {name} returned a chunk of the wrong interval. Promised: [{start}, "
                    f"{end}) ns (the input chunk). Delivered: [{result.start}, {result.end}) ns."
                )
                raise WfaPluginError(msg)
            result = result.data
        if not isinstance(result, np.ndarray):
            msg = (
                f"Plugin {name}.compute returned {type(result).__name__}; expected a numpy "
                f"structured array of dtype {self.resolved_dtype()} or a Chunk."
            )
            raise WfaPluginError(msg)
        if result.dtype != self.resolved_dtype():
            msg = (
                f"Plugin {name} delivered the wrong dtype for {self.provides!r}. Promised: "
                f"{self.resolved_dtype()}. Delivered: {result.dtype}."
            )
            raise WfaPluginError(msg)
        try:
            return Chunk(result, start, end, self.run_id, self.provides)
        except WfaChunkError as exc:
            msg = f"Plugin {name}: {exc}"
            raise WfaPluginError(msg) from None

    def make_chunk(self, data: np.ndarray, start: int, end: int) -> Chunk:
        """Wrap ``data`` as a chunk of this plugin's data type (for sources and custom plugins)."""
        return self.make_output(data, start, end)


class SourcePlugin(Plugin):
    """A plugin without dependencies that yields chunks from a reader or generator.

    Implement :meth:`iter_chunks` yielding ``self.make_chunk(data, start, end)``; chunks must be
    continuous and cut only where no row straddles the boundary.
    """

    parallel = False
    #: Inputs are already on disk (files) or cheap to regenerate (synthetic): not cached again.
    #: Set ``save = True`` for a slow source.
    save = False

    @classmethod
    def _validate_compute(cls) -> None:
        if cls.depends_on:
            msg = f"Plugin {cls.__name__}: a SourcePlugin has depends_on = (), got {cls.depends_on!r}."
            raise WfaPluginError(msg)
        if cls.iter_chunks is SourcePlugin.iter_chunks:
            msg = f"Plugin {cls.__name__}: a SourcePlugin needs an iter_chunks() method; none found."
            raise WfaPluginError(msg)

    def iter_chunks(self) -> Iterator[Chunk]:
        raise NotImplementedError

    def pulse_polarity(self) -> str | None:
        """'negative' or 'positive' when the input says which way its pulses go, else None."""
        return None

    def input_fingerprint(self) -> str | None:
        """A string that changes when the input changes (file sizes and times); part of lineage."""
        return None

    def iter_compute(self, inputs: dict[str, Iterator[Chunk]], mapper: Mapper) -> Iterator[Chunk]:
        return self.iter_chunks()


def align_chunks(inputs: dict[str, Iterator[Chunk]], owner: str) -> Iterator[dict[str, Chunk]]:
    """Zip dependency streams chunk by chunk, checking that they cover the same intervals."""
    names = list(inputs)
    iterators = [iter(inputs[n]) for n in names]
    previous_end: int | None = None
    while True:
        group: dict[str, Chunk] = {}
        for name, it in zip(names, iterators):
            chunk = next(it, None)
            if chunk is not None:
                group[name] = chunk
        if not group:
            return
        if len(group) != len(names):
            missing = sorted(set(names) - set(group))
            msg = f"Plugin {owner}: inputs {missing} ended before {sorted(group)}; streams must align."
            raise WfaChunkError(msg)
        bounds = {(c.start, c.end) for c in group.values()}
        if len(bounds) != 1:
            detail = ", ".join(f"{n} [{c.start}, {c.end})" for n, c in group.items())
            msg = f"Plugin {owner}: input chunks are not aligned in time: {detail} ns."
            raise WfaChunkError(msg)
        first = next(iter(group.values()))
        if previous_end is not None and first.start != previous_end:
            msg = (
                f"Plugin {owner}: input chunk starts at {first.start} ns but the previous one "
                f"ended at {previous_end} ns; streams must be continuous."
            )
            raise WfaChunkError(msg)
        previous_end = first.end
        yield group
