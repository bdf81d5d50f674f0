"""The ``"wfa-balanced"`` joblib backend: joblib's thread, loky or dask backend, sized by the
load balancer at every call.

>>> import joblib
>>> import wfa_notebook.execution  # registers the backend
>>> with joblib.parallel_config(backend="wfa-balanced"):
...     squares = joblib.Parallel()(joblib.delayed(pow)(i, 2) for i in range(5))
>>> squares
[0, 1, 4, 9, 16]

In :meth:`WfaBalancedBackend.configure` (called by joblib at the start of every ``Parallel``
call) the backend asks the active :class:`~wfa_notebook.load_balancer.DynamicLoadBalancer` how
many workers to use, then configures the underlying joblib backend with that number. Every
task is wrapped so that it is timed inside the worker; durations, CPU time, memory and failures
go back to the balancer as batches complete. joblib's auto-batching is kept (loky's and dask's
own, a thread-tuned one for threads), and the thread-pool sizes of worker processes are pinned
(``cores // max_workers``) so that loky reuses its executor when the number of jobs changes.
"""
from __future__ import annotations

import contextlib
import os
from typing import Any

from joblib import register_parallel_backend
from joblib._parallel_backends import (
    AutoBatchingMixin,
    FallbackToBackend,
    LokyBackend,
    ParallelBackendBase,
    SequentialBackend,
    ThreadingBackend,
)

from ..errors import WfaConfigError
from ..load_balancer import EXECUTOR_TYPES, Decision, DynamicLoadBalancer
from ..load_balancer.probe import usable_cpu_count
from ..load_balancer.validation import check_count
from . import _tasks
from .dask import DaskClusterProbe, dask_client

__all__ = ["WfaBalancedBackend", "BACKEND_NAME", "EXECUTOR_CHOICES", "plain_decision"]

BACKEND_NAME = "wfa-balanced"

#: Accepted values of ``executor_type``.
EXECUTOR_CHOICES = EXECUTOR_TYPES  # one list of executor kinds, the balancer's


class _ThreadAutoBatching(AutoBatchingMixin):
    """joblib's auto-batching with a target batch duration suited to a thread pool."""

    #: joblib's 0.2 s target is tuned for processes (~1 ms per dispatch); a thread pool
    #: dispatches in ~20-40 us. On 2 cores (benchmarks/bench_execution.py and a sweep of
    #: 5 ms-200 ms targets) 10,000 trivial tasks took 28-34 ms and 40 tasks of 2 ms 249-264 ms
    #: whatever the target, within the noise; 20 ms keeps results, progress and cancellation
    #: arriving in small steps.
    MIN_IDEAL_BATCH_DURATION = 0.02
    MAX_IDEAL_BATCH_DURATION = 0.5

    def __init__(self, parallel: Any) -> None:
        super().__init__()
        self.parallel = parallel


def plain_decision(
    n_tasks: int | None, cap: int | None, nested: int | None, cpu_count: int
) -> Decision:
    """Workers when load balancing is off: ``min(max_workers or cores, tasks)``."""
    workers = cap if cap is not None else cpu_count
    parts = [f"load balancing off: {workers} workers ({'max_workers' if cap else 'all cores'})"]
    if nested is not None and nested < workers:
        workers = nested
        parts.append(f"called from inside a parallel task, whose share is {nested}")
    pool_workers = max(1, workers)
    if n_tasks is not None and n_tasks < workers:
        workers = max(1, n_tasks)
        parts.append(f"only {n_tasks} tasks")
    inputs = {"cpu_count": cpu_count, "n_tasks": n_tasks, "call_max_workers": cap,
              "nested_share": nested}
    return Decision(workers=max(1, workers), capacity=cpu_count, reason="; ".join(parts),
                    inputs=inputs, pool_workers=pool_workers)


class WfaBalancedBackend(ParallelBackendBase):
    """joblib backend whose number of workers is chosen by the load balancer at every call.

    Parameters
    ----------
    nesting_level : int, optional
        Set by joblib.
    inner_max_num_threads : int, optional
        Threads of BLAS/OpenMP pools inside worker processes; default
        ``max(1, cores // max_workers)``, constant so loky can reuse its workers.
    executor_type : {"thread", "process", "dask"}, optional
        Where tasks run; default: the Dask cluster chosen with
        :func:`~wfa_notebook.execution.use_dask` if any, else processes when joblib is asked
        to ``prefer="processes"``, else threads.
    balancer : DynamicLoadBalancer, optional
        Balancer to ask; default: the global one while load balancing is enabled.
    use_load_balancer : bool, default True
        False: plain parallel execution with ``max_workers`` (or all cores) workers.
    max_workers : int, optional
        Upper limit of workers (``n_jobs`` of the ``Parallel`` call is another).
    estimated_task_size : int, optional
        Memory one task needs, bytes (for the balancer's memory cap).
    wrap_failures : bool, default False
        Raise a failing task's exception wrapped with its input position (used by
        ``parallel_map``); False keeps joblib's behaviour of raising the task's own exception.

    Notes
    -----
    When the balancer chooses one worker, joblib runs the tasks inline in the calling thread;
    they are then not timed by this backend (``parallel_map`` times them itself).
    """

    default_n_jobs = -1  # "as many workers as the balancer allows"
    supports_retrieve_callback = True
    supports_inner_max_num_threads = True

    def __init__(
        self,
        nesting_level: int | None = None,
        inner_max_num_threads: int | None = None,
        *,
        executor_type: str | None = None,
        balancer: DynamicLoadBalancer | None = None,
        use_load_balancer: bool = True,
        max_workers: int | None = None,
        estimated_task_size: int | None = None,
        wrap_failures: bool = False,
        **backend_kwargs: Any,
    ) -> None:
        super().__init__(
            nesting_level=nesting_level,
            inner_max_num_threads=inner_max_num_threads,
            **backend_kwargs,
        )
        if executor_type is not None and executor_type not in EXECUTOR_CHOICES:
            msg = (
                f"{BACKEND_NAME} backend: executor_type={executor_type!r}; expected one of "
                f"{EXECUTOR_CHOICES} (or None to follow joblib's `prefer`)."
            )
            raise WfaConfigError(msg)
        max_workers = check_count(f"{BACKEND_NAME} backend", "max_workers", max_workers,
                                  none_means="for the balancer's choice")
        self.executor_type = executor_type
        self._balancer = balancer
        self._use_load_balancer = use_load_balancer
        self._max_workers = max_workers
        self._estimated_task_size = estimated_task_size
        self._wrap_failures = wrap_failures
        self._main_pid = os.getpid()
        self._next_index = 0
        self._inner: ParallelBackendBase | None = None
        self._batching: Any = None
        self._kind = executor_type or "thread"
        self._n_jobs = 1
        self._share: int | None = None
        self._registered = 0
        self._active_balancer: DynamicLoadBalancer | None = None
        #: The decision of the latest call (None before the first).
        self.decision: Decision | None = None
        #: True when the latest call ran inline (one worker).
        self.ran_inline = False

    # joblib reads these to honour require="sharedmem" and prefer=...
    @property
    def uses_threads(self) -> bool:  # type: ignore[override]
        return self._kind != "process"

    @property
    def supports_sharedmem(self) -> bool:
        return self._kind != "process"

    def __reduce__(self):
        # Nested backends travel to worker processes with each batch; a balancer (and its
        # locks) stays in the process that owns it.
        return (
            _rebuild_backend,
            (self.nesting_level, self.inner_max_num_threads, self.executor_type,
             self._max_workers),
        )

    # ------------------------------------------------------------------ configuration
    def effective_n_jobs(self, n_jobs: int | None) -> int:
        """Upper bound of workers for ``n_jobs`` (the balancer may choose fewer)."""
        cap = self._requested_cap(n_jobs)
        return cap if cap is not None else usable_cpu_count()

    def _requested_cap(self, n_jobs: int | None) -> int | None:
        if n_jobs == 0 or not isinstance(n_jobs, (int, type(None))) or isinstance(n_jobs, bool):
            msg = (
                f"{BACKEND_NAME} backend: n_jobs={n_jobs!r} has no meaning; use an integer "
                f">= 1 for at most that many workers, -1 (or None) for as many as the load "
                f"balancer allows, or -k for all cores but k - 1."
            )
            raise WfaConfigError(msg)
        caps = []
        if n_jobs is not None and n_jobs > 0:
            caps.append(n_jobs)
        elif n_jobs is not None and n_jobs < -1:
            caps.append(max(1, usable_cpu_count() + 1 + n_jobs))
        if self._max_workers is not None:
            caps.append(self._max_workers)
        return min(caps) if caps else None

    def _resolve_kind(self, prefer: str | None, require: str | None) -> tuple[str, Any]:
        """Where this call runs: the cluster chosen with use_dask wins over threads/processes."""
        kind = self.executor_type
        if require != "sharedmem":
            client = dask_client(required=kind == "dask")
            if client is not None:
                return "dask", client
        if kind is None or kind == "dask":
            kind = "process" if prefer == "processes" else "thread"
        if kind == "process" and require == "sharedmem":
            kind = "thread"
        return kind, None

    def configure(
        self,
        n_jobs: int | None = 1,
        parallel: Any = None,
        prefer: str | None = None,
        require: str | None = None,
        **backend_kwargs: Any,
    ) -> int:
        """Ask the balancer for the number of workers and configure the joblib backend."""
        self.parallel = parallel
        self.ran_inline = False
        self._next_index = 0
        cap = self._requested_cap(n_jobs)
        kind, client = self._resolve_kind(prefer, require)
        nested = _tasks.nested_share()
        _tasks.note_nested_call()
        probe = DaskClusterProbe(client) if kind == "dask" else None
        n_tasks = getattr(parallel, "n_tasks", None)
        balancer = self._find_balancer()
        if balancer is not None:
            decision = balancer.decide(
                n_tasks,
                self._estimated_task_size,
                executor_type=kind,
                max_workers=cap,
                workers_in_use=0 if nested is not None else _tasks.in_flight.workers,
                nested_share=nested,
                probe=probe,
            )
        else:
            cores = probe.cpu_count() if probe is not None else usable_cpu_count()
            decision = plain_decision(n_tasks, cap, nested, cores)
        self.decision = decision
        self._active_balancer = balancer
        workers = decision.workers
        # Worker processes cannot be started from a worker thread (joblib would warn and run
        # sequentially); a process call nested in a thread task uses threads instead.
        if kind == "process" and nested is not None and not self.in_main_thread():
            kind = "thread"
        self._kind = kind
        budget = nested if nested is not None else decision.capacity
        self._share = max(1, budget // max(1, workers))
        if workers == 1 and kind != "dask":
            self.ran_inline = True
            raise FallbackToBackend(SequentialBackend(nesting_level=self.nesting_level))
        n_jobs = workers
        if kind == "dask":
            # joblib runs n_jobs=1 inline; keep the work on the cluster.
            n_jobs = max(2, workers)
        elif kind == "process":
            # loky keeps its workers between calls: a call with few tasks uses some of them
            # rather than shrinking the pool (0.25-0.5 s) and growing it again afterwards.
            n_jobs = decision.pool_workers
        self._inner = self._make_inner(kind, client, balancer)
        self._inner.configure(
            n_jobs=n_jobs, parallel=parallel, prefer=prefer, require=require, **backend_kwargs
        )
        self._batching = (
            self._inner if isinstance(self._inner, AutoBatchingMixin)
            else _ThreadAutoBatching(parallel)
        )
        self._n_jobs = workers
        return n_jobs

    def _find_balancer(self) -> DynamicLoadBalancer | None:
        if self._balancer is not None:
            return self._balancer
        if not self._use_load_balancer:
            return None
        from .manager import get_executor_manager

        return get_executor_manager().active_balancer()

    def _make_inner(
        self, kind: str, client: Any, balancer: DynamicLoadBalancer | None
    ) -> ParallelBackendBase:
        if kind == "thread":
            return ThreadingBackend(nesting_level=self.nesting_level)
        if kind == "process":
            threads = self.inner_max_num_threads
            if threads is None:
                most = balancer.max_workers if balancer is not None else usable_cpu_count()
                threads = max(1, usable_cpu_count() // max(1, most))
            return LokyBackend(
                nesting_level=self.nesting_level,
                inner_max_num_threads=threads,
                **self.backend_kwargs,
            )
        from joblib._dask import DaskDistributedBackend

        return DaskDistributedBackend(client=client)

    # ------------------------------------------------------------------ call lifecycle
    def start_call(self) -> None:
        """Count this call's workers as busy (for concurrent calls of this process)."""
        if _tasks.nested_share() is None and self._kind != "dask":
            self._registered = self._n_jobs
            _tasks.in_flight.add(self._registered)
        if self._inner is not None:
            self._inner.start_call()

    def stop_call(self) -> None:
        """Release this call's workers."""
        if self._inner is not None:
            self._inner.stop_call()
        if self._registered:
            _tasks.in_flight.remove(self._registered)
            self._registered = 0

    def terminate(self) -> None:
        """Shut the thread pool down (loky keeps its reusable workers)."""
        if self._inner is not None:
            self._inner.terminate()
        if isinstance(self._batching, _ThreadAutoBatching):
            self._batching.reset_batch_stats()

    def abort_everything(self, ensure_ready: bool = True) -> None:
        """Cancel pending tasks; loky also kills its running workers."""
        if self._inner is not None:
            self._inner.abort_everything(ensure_ready=False)
        if ensure_ready:
            self.configure(
                n_jobs=self.parallel.n_jobs,
                parallel=self.parallel,
                **self.parallel._backend_kwargs,
            )

    def compute_batch_size(self) -> int:
        """joblib's auto-batching (the underlying backend's, or thread-tuned)."""
        return self._batching.compute_batch_size() if self._batching is not None else 1

    def batch_completed(self, batch_size: int, duration: float) -> None:
        """Feed joblib's auto-batching."""
        if self._batching is not None:
            self._batching.batch_completed(batch_size, duration)

    def get_nested_backend(self) -> tuple[ParallelBackendBase, int | None]:
        """Backend for joblib calls made inside tasks: threads, limited to the task's share."""
        if self._kind == "dask" and self._inner is not None:
            return self._inner.get_nested_backend()
        nested = WfaBalancedBackend(
            nesting_level=(self.nesting_level or 0) + 1,
            executor_type="thread",
            use_load_balancer=False,
        )
        return nested, None

    @contextlib.contextmanager
    def retrieval_context(self):
        """The underlying backend's (dask secedes from its worker pool while waiting)."""
        if self._inner is None:
            yield
            return
        with self._inner.retrieval_context():
            yield

    # ------------------------------------------------------------------ tasks
    def submit(self, func: Any, callback: Any = None) -> Any:
        """Run the batch through :func:`~wfa_notebook.execution._tasks.run_batch` (timed).

        joblib dispatches batches in input order (under its lock), so counting tasks here
        gives each batch's input position.
        """
        start = self._next_index
        self._next_index += len(func)
        func.items = [(
            _tasks.run_batch,
            (func.items, start, self._share, self._main_pid, self._wrap_failures),
            {},
        )]
        return self._inner.submit(func, callback=callback)

    def retrieve_result_callback(self, out: Any) -> list[Any]:
        """Unwrap the batch's results and record its figures in the balancer."""
        try:
            (results, walls, cpu, memory), = self._inner.retrieve_result_callback(out)
        except BaseException as exc:
            self._record_failure(exc)
            raise
        balancer = self._active_balancer
        if balancer is not None:
            balancer.record_tasks(
                walls,
                cpu_seconds=cpu,
                memory_bytes=memory,
                executor_type=self._kind,
                workers=self._n_jobs,
            )
        return results

    def _record_failure(self, exc: BaseException) -> None:
        balancer = self._active_balancer
        if balancer is None or not isinstance(exc, Exception):
            return
        if isinstance(exc, _tasks.TaskFailure):
            wall = exc.wall_s
        else:
            wall = getattr(exc, "_wfa_task_seconds", None)
        balancer.record_tasks([wall] if wall is not None else [], failed=1)


def _rebuild_backend(
    nesting_level: int | None,
    inner_max_num_threads: int | None,
    executor_type: str | None,
    max_workers: int | None,
) -> WfaBalancedBackend:
    """Unpickle a backend without its balancer (it stays in the process that owns it)."""
    return WfaBalancedBackend(
        nesting_level=nesting_level,
        inner_max_num_threads=inner_max_num_threads,
        executor_type=executor_type,
        max_workers=max_workers,
        use_load_balancer=False,
    )


register_parallel_backend(BACKEND_NAME, WfaBalancedBackend)
