"""imap_ordered: a lazy, order-preserving parallel map for streams of chunks.

Unlike :func:`~wfa_notebook.execution.parallel_map`, which reads all inputs and returns a list,
:func:`imap_ordered` reads its input only a few items ahead of the results it yields, so a
stream of large chunks is processed in parallel with peak memory of a few chunks per worker.
It is what :class:`~wfa_notebook.plugins.base.StreamingPlugin` uses to process chunks in
parallel.
"""
from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sized
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from ..errors import WfaConfigError, WfaTaskError, WfaWorkerDiedError
from ..load_balancer import Decision, DynamicLoadBalancer
from ..load_balancer.probe import usable_cpu_count
from ..load_balancer.validation import check_count
from . import _tasks
from .backend import EXECUTOR_CHOICES, plain_decision
from .dask import DaskClusterProbe, dask_client

__all__ = ["imap_ordered"]


def imap_ordered(
    func: Callable[[Any], Any],
    iterable: Iterable[Any],
    *,
    max_workers: int | None = None,
    executor_type: str = "thread",
    balancer: DynamicLoadBalancer | None = None,
    prefetch: int | None = None,
) -> Iterator[Any]:
    """Yield ``func(item)`` for each item of ``iterable``, computed in parallel, in input order.

    The input is read lazily: at most ``prefetch`` items are submitted ahead of the result
    being yielded, so memory holds a few items per worker, never the whole stream.

    Parameters
    ----------
    func : callable
        Called once per item (in a worker thread, process or Dask worker).
    iterable : iterable
        Items, e.g. chunks from a reader; may be endless or of unknown length.
    max_workers : int, optional
        At most this many workers. ``max_workers=1`` runs every item inline in the consuming
        thread, without any thread or process. Default: the balancer's choice, else all
        usable cores.
    executor_type : {"thread", "process", "dask"}, default "thread"
        Where ``func`` runs. While :func:`~wfa_notebook.execution.use_dask` is in effect
        items run on the cluster.
    balancer : DynamicLoadBalancer, optional
        Balancer that chooses the workers (re-asked every ``check_interval`` during long
        streams of threads) and records every item's duration and failures. Default: the
        global balancer while load balancing is enabled, else none (plain parallel run).
        The length of an input without ``len()`` is estimated from the streams the balancer
        has seen.
    prefetch : int, optional
        Most items submitted but not yet yielded (default ``2 x workers``; at least 1).

    Returns
    -------
    iterator
        A generator. Closing it early (``close()``, ``break`` out of a ``for`` loop, garbage
        collection) cancels the items not yet started.

    Raises
    ------
    WfaTaskError
        ``func`` raised for an item: the error names its index and chains the original
        exception; items not yet started are cancelled first. Raised when that item's turn to
        be yielded comes, after all earlier results.
    WfaWorkerDiedError
        A worker process died.
    WfaConfigError
        Invalid arguments (raised by this call, before the generator is consumed).

    Examples
    --------
    >>> from wfa_notebook.execution import imap_ordered
    >>> list(imap_ordered(lambda x: x * x, range(6), max_workers=2))
    [0, 1, 4, 9, 16, 25]
    """
    if not callable(func):
        msg = f"imap_ordered: func must be callable, got {type(func).__name__}."
        raise WfaConfigError(msg)
    if executor_type not in EXECUTOR_CHOICES:
        msg = f"imap_ordered: executor_type={executor_type!r}; expected one of {EXECUTOR_CHOICES}."
        raise WfaConfigError(msg)
    max_workers = check_count("imap_ordered", "max_workers", max_workers, none_means="(default)")
    prefetch = check_count("imap_ordered", "prefetch", prefetch, none_means="(default)")
    if balancer is not None and not isinstance(balancer, DynamicLoadBalancer):
        msg = (
            f"imap_ordered: balancer must be a DynamicLoadBalancer or None, got "
            f"{type(balancer).__name__}."
        )
        raise WfaConfigError(msg)
    iter(iterable)  # TypeError now, not at the first next()
    if balancer is None and max_workers != 1:
        from .manager import get_executor_manager

        balancer = get_executor_manager().active_balancer()
    client = dask_client(required=executor_type == "dask")
    kind = "dask" if client is not None else executor_type
    return _Stream(func, iterable, kind, client, max_workers, balancer, prefetch).run()


class _Stream:
    """State of one imap_ordered call."""

    def __init__(
        self,
        func: Callable[[Any], Any],
        iterable: Iterable[Any],
        kind: str,
        client: Any,
        max_workers: int | None,
        balancer: DynamicLoadBalancer | None,
        prefetch: int | None,
    ) -> None:
        self.func = func
        self.iterable = iterable
        self.kind = kind
        self.client = client
        self.max_workers = max_workers
        self.balancer = balancer
        self.prefetch = prefetch
        self.probe = DaskClusterProbe(client) if client is not None else None
        self.nested = _tasks.nested_share()
        self.n_hint = len(iterable) if isinstance(iterable, Sized) else (
            balancer.expected_stream_length() if balancer is not None else None
        )
        self.share: int | None = None
        self.registered = 0
        self.main_pid = os.getpid()
        self.done = 0

    # ------------------------------------------------------------------ decisions
    def decide(self, count_call: bool) -> Decision:
        if self.max_workers == 1:
            return plain_decision(self.n_hint, 1, self.nested, 1)
        if self.balancer is None:
            cores = self.probe.cpu_count() if self.probe is not None else usable_cpu_count()
            return plain_decision(self.n_hint, self.max_workers, self.nested, cores)
        remaining = None if self.n_hint is None else max(1, self.n_hint - self.done)
        return self.balancer.decide(
            remaining,
            executor_type=self.kind,
            max_workers=self.max_workers,
            # Workers of other calls: this stream's own are registered too once it runs.
            workers_in_use=(
                0 if self.nested is not None
                else max(0, _tasks.in_flight.workers - self.registered)
            ),
            nested_share=self.nested,
            probe=self.probe,
            count_call=count_call,
        )

    def call(self, index: int, item: Any) -> tuple[list, Any, Any, Any]:
        """Arguments of :func:`~wfa_notebook.execution._tasks.run_batch` for one item."""
        return ([(self.func, (item,), {})], index, self.share, self.main_pid, True)

    def record(self, outcome: _tasks.BatchOutcome, workers: int) -> Any:
        results, walls, cpu, memory = outcome
        if self.balancer is not None:
            self.balancer.record_tasks(
                walls, cpu_seconds=cpu, memory_bytes=memory,
                executor_type=self.kind, workers=workers,
            )
        return results[0]

    def failure(self, failure: _tasks.TaskFailure) -> WfaTaskError:
        if self.balancer is not None:
            walls = [failure.wall_s] if failure.wall_s is not None else []
            self.balancer.record_tasks(walls, failed=1)
        head = f"imap_ordered({_tasks.callable_name(self.func)}): item {failure.index}"
        return _tasks.task_error(failure, head)

    # ------------------------------------------------------------------ running
    def run(self) -> Iterator[Any]:
        _tasks.note_nested_call()
        decision = self.decide(count_call=True)
        if decision.workers == 1 and self.kind != "dask":
            return self._inline()
        return self._parallel(decision)

    def _inline(self) -> Iterator[Any]:
        self.registered = 1 if self.nested is None else 0
        _tasks.in_flight.add(self.registered)
        try:
            for index, item in enumerate(self.iterable):
                try:
                    outcome = _tasks.run_batch(*self.call(index, item))
                except _tasks.TaskFailure as failure:
                    raise self.failure(failure) from failure.original
                result = self.record(outcome, 1)
                self.done += 1
                yield result
            if self.balancer is not None:
                self.balancer.record_stream_length(self.done)
        finally:
            _tasks.in_flight.remove(self.registered)
            self.registered = 0

    def _parallel(self, decision: Decision) -> Iterator[Any]:
        workers = decision.workers
        self.share = max(1, (self.nested or decision.capacity) // workers)
        pool = _Pool(self.kind, self.client, workers)
        local = self.nested is None and self.kind != "dask"  # cluster workers are not ours
        self.registered = workers if local else 0
        _tasks.in_flight.add(self.registered)
        pending: deque[tuple[int, Any]] = deque()
        iterator = iter(self.iterable)
        exhausted = False
        index = 0
        next_check = self._next_check()
        try:
            while True:
                limit = self.prefetch or 2 * workers
                try:
                    while not exhausted and len(pending) < limit:
                        try:
                            item = next(iterator)
                        except StopIteration:
                            exhausted = True
                            break
                        pending.append((index, pool.submit(self.call(index, item))))
                        index += 1
                    if not pending:
                        break
                    _, future = pending.popleft()
                    outcome = future.result()
                except _tasks.TaskFailure as failure:
                    pool.cancel(pending)
                    raise self.failure(failure) from failure.original
                except BrokenProcessPool as exc:
                    pool.cancel(pending)
                    pool.broken = True
                    if self.balancer is not None:
                        self.balancer.record_tasks([], failed=1)
                    msg = (
                        f"imap_ordered: a worker process died ({type(exc).__name__}: {exc}); "
                        "out of memory, a crash in compiled code or os._exit in the task. "
                        "The pending items were cancelled; the next call starts new workers."
                    )
                    raise WfaWorkerDiedError(msg) from exc
                result = self.record(outcome, workers)
                self.done += 1
                yield result
                if next_check is not None and self.clock() >= next_check:
                    next_check = self._next_check()
                    new_workers = self.decide(count_call=False).workers
                    if new_workers != workers and pool.resizable:
                        pool.resize(new_workers)
                        _tasks.in_flight.remove(self.registered)
                        self.registered = new_workers if local else 0
                        _tasks.in_flight.add(self.registered)
                        workers = new_workers
            if self.balancer is not None:
                self.balancer.record_stream_length(self.done)
        finally:
            pool.cancel(pending)
            pool.close()
            _tasks.in_flight.remove(self.registered)
            self.registered = 0

    def clock(self) -> float:
        probe = self.probe if self.probe is not None else self.balancer.probe
        return probe.clock()

    def _next_check(self) -> float | None:
        if self.balancer is None:
            return None
        return self.clock() + self.balancer.check_interval


class _Pool:
    """Submits items to threads, loky processes or a Dask cluster; cancels and closes."""

    def __init__(self, kind: str, client: Any, workers: int) -> None:
        self.kind = kind
        self.client = client
        self.resizable = kind in ("thread", "dask")
        self.broken = False
        self._process_pool: Any = None
        if kind == "thread":
            self._executor: Any = ThreadPoolExecutor(workers, thread_name_prefix="wfa-imap")
        elif kind == "process":
            from .manager import get_executor_manager

            self._manager = get_executor_manager()
            self._name = f"wfa-imap-process-{workers}"
            self._process_pool = self._manager._acquire(self._name, "process", workers, True)
            self._executor = self._process_pool.executor
        else:
            self._executor = None

    def submit(self, call: tuple) -> Any:
        if self.kind == "dask":
            return self.client.submit(_tasks.run_batch, *call, pure=False)
        return self._executor.submit(_tasks.run_batch, *call)

    def resize(self, workers: int) -> None:
        """New items go to a pool of the new size; running items finish where they are."""
        if self.kind == "thread":
            self._executor.shutdown(wait=False)
            self._executor = ThreadPoolExecutor(workers, thread_name_prefix="wfa-imap")

    def cancel(self, pending: deque[tuple[int, Any]]) -> None:
        futures = [future for _, future in pending]
        pending.clear()
        if self.kind == "dask":
            if futures:
                self.client.cancel(futures)
            return
        for future in futures:
            if isinstance(future, Future):
                future.cancel()

    def close(self) -> None:
        if self.kind == "thread":
            # Threads cannot be stopped: queued items were cancelled, running ones finish in
            # the background and their results are dropped.
            self._executor.shutdown(wait=False, cancel_futures=True)
        elif self.kind == "process" and self._process_pool is not None:
            self._manager._release(self._name, self._process_pool, discard=self.broken)
            self._process_pool = None
