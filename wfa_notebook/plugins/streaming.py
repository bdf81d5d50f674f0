"""StreamingPlugin: chunk-at-a-time processing with an optional halo and its own load balancer."""
from __future__ import annotations

from collections import deque
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from ..chunk import Chunk
from ..dtypes import endtime
from ..errors import WfaPluginError
from .base import Mapper, Plugin, align_chunks, parallel_mapper

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

    def __init__(self) -> None:
        super().__init__()
        self._load_balancer = self._init_load_balancer() if self.use_load_balancer else None

    def _init_load_balancer(self):
        """The plugin's balancer, built from ``load_balancer_config``.

        Instances of one plugin class with the same config share a balancer, so its history
        (task durations, stream lengths) carries over from one run to the next.
        """
        from ..load_balancer import DynamicLoadBalancer

        config = dict(self.load_balancer_config or {})
        key = (type(self), tuple(sorted((k, repr(v)) for k, v in config.items())))
        with _BALANCERS_LOCK:
            balancer = _BALANCERS.get(key)
            if balancer is None:
                try:
                    balancer = DynamicLoadBalancer(**config)
                except TypeError as exc:
                    msg = f"Plugin {type(self).__name__}: load_balancer_config {config!r} is invalid: {exc}"
                    raise WfaPluginError(msg) from None
                _BALANCERS[key] = balancer
        return balancer

    @property
    def load_balancer(self):
        """The plugin's own DynamicLoadBalancer (None when ``use_load_balancer`` is False)."""
        return self._load_balancer

    def get_load_balancer_stats(self) -> dict[str, Any] | None:
        """Statistics of the plugin's own balancer (None when ``use_load_balancer`` is False)."""
        return None if self._load_balancer is None else self._load_balancer.get_statistics()

    def compute_chunk(self, chunk: Chunk, context: Any, run_id: str, **kwargs: Any) -> np.ndarray | Chunk:
        raise NotImplementedError

    def _compute_parallel(self, chunks: Iterable[Chunk], context: Any = None, run_id: str | None = None,
                          max_workers: int | None = None, **kwargs: Any) -> Iterator[Any]:
        """``compute_chunk`` over ``chunks`` in parallel (under the plugin's balancer), in order.

        For use outside a Context; a Context streams through :meth:`iter_compute` instead.
        """
        run_id = self.run_id if run_id is None else run_id

        def task(chunk: Chunk) -> Any:
            return self.compute_chunk(chunk, context, run_id, **kwargs)

        return self.plugin_mapper(parallel_mapper(max_workers))(task, chunks)

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
        yield from self.plugin_mapper(mapper)(task, windows)

    def plugin_mapper(self, mapper: Mapper) -> Mapper:
        """The mapper this plugin's chunks run through: its own balancer's when it has one."""
        if self._load_balancer is None:
            return mapper
        balancer = self._load_balancer
        limit = getattr(mapper, "max_workers", None)

        def balanced(func, items):
            from ..execution import imap_ordered

            return imap_ordered(func, items, max_workers=limit, executor_type="thread", balancer=balancer)

        return balanced


_BALANCERS: dict[tuple, Any] = {}
_BALANCERS_LOCK = threading.Lock()



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
