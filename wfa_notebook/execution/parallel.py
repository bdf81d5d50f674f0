"""parallel_map and parallel_apply: run a function over many inputs, results in input order."""
from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from joblib import Parallel

from ..load_balancer.validation import check_count, is_real_number
from ..errors import WfaConfigError, WfaWorkerDiedError
from . import _tasks
from .backend import EXECUTOR_CHOICES, WfaBalancedBackend

__all__ = ["parallel_map", "parallel_apply"]

#: joblib.Parallel options that may be passed through ``**kwargs``.
PARALLEL_OPTIONS = frozenset(
    {"batch_size", "pre_dispatch", "verbose", "timeout", "temp_folder", "max_nbytes",
     "mmap_mode"}
)

#: Keywords of the earlier package's parallel_map, accepted so old notebooks keep running:
#: pools are now owned by joblib, so the two executor options have no effect.
LEGACY_OPTIONS = frozenset({"executor_name", "reuse_executor", "progress_callback"})

Progress = Any  # a callable (done, total) or an object with .update(n), e.g. tqdm


def parallel_map(
    func: Callable[..., Any],
    iterable: Iterable[Any],
    executor_type: str = "thread",
    max_workers: int | None = None,
    use_load_balancer: bool = True,
    estimated_task_size: int | None = None,
    progress: Progress = None,
    **kwargs: Any,
) -> list[Any]:
    """``[func(item) for item in iterable]``, run in parallel; results in input order.

    Parameters
    ----------
    func : callable
        Called once per item. For ``executor_type="process"`` it is pickled with cloudpickle,
        so lambdas and local functions work.
    iterable : iterable
        Inputs; read completely before the first task starts.
    executor_type : {"thread", "process", "dask"}, default "thread"
        Threads suit numba/numpy kernels that release the GIL and I/O; processes suit pure
        Python; "dask" runs on the cluster of :func:`~wfa_notebook.execution.use_dask` (or the
        active Dask client). While ``use_dask`` is in effect every call runs on the cluster.
    max_workers : int, optional
        At most this many workers; default: the load balancer's choice while balancing is
        enabled, else all usable cores.
    use_load_balancer : bool, default True
        Use the global load balancer when it is enabled (it has no effect while disabled).
    estimated_task_size : int, optional
        Memory one task needs, bytes: the balancer never runs more concurrent tasks than
        ``available memory x memory_threshold / estimated_task_size``.
    progress : callable or object with ``update``, optional
        Called in the calling thread as results arrive, in order: ``progress(done, total)``,
        or ``progress.update(1)`` for tqdm-like objects.
    **kwargs
        joblib.Parallel options (``batch_size``, ``pre_dispatch``, ``verbose``, ``timeout``,
        ``temp_folder``, ``max_nbytes``, ``mmap_mode``); ``progress_callback(index)`` of
        earlier versions is still called per finished task.

    Returns
    -------
    list
        ``func(item)`` for each item, in input order.

    Raises
    ------
    WfaTaskError
        A task raised: names its index, chains the original exception; tasks not yet started
        are cancelled and the failure is counted in the balancer's statistics.
    WfaWorkerDiedError
        A worker process died (killed, segfault, ``os._exit``); the next call starts new ones.
    WfaConfigError
        Invalid arguments (raised before anything runs).

    Notes
    -----
    On KeyboardInterrupt, pending tasks are cancelled and worker processes are killed; thread
    workers finish the task they are running (threads cannot be killed). The interpreter stays
    usable and the next call works.
    """
    _check_common("parallel_map", func, executor_type, max_workers, estimated_task_size, progress)
    tasks = _MapTasks(func, list(iterable))
    return _run(func, tasks, executor_type, max_workers, use_load_balancer,
                estimated_task_size, progress, kwargs, "parallel_map")


def parallel_apply(
    func: Callable[..., Any],
    args_list: Iterable[Any],
    executor_type: str = "thread",
    max_workers: int | None = None,
    use_load_balancer: bool = True,
    estimated_task_size: int | None = None,
    progress: Progress = None,
    **kwargs: Any,
) -> list[Any]:
    """``[func(*args) for args in args_list]``, run in parallel; results in input order.

    Parameters
    ----------
    func : callable
        Called once per entry of ``args_list``.
    args_list : iterable
        Each entry is a tuple of positional arguments (``func(*entry)``), a mapping of keyword
        arguments (``func(**entry)``), or any other single argument (``func(entry)``).
    executor_type, max_workers, use_load_balancer, estimated_task_size, progress, **kwargs
        As in :func:`parallel_map`.

    Returns
    -------
    list
        One result per entry, in input order.

    Raises
    ------
    WfaTaskError, WfaWorkerDiedError, WfaConfigError
        As in :func:`parallel_map`.
    """
    _check_common("parallel_apply", func, executor_type, max_workers, estimated_task_size, progress)
    tasks = _ApplyTasks(func, [_as_call(entry) for entry in args_list])
    return _run(func, tasks, executor_type, max_workers, use_load_balancer,
                estimated_task_size, progress, kwargs, "parallel_apply")


def _as_call(entry: Any) -> tuple[tuple, dict]:
    if isinstance(entry, tuple):
        return entry, {}
    if isinstance(entry, Mapping):
        return (), dict(entry)
    return (entry,), {}


def _check_common(
    owner: str,
    func: Any, executor_type: Any, max_workers: Any, estimated_task_size: Any, progress: Any
) -> None:
    if not callable(func):
        msg = f"func must be callable, got {type(func).__name__}."
        raise WfaConfigError(msg)
    if executor_type not in EXECUTOR_CHOICES:
        msg = f"executor_type={executor_type!r}; expected one of {EXECUTOR_CHOICES}."
        raise WfaConfigError(msg)
    check_count(owner, "max_workers", max_workers,
                none_means="to let the load balancer (or the number of cores) decide")
    if estimated_task_size is not None and (
        not is_real_number(estimated_task_size) or not estimated_task_size > 0
    ):
        msg = (
            f"estimated_task_size={estimated_task_size!r} must be a number of bytes > 0 "
            "(memory one task needs), or None."
        )
        raise WfaConfigError(msg)
    if progress is not None and not (callable(progress) or hasattr(progress, "update")):
        msg = (
            f"progress must be a callable progress(done, total) or have an update(n) method "
            f"(like tqdm), got {type(progress).__name__}."
        )
        raise WfaConfigError(msg)


def _split_kwargs(kwargs: dict[str, Any], caller: str) -> tuple[dict[str, Any], Any]:
    unknown = set(kwargs) - PARALLEL_OPTIONS - LEGACY_OPTIONS
    if unknown:
        msg = (
            f"{caller}: unexpected keyword argument(s) {sorted(unknown)}; accepted are "
            f"{sorted(PARALLEL_OPTIONS)} (passed to joblib.Parallel). To pass fixed arguments "
            "to func, use functools.partial."
        )
        raise WfaConfigError(msg)
    options = {key: value for key, value in kwargs.items() if key in PARALLEL_OPTIONS}
    legacy_callback = kwargs.get("progress_callback")
    if legacy_callback is not None and not callable(legacy_callback):
        msg = f"{caller}: progress_callback must be callable(index), got {legacy_callback!r}."
        raise WfaConfigError(msg)
    return options, legacy_callback


class _MapTasks(Sequence):
    """``(func, (item,), {})`` for each item, built as joblib consumes them; has a length."""

    def __init__(self, func: Callable[..., Any], items: list[Any]) -> None:
        self._func = func
        self._items = items

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index: int) -> Any:  # type: ignore[override]
        return self._func, (self._items[index],), {}

    def __iter__(self):
        func = self._func
        for item in self._items:
            yield func, (item,), {}


class _ApplyTasks(_MapTasks):
    """``(func, args, kwargs)`` for each call."""

    def __getitem__(self, index: int) -> Any:  # type: ignore[override]
        args, kwargs = self._items[index]
        return self._func, args, kwargs

    def __iter__(self):
        func = self._func
        for args, kwargs in self._items:
            yield func, args, kwargs


def _run(
    func: Callable[..., Any],
    tasks: _MapTasks,
    executor_type: str,
    max_workers: int | None,
    use_load_balancer: bool,
    estimated_task_size: int | None,
    progress: Progress,
    kwargs: dict[str, Any],
    caller: str,
) -> list[Any]:
    options, legacy_callback = _split_kwargs(kwargs, caller)
    total = len(tasks)
    if total == 0:
        return []
    backend = WfaBalancedBackend(
        executor_type=executor_type,
        use_load_balancer=use_load_balancer,
        max_workers=max_workers,
        estimated_task_size=estimated_task_size,
        wrap_failures=True,
    )
    outputs = Parallel(n_jobs=-1, backend=backend, return_as="generator", **options)(tasks)
    # configure() ran inside Parallel(...)(...): the decision is made and the balancer known.
    balancer = backend._active_balancer
    inline = backend.ran_inline
    results: list[Any] = []
    try:
        if inline:
            _collect_inline(outputs, results, balancer, progress, legacy_callback, total)
        elif progress is None and legacy_callback is None:
            results.extend(outputs)
        else:
            for output in outputs:
                results.append(output)
                _report(progress, legacy_callback, len(results), total)
    except _tasks.TaskFailure as failure:
        if inline and balancer is not None:
            balancer.record_tasks([failure.wall_s or 0.0], failed=1)
        head = f"{caller}({_tasks.callable_name(func)}): task {failure.index} of {total}"
        raise _tasks.task_error(failure, head) from failure.original
    except BrokenProcessPool as exc:
        # The backend counted the failure when the batch came back broken.
        msg = (
            f"{caller}({_tasks.callable_name(func)}): a worker process died while running a task "
            f"({type(exc).__name__}: {exc}). Typical causes: out of memory (lower max_workers or "
            "pass estimated_task_size), a crash in compiled code, or os._exit/sys.exit in the "
            "task. The pending tasks were cancelled; the next call starts new workers."
        )
        raise WfaWorkerDiedError(msg) from exc
    except BaseException:
        # Leaving the generator unfinished (KeyboardInterrupt between two results, or an error
        # in a progress callback): close it so joblib cancels the pending tasks now. joblib
        # warns about the results it computed for nothing; the caller already has the error.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            outputs.close()
        raise
    return results


def _collect_inline(
    outputs: Any, results: list[Any], balancer: Any, progress: Progress, legacy_callback: Any,
    total: int,
) -> None:
    """One worker: joblib runs each task right here when asked for its result; time it."""
    clock, cpu_clock = time.perf_counter, time.thread_time
    while True:
        begin, begin_cpu = clock(), cpu_clock()
        try:
            output = next(outputs)
        except StopIteration:
            return
        except Exception as exc:
            raise _tasks.TaskFailure(len(results), exc, clock() - begin) from exc
        if balancer is not None:
            balancer.record_tasks(
                [clock() - begin], cpu_seconds=cpu_clock() - begin_cpu,
                executor_type="thread", workers=1,
            )
        results.append(output)
        _report(progress, legacy_callback, len(results), total)


def _report(progress: Progress, legacy_callback: Any, done: int, total: int) -> None:
    if progress is not None:
        if hasattr(progress, "update"):
            progress.update(1)
        else:
            progress(done, total)
    if legacy_callback is not None:
        legacy_callback(done - 1)

