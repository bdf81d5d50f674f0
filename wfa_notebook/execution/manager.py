"""ExecutorManager: the process-wide owner of the global load balancer and of named pools."""
from __future__ import annotations

import atexit
import contextlib
import threading
from collections.abc import Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ..load_balancer.validation import check_count
from ..errors import WfaConfigError
from ..load_balancer import DynamicLoadBalancer
from ..load_balancer.probe import ResourceProbe, usable_cpu_count

__all__ = [
    "ExecutorManager",
    "get_executor_manager",
    "get_executor",
    "enable_global_load_balancing",
    "disable_global_load_balancing",
    "get_load_balancer_stats",
]

POOL_TYPES = ("thread", "process")

#: Seconds an idle worker process of a named pool lives (joblib's loky default, 300 s).
IDLE_WORKER_TIMEOUT_S = 300


@dataclass
class _Pool:
    executor: Executor
    executor_type: str
    max_workers: int
    reuse: bool
    users: int = 0


class ExecutorManager:
    """Thread-safe singleton holding the global load balancer and named worker pools.

    Load balancing is off by default; while it is off, ``parallel_map`` and ``parallel_apply``
    are plain parallel execution. Use :func:`get_executor_manager` (or ``ExecutorManager()``,
    which returns the same instance).

    Examples
    --------
    >>> manager = get_executor_manager()
    >>> manager.enable_load_balancing(min_workers=2, max_workers=8)   # doctest: +SKIP
    >>> with manager.get_executor("io", "thread", max_workers=4) as pool:
    ...     sizes = list(pool.map(len, ["a", "bb"]))
    >>> sizes
    [1, 2]
    """

    _instance: ExecutorManager | None = None
    _instance_lock = threading.Lock()

    def __new__(cls) -> ExecutorManager:
        with cls._instance_lock:
            if cls._instance is None:
                instance = super().__new__(cls)
                instance._setup()
                cls._instance = instance
        return cls._instance

    def _setup(self) -> None:
        self._lock = threading.RLock()
        self._load_balancer: DynamicLoadBalancer | None = None
        self._pools: dict[str, _Pool] = {}
        atexit.register(self.shutdown_all)

    # ------------------------------------------------------------------ load balancing
    def enable_load_balancing(
        self,
        min_workers: int = 1,
        max_workers: int | None = None,
        cpu_threshold: float = 0.8,
        memory_threshold: float = 0.85,
        check_interval: float = 5.0,
        probe: ResourceProbe | None = None,
    ) -> DynamicLoadBalancer:
        """Create the global balancer; from now on parallel calls ask it for their workers.

        Parameters
        ----------
        min_workers, max_workers, cpu_threshold, memory_threshold, check_interval, probe
            See :class:`~wfa_notebook.load_balancer.DynamicLoadBalancer`.

        Returns
        -------
        DynamicLoadBalancer
            The new global balancer (enabling again replaces it, and its statistics).
        """
        balancer = DynamicLoadBalancer(
            min_workers=min_workers,
            max_workers=max_workers,
            cpu_threshold=cpu_threshold,
            memory_threshold=memory_threshold,
            check_interval=check_interval,
            probe=probe,
        )
        with self._lock:
            self._load_balancer = balancer
        return balancer

    def disable_load_balancing(self) -> None:
        """Back to plain parallel execution; the balancer and its statistics are dropped."""
        with self._lock:
            self._load_balancer = None

    @property
    def load_balancing_enabled(self) -> bool:
        """True while the global balancer is in use."""
        return self._load_balancer is not None

    # the earlier package's attribute name, derived rather than kept in step by hand
    _load_balancing_enabled = load_balancing_enabled

    @property
    def load_balancer(self) -> DynamicLoadBalancer | None:
        """The global balancer (None while disabled)."""
        return self._load_balancer

    def active_balancer(self) -> DynamicLoadBalancer | None:
        """The global balancer if load balancing is enabled, else None."""
        with self._lock:
            return self._load_balancer

    def get_load_balancer_stats(self) -> dict[str, Any] | None:
        """Statistics of the global balancer (None while disabled)."""
        balancer = self.active_balancer()
        return balancer.get_statistics() if balancer is not None else None

    # ------------------------------------------------------------------ named pools
    @contextlib.contextmanager
    def get_executor(
        self,
        name: str,
        executor_type: str = "thread",
        max_workers: int | None = None,
        reuse: bool = True,
    ) -> Iterator[Executor]:
        """A named worker pool, as a context manager.

        Parameters
        ----------
        name : str
            Pools are reused by name while ``reuse`` is True.
        executor_type : {"thread", "process"}
            Threads (``concurrent.futures.ThreadPoolExecutor``) or processes (loky's
            ``ProcessPoolExecutor``, which survives crashed workers and pickles lambdas).
        max_workers : int, optional
            Pool size; default: the global balancer's choice while balancing is enabled,
            else all usable cores.
        reuse : bool, default True
            Keep the pool for later ``with`` blocks of the same name; False shuts it down
            when the last user leaves.

        Yields
        ------
        concurrent.futures.Executor
        """
        if executor_type not in POOL_TYPES:
            msg = (
                f"get_executor({name!r}): executor_type={executor_type!r}; expected one of "
                f"{POOL_TYPES}."
            )
            raise WfaConfigError(msg)
        max_workers = check_count(f"get_executor({name!r})", "max_workers", max_workers,
                                  none_means="to let the load balancer (or the number of cores) decide")
        if max_workers is None:
            balancer = self.active_balancer()
            max_workers = (
                balancer.decide(None, executor_type=executor_type).workers
                if balancer is not None
                else usable_cpu_count()
            )
        pool = self._acquire(name, executor_type, max_workers, reuse)
        try:
            yield pool.executor
        finally:
            self._release(name, pool)

    def _acquire(self, name: str, executor_type: str, max_workers: int, reuse: bool) -> _Pool:
        with self._lock:
            pool = self._pools.get(name)
            if pool is not None and _is_broken(pool.executor):
                # A worker died: the pool refuses new work; its users already got the error.
                self._pools.pop(name)
                pool.executor.shutdown(wait=False)
                pool = None
            if pool is not None and not reuse and pool.users == 0:
                self._shutdown(name, wait=False)
                pool = None
            if pool is not None and (
                pool.executor_type != executor_type or pool.max_workers != max_workers
            ):
                if pool.users:
                    msg = (
                        f"get_executor({name!r}): a {pool.executor_type} pool with "
                        f"{pool.max_workers} workers of that name is in use; asked for "
                        f"{executor_type} with {max_workers}. Use another name, or leave "
                        "the other `with` block first."
                    )
                    raise WfaConfigError(msg)
                self._shutdown(name, wait=False)
                pool = None
            if pool is None:
                pool = _Pool(
                    executor=_make_executor(name, executor_type, max_workers),
                    executor_type=executor_type,
                    max_workers=max_workers,
                    reuse=reuse,
                )
                self._pools[name] = pool
            pool.reuse = pool.reuse and reuse
            pool.users += 1
            return pool

    def _release(self, name: str, pool: _Pool, discard: bool = False) -> None:
        with self._lock:
            pool.users -= 1
            if self._pools.get(name) is not pool:
                return
            if discard or _is_broken(pool.executor):
                self._shutdown(name, wait=False)
            elif pool.users == 0 and not pool.reuse:
                self._shutdown(name, wait=True)

    def _shutdown(self, name: str, wait: bool) -> None:
        pool = self._pools.pop(name)
        pool.executor.shutdown(wait=wait)

    def list_executors(self) -> dict[str, dict[str, Any]]:
        """Named pools alive now: ``{name: {"executor_type", "max_workers", "users", "reuse"}}``."""
        with self._lock:
            return {
                name: {
                    "executor_type": pool.executor_type,
                    "max_workers": pool.max_workers,
                    "users": pool.users,
                    "reuse": pool.reuse,
                }
                for name, pool in self._pools.items()
            }

    def shutdown_all(self, wait: bool = True) -> None:
        """Shut down every named pool and joblib's reusable worker processes."""
        with self._lock:
            for name in list(self._pools):
                self._shutdown(name, wait=wait)
        _shutdown_loky_workers(wait)


def _is_broken(executor: Executor) -> bool:
    """True once a process pool lost a worker (concurrent.futures and loky flag it)."""
    flags = getattr(executor, "_flags", None)
    return bool(getattr(executor, "_broken", False) or getattr(flags, "broken", False))


def _make_executor(name: str, executor_type: str, max_workers: int) -> Executor:
    if executor_type == "thread":
        return ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=f"wfa-{name}")
    from joblib.externals.loky import ProcessPoolExecutor

    # Idle workers exit after IDLE_WORKER_TIMEOUT_S and are restarted on demand, as in joblib.
    return ProcessPoolExecutor(max_workers=max_workers, timeout=IDLE_WORKER_TIMEOUT_S)


def _shutdown_loky_workers(wait: bool) -> None:
    """Stop the worker processes joblib keeps for reuse, if any were started."""
    from joblib.externals.loky import reusable_executor

    # loky has no public "is there a reusable executor" query; get_reusable_executor() would
    # start one just to stop it.
    executor = getattr(reusable_executor, "_executor", None)
    if executor is not None:
        executor.shutdown(wait=wait, kill_workers=not wait)


def get_executor_manager() -> ExecutorManager:
    """The process-wide :class:`ExecutorManager`."""
    return ExecutorManager()


def get_executor(
    name: str,
    executor_type: str = "thread",
    max_workers: int | None = None,
    reuse: bool = True,
) -> contextlib.AbstractContextManager[Executor]:
    """Shortcut for ``get_executor_manager().get_executor(...)``."""
    return get_executor_manager().get_executor(name, executor_type, max_workers, reuse)


def enable_global_load_balancing(
    min_workers: int = 1,
    max_workers: int | None = None,
    cpu_threshold: float = 0.8,
    memory_threshold: float = 0.85,
    check_interval: float = 5.0,
    probe: ResourceProbe | None = None,
) -> DynamicLoadBalancer:
    """Enable the global load balancer (see :meth:`ExecutorManager.enable_load_balancing`).

    Examples
    --------
    >>> from wfa_notebook.execution import enable_global_load_balancing, parallel_map
    >>> enable_global_load_balancing(min_workers=2, max_workers=8)   # doctest: +SKIP
    >>> parallel_map(abs, [-1, -2, 3])                                # doctest: +SKIP
    [1, 2, 3]
    """
    return get_executor_manager().enable_load_balancing(
        min_workers=min_workers,
        max_workers=max_workers,
        cpu_threshold=cpu_threshold,
        memory_threshold=memory_threshold,
        check_interval=check_interval,
        probe=probe,
    )


def disable_global_load_balancing() -> None:
    """Disable the global load balancer: plain parallel execution again."""
    get_executor_manager().disable_load_balancing()


def get_load_balancer_stats() -> dict[str, Any] | None:
    """Statistics of the global balancer, None while load balancing is disabled."""
    return get_executor_manager().get_load_balancer_stats()
