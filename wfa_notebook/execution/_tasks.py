"""What runs in a worker around each batch of tasks: timing, memory, nesting share, failures.

:func:`run_batch` runs a list of joblib-style ``(func, args, kwargs)`` tasks and returns a
:data:`BatchOutcome`: the results, the wall-clock time of every task, the CPU time of the batch
(the worker thread's own, ``time.thread_time``, so thread and process workers are measured the
same way) and, in worker processes, the batch's peak extra memory. Timing a whole batch costs
two clock reads per task; wrapping each task separately doubled the cost of trivial tasks
sent to processes (``benchmarks/bench_execution.py``, overhead section).
"""
from __future__ import annotations

import os
import threading
import time
from array import array
from typing import Any, Callable

from ..errors import WfaTaskError
from ..load_balancer.probe import current_rss_bytes, peak_rss_bytes, reset_peak_rss

__all__ = [
    "callable_name",
    "task_error",
    "run_batch",
    "BatchOutcome",
    "TaskFailure",
    "nested_share",
    "note_nested_call",
    "in_flight",
    "MEMORY_PROBE_MIN_TASK_S",
]

#: (results, wall seconds per task, CPU seconds of the batch or None, peak extra bytes or None)
BatchOutcome = tuple[list, array, "float | None", "float | None"]

Task = tuple[Callable[..., Any], tuple, dict]

#: Memory is measured in worker processes after a batch whose longest task took at least this
#: long: resetting and reading the peak RSS costs ~0.13 ms on Linux (47 us + 77 us through
#: /proc, measured on the development machine), under 1.5 % of a 10 ms task. A worker's first
#: batch is not measured: it includes the imports of unpickling the function.
MEMORY_PROBE_MIN_TASK_S = 0.01

_local = threading.local()
_longest_task_s = 0.0  # per worker process: longest task of its previous batch


def nested_share() -> int | None:
    """Workers a call made from inside a parallel task may use (None outside tasks)."""
    return getattr(_local, "share", None)


def note_nested_call() -> None:
    """Mark the running batch as having made a parallel call: its CPU time is elsewhere."""
    if getattr(_local, "share", None) is not None:
        _local.nested_call = True


class TaskFailure(Exception):
    """Raised in a worker when task ``index`` raised ``original`` after ``wall_s`` seconds.

    The original travels in ``args`` because exception chains (``__cause__``) are not pickled
    between processes.
    """

    def __init__(self, index: int, original: BaseException, wall_s: float | None = None):
        super().__init__(index, original, wall_s)

    @property
    def index(self) -> int:
        """Position of the failing task in the input."""
        return self.args[0]

    @property
    def original(self) -> BaseException:
        """The exception the task raised."""
        return self.args[1]

    @property
    def wall_s(self) -> float | None:
        """How long the task ran before raising, seconds."""
        return self.args[2]

    def __str__(self) -> str:
        return f"task {self.index} raised {type(self.original).__name__}: {self.original}"


def run_batch(
    tasks: list[Task],
    start: int,
    share: int | None,
    main_pid: int,
    wrap_failures: bool,
) -> BatchOutcome:
    """Run ``tasks`` in order, timing each; called in the worker.

    Parameters
    ----------
    tasks : list of (func, args, kwargs)
        One joblib batch.
    start : int
        Input position of the first task (failures report ``start + position``).
    share : int or None
        Workers that parallel calls made by these tasks may use.
    main_pid : int
        Process id of the caller; memory is only measured in other (worker) processes.
    wrap_failures : bool
        Raise :class:`TaskFailure` carrying the input position (``parallel_map``), or the
        task's own exception (joblib semantics for direct users of the backend).
    """
    global _longest_task_s
    previous_share = getattr(_local, "share", None)
    previous_nested = getattr(_local, "nested_call", False)
    if share is not None:
        _local.share = share
    _local.nested_call = False
    in_worker_process = os.getpid() != main_pid
    base_rss = None
    if in_worker_process and _longest_task_s >= MEMORY_PROBE_MIN_TASK_S and reset_peak_rss():
        base_rss = current_rss_bytes()
    results: list[Any] = []
    walls = array("d")
    clock = time.perf_counter
    start_cpu = time.thread_time()
    position = 0
    begin = clock()
    try:
        for position, (func, args, kwargs) in enumerate(tasks):
            begin = clock()
            results.append(func(*args, **kwargs))
            walls.append(clock() - begin)
    except Exception as exc:
        wall = clock() - begin
        if wrap_failures:
            raise TaskFailure(start + position, exc, wall) from exc
        _attach_seconds(exc, wall)
        raise
    finally:
        cpu: float | None = time.thread_time() - start_cpu
        if getattr(_local, "nested_call", False):
            cpu = None
        _local.share = previous_share
        _local.nested_call = previous_nested
    if in_worker_process:
        _longest_task_s = max(walls) if walls else 0.0
    memory = None
    if base_rss is not None:
        peak = peak_rss_bytes()
        if peak is not None:
            memory = float(max(0, peak - base_rss))
    return results, walls, cpu, memory


def _attach_seconds(exc: BaseException, seconds: float) -> None:
    """Let the failure be timed; exception attributes survive pickling between processes."""
    try:
        exc._wfa_task_seconds = seconds  # type: ignore[attr-defined]
    except AttributeError:
        pass


class _InFlight:
    """Workers busy with top-level parallel calls of this process (nested calls excluded)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._workers = 0

    @property
    def workers(self) -> int:
        return self._workers

    def add(self, workers: int) -> None:
        with self._lock:
            self._workers += workers

    def remove(self, workers: int) -> None:
        with self._lock:
            self._workers = max(0, self._workers - workers)


in_flight = _InFlight()


def callable_name(func: Any) -> str:
    """The name to show for a task function in messages."""
    return getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or repr(func)


def task_error(failure: TaskFailure, head: str) -> WfaTaskError:
    """The error a caller raises for a failed task; ``head`` says which call and which task."""
    original = failure.original
    remote = failure.__cause__
    if original.__traceback__ is None and original.__cause__ is None and isinstance(remote, BaseException):
        # From a worker process the original arrives without its traceback; the executor
        # attached the formatted remote traceback to the wrapper. Hang it under the original.
        original.__cause__ = remote
    msg = (
        f"{head} raised {type(original).__name__}: {original}. The tasks not yet started were "
        "cancelled. See the chained exception for the traceback; fix the input or handle the "
        "error inside the function."
    )
    return WfaTaskError(msg, task_index=failure.index)
