"""Streams chunks through a chain of configured plugins, loading what is cached, saving the rest."""
from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .chunk import Chunk
from .errors import WfaCacheCorruptError, WfaPluginError
from .plugins.base import Mapper, Plugin, align_chunks, serial_map
from .storage import DataKey, Storage

__all__ = ["Plan", "CorruptCacheFound", "build_streams", "RunStats"]


class CorruptCacheFound(Exception):
    """Internal: a cache turned out damaged while streaming; the caller discards it and retries."""

    def __init__(self, key: DataKey, error: WfaCacheCorruptError):
        super().__init__(str(error))
        self.key = key
        self.error = error


@dataclass
class Plan:
    """What one request needs: configured plugins, their keys and lineages, and what is stored."""

    run_id: str
    targets: list[str]
    plugins: dict[str, Plugin]
    keys: dict[str, DataKey]
    lineages: dict[str, dict[str, Any]]
    stored: set[str]
    #: Data types that must be loaded or computed, dependencies first.
    needed: list[str]


@dataclass
class RunStats:
    """Counters of one request, for the summary a user sees."""

    chunks: dict[str, int] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    nbytes: dict[str, int] = field(default_factory=dict)
    computed: list[str] = field(default_factory=list)
    loaded: list[str] = field(default_factory=list)

    def count(self, chunk: Chunk) -> None:
        t = chunk.data_type
        self.chunks[t] = self.chunks.get(t, 0) + 1
        self.rows[t] = self.rows.get(t, 0) + len(chunk)
        self.nbytes[t] = self.nbytes.get(t, 0) + chunk.nbytes


def build_streams(
    plan: Plan,
    storage: Storage,
    mapper_for: Callable[[Plugin], Mapper],
    stats: RunStats,
    time_range: tuple[int, int] | None = None,
) -> dict[str, Iterator[Chunk]]:
    """One chunk iterator per target of ``plan``; each data type is computed at most once.

    When every data type to compute is a plain chunk-by-chunk plugin, the whole chain runs as one
    task per input chunk (see :func:`_fused_streams`). Otherwise each data type is a stream of its
    own; one read by several consumers is split with ``itertools.tee``. Either way consumers
    advance chunk by chunk together, so only a few chunks are held in memory at once.
    """
    fused = _fusable(plan)
    if fused:
        return _fused_streams(plan, fused, storage, mapper_for(plan.plugins[fused[0]]), stats)
    consumers: dict[str, int] = {t: 0 for t in plan.needed}
    for data_type in plan.needed:
        if data_type not in plan.stored:
            for dep in plan.plugins[data_type].depends_on:
                consumers[dep] += 1
    for target in plan.targets:
        consumers[target] += 1

    pending: dict[str, list[Iterator[Chunk]]] = {}

    def take(data_type: str) -> Iterator[Chunk]:
        return pending[data_type].pop()

    for data_type in plan.needed:
        key = plan.keys[data_type]
        if data_type in plan.stored:
            # a time range only narrows what is loaded when nothing downstream is computed from it
            only_read = data_type in plan.targets and consumers[data_type] == 1
            stream = _load(storage, key, stats, time_range if only_read else None)
        else:
            plugin = plan.plugins[data_type]
            inputs = {dep: take(dep) for dep in plugin.depends_on}
            stream = _compute(plugin, inputs, mapper_for(plugin), storage, key, plan.lineages[data_type], stats)
        n = consumers[data_type]
        pending[data_type] = list(itertools.tee(stream, n)) if n > 1 else [stream]
    return {target: take(target) for target in plan.targets}


def _fusable(plan: Plan) -> list[str]:
    """The data types to compute, if all of them can run fused, in dependency order; else []."""
    to_compute = [t for t in plan.needed if t not in plan.stored and plan.plugins[t].depends_on]
    for data_type in to_compute:
        plugin = plan.plugins[data_type]
        # plugins with their own streaming logic (halo, own balancer) or state across chunks
        # keep a stream of their own
        if not plugin.parallel or type(plugin).iter_compute is not Plugin.iter_compute:
            return []
    return to_compute


def _fused_streams(
    plan: Plan, fused: list[str], storage: Storage, mapper: Mapper, stats: RunStats
) -> dict[str, Iterator[Chunk]]:
    """Run the chain as one task per input chunk: fewer hand-offs between threads, and the load
    balancer sees one call whose tasks are whole chunks, not one call per plugin."""
    roots: dict[str, Iterator[Chunk]] = {}
    for data_type in plan.needed:
        if data_type in fused:
            continue
        key = plan.keys[data_type]
        if data_type in plan.stored:
            roots[data_type] = _load(storage, key, stats, None)
        else:  # a source: read in this thread, in order
            roots[data_type] = _compute(plan.plugins[data_type], {}, serial_map, storage, key,
                                        plan.lineages[data_type], stats)
    stream = _run_fused(plan, fused, roots, storage, mapper, stats)
    copies = itertools.tee(stream, len(plan.targets)) if len(plan.targets) > 1 else [stream]
    return {t: _pick(copy, t) for t, copy in zip(plan.targets, copies)}


def _pick(stream: Iterator[dict[str, Chunk]], data_type: str) -> Iterator[Chunk]:
    for chunks in stream:
        yield chunks[data_type]


def _run_fused(
    plan: Plan,
    fused: list[str],
    roots: dict[str, Iterator[Chunk]],
    storage: Storage,
    mapper: Mapper,
    stats: RunStats,
) -> Iterator[dict[str, Chunk]]:
    plugins = [plan.plugins[t] for t in fused]

    def task(group: dict[str, Chunk]) -> dict[str, Chunk]:
        chunks = dict(group)
        for plugin in plugins:
            chunks[plugin.provides] = plugin.compute_aligned({d: chunks[d] for d in plugin.depends_on})
        return chunks

    for plugin in plugins:
        stats.computed.append(plugin.provides)
        plugin.setup()
    writers = {
        p.provides: storage.writer(plan.keys[p.provides], p.resolved_dtype(), plan.lineages[p.provides])
        for p in plugins if p.save
    }
    try:
        for chunks in mapper(task, align_chunks(roots, "the chain")):
            for data_type in fused:
                if data_type in writers:
                    writers[data_type].write(chunks[data_type])
                stats.count(chunks[data_type])
            yield chunks
        for writer in writers.values():
            writer.commit()
    finally:
        # only an error, an interrupt or an early stop leaves a writer uncommitted: its partial
        # result is deleted, never left where it could be read back
        for writer in writers.values():
            writer.abort()


def _load(storage: Storage, key: DataKey, stats: RunStats, time_range) -> Iterator[Chunk]:
    stats.loaded.append(key.data_type)
    try:
        for chunk in storage.iter_chunks(key, time_range):
            stats.count(chunk)
            yield chunk
    except WfaCacheCorruptError as exc:
        raise CorruptCacheFound(key, exc) from exc


def _compute(
    plugin: Plugin,
    inputs: dict[str, Iterator[Chunk]],
    mapper: Mapper,
    storage: Storage,
    key: DataKey,
    lineage: dict[str, Any],
    stats: RunStats,
) -> Iterator[Chunk]:
    stats.computed.append(key.data_type)
    plugin.setup()
    writer = storage.writer(key, plugin.resolved_dtype(), lineage) if plugin.save else None
    previous_end = None
    try:
        for chunk in plugin.iter_compute(inputs, mapper):
            if not isinstance(chunk, Chunk):
                msg = f"Plugin {type(plugin).__name__} yielded {type(chunk).__name__}; expected Chunk."
                raise WfaPluginError(msg)
            if previous_end is not None and chunk.start != previous_end:
                msg = (
                    f"Plugin {type(plugin).__name__} broke the stream of {key.data_type!r}. "
                    f"Promised: a chunk starting at {previous_end} ns. Delivered: {chunk.start} ns."
                )
                raise WfaPluginError(msg)
            previous_end = chunk.end
            if writer is not None:
                writer.write(chunk)
            stats.count(chunk)
            yield chunk
        if writer is not None:
            writer.commit()
    finally:
        # Reached with the writer uncommitted only on an error, an interrupt or an early stop:
        # the partial result is deleted, never left where it could be read back.
        if writer is not None:
            writer.abort()
