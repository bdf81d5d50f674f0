"""The Context: registered plugins + configuration + storage, and the calls that get data."""
from __future__ import annotations

import copy
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .chunk import Chunk
from .dtypes import field_help
from .errors import WfaConfigError, WfaDependencyError, WfaStorageError
from .lineage import hash_lineage, plugin_lineage, resolve_order
from .names import validate_name
from .plugins.base import Mapper, Plugin, parallel_mapper, serial_map
from .registry import PluginRegistry, check_config_keys, configure_plugin
from .runner import CorruptCacheFound, Plan, RunStats, build_streams
from .storage import DataKey, Storage
from .tables import Table

__all__ = ["Context"]

# A damaged cache is discarded and recomputed; more rounds than this means something else is wrong.
_MAX_CACHE_REPAIRS = 3


class Context:
    """Registered plugins, their configuration and the cache, with the calls that get data.

    Parameters
    ----------
    storage_dir : folder of the on-disk cache (created when needed). Default ``./wfa_data``.
    config : option values, global (``{"threshold_adc": 10}``) or per data type
        (``{"hits": {"threshold_adc": 10}}``).
    register : plugin classes to register.
    max_workers : chunks computed at once; ``None`` uses the execution layer's choice (the load
        balancer when enabled, else all cores), 1 runs everything in this thread.
    """

    def __init__(
        self,
        storage_dir: str | os.PathLike = "./wfa_data",
        config: dict[str, Any] | None = None,
        register: Iterable[type[Plugin]] = (),
        max_workers: int | None = None,
    ):
        self.storage = Storage(storage_dir)
        self.config: dict[str, Any] = {}
        self._registry = PluginRegistry()
        self.max_workers = _check_max_workers(max_workers)
        self.last_run: RunStats | None = None
        self.register(*register)
        if config:
            self.set_config(config)

    def __repr__(self) -> str:
        types = ", ".join(sorted(self._registry.providers)) or "no plugins"
        return f"Context(storage_dir={str(self.storage.root)!r}; {types})"

    # --- set-up ------------------------------------------------------------------------------

    def register(self, *plugins: type[Plugin]) -> Context:
        """Register plugin classes (validated now; errors name the class)."""
        for plugin in plugins:
            self._registry.register(plugin)
        return self

    @property
    def plugins(self) -> dict[str, type[Plugin]]:
        """Data type -> plugin class providing it."""
        return dict(self._registry.providers)

    def set_config(self, config: dict[str, Any]) -> Context:
        """Update option values (checked against the registered plugins' options)."""
        merged = _merge_config(self.config, config)
        check_config_keys(merged, self._registry)
        self.config = merged
        return self

    def new_context(
        self,
        storage_dir: str | os.PathLike | None = None,
        config: dict[str, Any] | None = None,
        register: Iterable[type[Plugin]] = (),
        max_workers: int | None = None,
        replace_config: bool = False,
    ) -> Context:
        """A copy with changes; this context is left as it is."""
        other = copy.copy(self)
        other._registry = self._registry.copy()
        other.config = {} if replace_config else copy.deepcopy(self.config)
        if storage_dir is not None:
            other.storage = Storage(storage_dir)
        if max_workers is not None:
            other.max_workers = _check_max_workers(max_workers)
        other.last_run = None
        other.register(*register)
        if config:
            other.set_config(config)
        return other

    # --- planning ------------------------------------------------------------------------------

    def _plan(self, run_id: str, targets: Sequence[str], config: dict[str, Any] | None) -> Plan:
        validate_name("run_id", run_id)
        cfg = self.config
        if config:
            cfg = _merge_config(cfg, config)
            check_config_keys(cfg, self._registry)
        providers = self._registry.providers
        order: list[str] = []
        for target in targets:
            validate_name("data type", target)
            for data_type in resolve_order(target, providers):
                if data_type not in order:
                    order.append(data_type)
        plugins, lineages, keys = {}, {}, {}
        for data_type in order:
            plugin = configure_plugin(providers[data_type], cfg, run_id, self)
            plugin.dependency_plugins = {dep: plugins[dep] for dep in plugin.depends_on}
            plugins[data_type] = plugin
            lineages[data_type] = plugin_lineage(plugin, lineages)
            keys[data_type] = DataKey(run_id, data_type, hash_lineage(lineages[data_type]))
        stored = {t for t in order if self.storage.is_stored(keys[t])}
        needed: list[str] = []

        def need(data_type: str) -> None:
            if data_type not in needed:
                if data_type not in stored:
                    for dep in plugins[data_type].depends_on:
                        need(dep)
                needed.append(data_type)

        for target in targets:
            need(target)
        needed.sort(key=order.index)
        return Plan(run_id, list(targets), plugins, keys, lineages, stored, needed)

    def _mapper_for(self, plugin: Plugin) -> Mapper:
        if self.max_workers == 1 or not plugin.parallel:
            return serial_map
        return plugin.plugin_mapper(parallel_mapper(self.max_workers))

    # --- getting data --------------------------------------------------------------------------

    def get_iter(
        self,
        run_id: str,
        targets: str | Sequence[str],
        time_range: tuple[int, int] | None = None,
        config: dict[str, Any] | None = None,
        progress: bool = True,
    ) -> Iterator[Chunk]:
        """Yield the chunks of ``targets`` for ``run_id`` in time order, computing what is missing.

        Several targets with the same rows (e.g. ``["peaks", "peak_basics"]``) are merged into one
        chunk per interval. ``time_range=(start_ns, end_ns)`` keeps rows whose time lies in it.
        """
        names = [targets] if isinstance(targets, str) else list(targets)
        if not names:
            msg = "get_iter: give at least one data type to get."
            raise WfaConfigError(msg)
        if time_range is not None:
            time_range = _check_time_range(time_range)
        label = "+".join(names)
        reporter = _Progress(label, enabled=progress)
        handled_until: int | None = None  # end of the last chunk handed out, ns
        for _attempt in range(_MAX_CACHE_REPAIRS + 1):
            plan = self._plan(run_id, names, config)
            stats = RunStats()
            self.last_run = stats
            streams = build_streams(plan, self.storage, self._mapper_for, stats, time_range)
            merged = _merged(streams, names, label)
            try:
                for chunk in merged:
                    if handled_until is not None and chunk.end <= handled_until:
                        continue  # handed out before a damaged cache was found and repaired
                    handled_until = chunk.end
                    if time_range is not None:
                        chunk = _clip(chunk, time_range)
                        if chunk is None:
                            continue
                    reporter.update(chunk)
                    yield chunk
                reporter.close()
                return
            except CorruptCacheFound as found:
                self.storage.discard(found.key, str(found.error))
            finally:
                merged.close()
        msg = (
            f"get_iter: the cache of run {run_id!r} failed its checks {_MAX_CACHE_REPAIRS + 1} times "
            f"in a row, even after recomputing. Check the disk, or delete {self.storage.root / run_id}."
        )
        raise WfaStorageError(msg)

    def get_array(
        self,
        run_id: str,
        targets: str | Sequence[str],
        time_range: tuple[int, int] | None = None,
        config: dict[str, Any] | None = None,
        progress: bool = True,
    ) -> np.ndarray:
        """All rows of ``targets`` for ``run_id`` as one structured array (see :meth:`get_iter`)."""
        chunks = [c.data for c in self.get_iter(run_id, targets, time_range, config, progress)]
        if not chunks:
            names = [targets] if isinstance(targets, str) else list(targets)
            plan = self._plan(run_id, names, config)
            empty = [Chunk(np.zeros(0, plan.plugins[n].resolved_dtype()), 0, 0, run_id, n) for n in names]
            return Chunk.merge(empty).data
        return np.concatenate(chunks) if len(chunks) > 1 else chunks[0]

    def get_df(self, run_id: str, targets: str | Sequence[str], **kwargs: Any):
        """Rows as a pandas DataFrame (needs pandas); multi-sample fields such as waveforms are left out."""
        try:
            import pandas as pd
        except ImportError:
            msg = "get_df needs pandas: pip install pandas (or use get_array for a numpy array)."
            raise WfaDependencyError(msg) from None
        arr = self.get_array(run_id, targets, **kwargs)
        scalar = [n for n in arr.dtype.names if arr.dtype[n].shape == ()]
        return pd.DataFrame({n: arr[n] for n in scalar})

    def make(self, run_id: str, targets: str | Sequence[str], config: dict[str, Any] | None = None,
             progress: bool = True) -> None:
        """Compute and cache ``targets`` without keeping the rows in memory."""
        for _ in self.get_iter(run_id, targets, config=config, progress=progress):
            pass

    # --- introspection -------------------------------------------------------------------------

    def lineage(self, run_id: str, target: str, config: dict[str, Any] | None = None) -> dict[str, Any]:
        """The full lineage record of ``target`` (plugin, version, options, code, dependencies)."""
        return self._plan(run_id, [target], config).lineages[target]

    def key_for(self, run_id: str, target: str, config: dict[str, Any] | None = None) -> DataKey:
        """The cache key of ``target``: run, data type and lineage hash."""
        return self._plan(run_id, [target], config).keys[target]

    def is_stored(self, run_id: str, target: str, config: dict[str, Any] | None = None) -> bool:
        """Whether ``target`` is cached for ``run_id`` with the current configuration."""
        return self.storage.is_stored(self.key_for(run_id, target, config))

    def configured_plugin(self, run_id: str, target: str, config: dict[str, Any] | None = None) -> Plugin:
        """The plugin providing ``target``, configured as it would run for ``run_id``."""
        return self._plan(run_id, [target], config).plugins[target]

    def storage_path(self, run_id: str, target: str) -> Path:
        """Folder the cache of ``target`` lives (or would live) in."""
        return self.storage.folder(self.key_for(run_id, target))

    def show_config(self, target: str | None = None) -> Table:
        """Options of the plugins ``target`` needs (all plugins if None): default, current, help."""
        providers = self._registry.providers
        types = resolve_order(target, providers) if target else sorted(providers)
        rows = []
        for data_type in types:
            cls = providers[data_type]
            own = self.config.get(data_type) if isinstance(self.config.get(data_type), dict) else {}
            for name, opt in cls.options().items():
                current = own.get(name, self.config.get(name, opt.default))
                rows.append({
                    "data_type": data_type, "option": name, "default": opt.default,
                    "current": current, "tracked": opt.track, "help": opt.help,
                })
        return Table(rows, title=f"Options for {target or 'all plugins'}")

    def data_info(self, target: str) -> Table:
        """Fields of ``target``: name, type, shape and help text with the unit."""
        cls = self._registry.providers.get(target)
        if cls is None:
            resolve_order(target, self._registry.providers)  # raises the clear error
        dtype = self.configured_plugin("info", target).resolved_dtype()
        helps = field_help(dtype)
        rows = [
            {"field": n, "type": str(dtype[n].base), "shape": dtype[n].shape or "", "help": helps[n]}
            for n in dtype.names
        ]
        return Table(rows, title=f"Fields of {target!r} (provided by {cls.__name__})")

    def dependency_tree(self, target: str) -> str:
        """The dependency tree of ``target`` as indented text, each node with its plugin and version."""
        providers = self._registry.providers
        resolve_order(target, providers)
        lines: list[str] = []
        shown: set[str] = set()

        def walk(data_type: str, depth: int) -> None:
            cls = providers[data_type]
            pad = "    " * depth
            if data_type in shown:  # a DAG: each subtree is spelled out once
                lines.append(f"{pad}{data_type}  (see above)")
                return
            shown.add(data_type)
            lines.append(f"{pad}{data_type}  ({cls.__name__} v{cls.__version__})")
            for dep in cls.depends_on:
                walk(dep, depth + 1)

        walk(target, 0)
        return "\n".join(lines)


def _check_max_workers(max_workers: Any) -> int | None:
    if max_workers is not None and (not isinstance(max_workers, int) or max_workers < 1):
        msg = f"Context: max_workers must be None or an int >= 1; got {max_workers!r}."
        raise WfaConfigError(msg)
    return max_workers


def _merge_config(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(update, dict):
        msg = f"Config must be a dict of option values; got {type(update).__name__}."
        raise WfaConfigError(msg)
    merged = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key].update(value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _check_time_range(time_range: Any) -> tuple[int, int]:
    try:
        start, end = (int(t) for t in time_range)
    except (TypeError, ValueError):
        msg = f"time_range must be (start_ns, end_ns); got {time_range!r}."
        raise WfaConfigError(msg) from None
    if end <= start:
        msg = f"time_range must have end > start; got ({start}, {end}) ns."
        raise WfaConfigError(msg)
    return start, end


def _clip(chunk: Chunk, time_range: tuple[int, int]) -> Chunk | None:
    lo, hi = time_range
    if chunk.end <= lo or chunk.start >= hi:
        return None
    times = chunk.data["time"]
    data = chunk.data[(times >= lo) & (times < hi)]
    return Chunk(data, chunk.start, chunk.end, chunk.run_id, chunk.data_type)


def _merged(streams: dict[str, Iterator[Chunk]], names: list[str], label: str) -> Iterator[Chunk]:
    if len(names) == 1:
        yield from streams[names[0]]
        return
    for group in zip(*(streams[n] for n in names)):
        yield Chunk.merge(list(group), data_type=label)


class _Progress:
    """A one-line progress report on stderr, only when a person is watching a terminal."""

    def __init__(self, label: str, enabled: bool):
        self.label = label
        self.enabled = enabled and sys.stderr.isatty()
        self.rows = 0
        self.chunks = 0

    def update(self, chunk: Chunk) -> None:
        self.rows += len(chunk)
        self.chunks += 1
        if self.enabled:
            sys.stderr.write(f"\r{self.label}: {self.chunks} chunks, {self.rows} rows, up to {chunk.end / 1e9:.3f} s")
            sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")

