"""StreamingPlugin: chunk-at-a-time processing with an optional halo and its own load balancer."""
from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..chunk import Chunk
from ..dtypes import endtime
from ..errors import WfaPluginError
from .base import Mapper, Plugin, align_chunks

__all__ = ["StreamingPlugin"]


class StreamingPlugin(Plugin):
    """A plugin that processes its first dependency one chunk at a time.

    Implement ``compute_chunk(self, chunk, context, run_id, **kwargs)``: ``chunk`` is a
    :class:`~wfa_notebook.chunk.Chunk` of the first dependency, widened by ``halo_ns`` on both
    sides with rows of the neighbouring chunks, so results near a chunk boundary see the same
    data as anywhere else; the other dependencies arrive as keyword arrays. Rows returned outside
    the original chunk are dropped, so output stays aligned with the input chunks.

    Set ``use_load_balancer = True`` (and ``load_balancer_config``) to give the plugin its own
    :class:`~wfa_notebook.load_balancer.DynamicLoadBalancer` deciding how many chunks run at once.
    """

    #: Rows within this many ns of a chunk boundary are shown to both neighbouring chunks.
    halo_ns: int = 0
    #: Give the plugin its own load balancer (off by default: plain execution).
    use_load_balancer: bool = False
    #: Arguments of the plugin's DynamicLoadBalancer (min_workers, max_workers, cpu_threshold ...).
    load_balancer_config: dict[str, Any] = {}

    @classmethod
    def _validate_compute(cls) -> None:
        name = cls.__name__
        if not cls.depends_on:
            msg = f"Plugin {name}: a StreamingPlugin needs at least one dependency; got ()."
            raise WfaPluginError(msg)
        if cls.compute_chunk is StreamingPlugin.compute_chunk:
            msg = (
                f"Plugin {name}: expected a compute_chunk(self, chunk, context, run_id, **kwargs) "
                "method; none found."
            )
            raise WfaPluginError(msg)
        if not isinstance(cls.halo_ns, (int, np.integer)) or cls.halo_ns < 0:
            msg = f"Plugin {name}: 'halo_ns' must be a non-negative int of ns; got {cls.halo_ns!r}."
            raise WfaPluginError(msg)

    def compute_chunk(self, chunk: Chunk, context: Any, run_id: str, **kwargs: Any) -> np.ndarray | Chunk:
        raise NotImplementedError

    def iter_compute(self, inputs: dict[str, Iterator[Chunk]], mapper: Mapper) -> Iterator[Chunk]:
        main = self.depends_on[0]
        halo = int(self.halo_ns)

        def task(window: tuple[list[Chunk], dict[str, Chunk], list[Chunk]]) -> Chunk:
            before, current, after = window
            chunk = current[main]
            if halo:
                chunk = _widen(chunk, before, after, halo)
            others = {dep: c.data for dep, c in current.items() if dep != main}
            result = self.compute_chunk(chunk, self.context, self.run_id, **others)
            if isinstance(result, Chunk):
                result = result.data
            start, end = current[main].start, current[main].end
            if halo and isinstance(result, np.ndarray) and len(result):
                times = result["time"]
                result = result[(times >= start) & (times < end)]
            return self.make_output(result, start, end)

        aligned = align_chunks(inputs, type(self).__name__)
        windows = _windows(aligned, main, halo) if halo else (([], group, []) for group in aligned)
        yield from self._plugin_mapper(mapper)(task, windows)

    def _plugin_mapper(self, mapper: Mapper) -> Mapper:
        """The mapper this plugin's chunks run through (its own balancer when it has one)."""
        return mapper


def _windows(groups: Iterator[dict[str, Chunk]], main: str, halo_ns: int) -> Iterator[tuple]:
    """Yield (chunks before, current, chunks after) where before/after reach ``halo_ns`` away.

    Small chunks mean the halo can span several neighbours, so look-ahead is by time, not count.
    """
    before: deque[dict[str, Chunk]] = deque()
    ahead: deque[dict[str, Chunk]] = deque()
    exhausted = False
    while True:
        if not ahead:
            nxt = None if exhausted else next(groups, None)
            if nxt is None:
                return
            ahead.append(nxt)
        current = ahead.popleft()
        reach = current[main].end + halo_ns
        while not exhausted and (not ahead or ahead[-1][main].end < reach):
            nxt = next(groups, None)
            if nxt is None:
                exhausted = True
            else:
                ahead.append(nxt)
        while before and before[0][main].end <= current[main].start - halo_ns:
            before.popleft()
        yield [b[main] for b in before], current, [a[main] for a in ahead if a[main].start < reach]
        before.append(current)


def _widen(chunk: Chunk, before: list[Chunk], after: list[Chunk], halo_ns: int) -> Chunk:
    start, end = chunk.start, chunk.end
    parts = [chunk.data]
    if before:
        start = max(before[0].start, chunk.start - halo_ns)
        parts = [c.data[c.data["time"] >= start] for c in before] + parts
    if after:
        end = min(after[-1].end, chunk.end + halo_ns)
        parts += [c.data[endtime(c.data) <= end] for c in after]
    data = np.concatenate(parts) if len(parts) > 1 else chunk.data
    return Chunk(data, start, end, chunk.run_id, chunk.data_type)
