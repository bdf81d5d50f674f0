"""Running parallel work on a Dask cluster when one machine is not enough.

>>> from dask.distributed import Client                      # doctest: +SKIP
>>> from wfa_notebook.execution import use_dask, parallel_map
>>> client = Client("tcp://scheduler.example.org:8786")       # doctest: +SKIP
>>> with use_dask(client):                                    # doctest: +SKIP
...     results = parallel_map(process_file, file_list)

On a SLURM cluster, dask-jobqueue starts the workers as batch jobs::

    from dask_jobqueue import SLURMCluster
    cluster = SLURMCluster(cores=32, memory="64GB", walltime="02:00:00")
    cluster.scale(jobs=4)                       # 4 nodes x 32 cores
    use_dask(Client(cluster))

While :func:`use_dask` is in effect, :func:`~wfa_notebook.execution.parallel_map`,
:func:`~wfa_notebook.execution.parallel_apply` and
:func:`~wfa_notebook.execution.imap_ordered` run their tasks on the cluster (through joblib's
dask backend for the first two), and the load balancer plans for the cluster's worker threads
and memory instead of this machine's cores.
"""
from __future__ import annotations

import threading
import time
from typing import Any

from ..errors import WfaConfigError, WfaDependencyError
from ..load_balancer.probe import ResourceSnapshot

__all__ = ["use_dask", "stop_using_dask", "dask_client", "DaskClusterProbe"]

_lock = threading.Lock()
_client: Any = None


def _import_distributed():
    try:
        import distributed
    except ImportError as exc:
        msg = (
            "Running on a Dask cluster needs the `dask` and `distributed` packages, which are "
            "not installed. Install them with `pip install 'wfa_notebook[dask]'`."
        )
        raise WfaDependencyError(msg) from exc
    return distributed


class use_dask:  # noqa: N801 - used like a function, as in joblib.parallel_config
    """Run parallel work on a Dask cluster, from now on or inside a ``with`` block.

    Parameters
    ----------
    client : distributed.Client, optional
        Client connected to the cluster; default: the currently active client
        (the last one created in this session).

    Examples
    --------
    >>> use_dask(client)                      # doctest: +SKIP
    >>> with use_dask(client):                # doctest: +SKIP
    ...     results = parallel_map(f, items)  # only this block runs on the cluster
    """

    def __init__(self, client: Any = None) -> None:
        global _client
        distributed = _import_distributed()
        if client is None:
            try:
                client = distributed.get_client()
            except ValueError as exc:
                msg = (
                    "use_dask(): no active Dask client. Create one first, e.g. "
                    "`client = distributed.Client('tcp://scheduler:8786')` or "
                    "`client = distributed.Client(distributed.LocalCluster())`, then call "
                    "`use_dask(client)`."
                )
                raise WfaConfigError(msg) from exc
        if not isinstance(client, distributed.Client):
            msg = (
                f"use_dask(client): expected a distributed.Client, got "
                f"{type(client).__name__}. Pass `distributed.Client(address)`."
            )
            raise WfaConfigError(msg)
        with _lock:
            self._previous = _client
            _client = client
        self.client = client

    def __enter__(self) -> Any:
        return self.client

    def __exit__(self, *exc_info: object) -> None:
        global _client
        with _lock:
            _client = self._previous

    def __repr__(self) -> str:
        return f"use_dask({self.client!r})"


def stop_using_dask() -> None:
    """Run parallel work on this machine again."""
    global _client
    with _lock:
        _client = None


def dask_client(required: bool = False) -> Any:
    """The client chosen with :func:`use_dask`, or None (also once that client is closed).

    Parameters
    ----------
    required : bool
        Without a client chosen by :func:`use_dask`, return the active ``distributed``
        client, and raise when there is none (used for ``executor_type="dask"``).
    """
    global _client
    with _lock:
        client = _client
        if client is not None and getattr(client, "status", "running") != "running":
            _client = client = None
    if client is None and required:
        client = _active_client()
    return client


def _active_client() -> Any:
    distributed = _import_distributed()
    try:
        return distributed.get_client()
    except ValueError as exc:
        msg = (
            "executor_type='dask' needs a Dask client: create one, e.g. "
            "`client = distributed.Client('tcp://scheduler:8786')`, and optionally call "
            "`use_dask(client)` to send all parallel work to it."
        )
        raise WfaConfigError(msg) from exc


class DaskClusterProbe:
    """Measures a Dask cluster: worker threads and memory; its workers are not shared.

    Cluster workers run only what the scheduler gives them, so the balancer plans all their
    threads (``cpu_threshold`` concerns shared workstations).
    """

    def __init__(self, client: Any) -> None:
        self.client = client
        self.key = f"dask:{client.scheduler.address}"
        self._available: int | None = None

    def clock(self) -> float:
        """Monotonic time in seconds."""
        return time.monotonic()

    def cpu_count(self) -> int:
        """Worker threads of the cluster now."""
        return max(1, sum(self.client.nthreads().values()))

    def available_memory_bytes(self) -> int | None:
        """Free memory summed over workers, from the latest sample."""
        if self._available is None:
            self.sample()
        return self._available

    def sample(self) -> ResourceSnapshot:
        """Threads and memory of all workers (one scheduler round trip)."""
        workers = self.client.scheduler_info(n_workers=-1).get("workers", {})
        threads = sum(int(w.get("nthreads", 0)) for w in workers.values())
        limits = [w.get("memory_limit") or 0 for w in workers.values()]
        used = [w.get("metrics", {}).get("memory", 0) for w in workers.values()]
        total = int(sum(limits)) if all(limits) and limits else None
        available = (
            int(sum(max(0, limit - use) for limit, use in zip(limits, used)))
            if total is not None
            else None
        )
        self._available = available
        return ResourceSnapshot(
            cpu_count=max(1, threads),
            machine_cpu_count=max(1, threads),
            system_busy_cores=None,
            own_busy_cores=None,
            available_memory_bytes=available,
            total_memory_bytes=total,
            shared=False,
            source="dask",
        )
