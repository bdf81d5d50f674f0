"""Parallel execution: joblib driven by the dynamic load balancer, from one core to a cluster.

>>> from wfa_notebook.execution import enable_global_load_balancing, parallel_map
>>> enable_global_load_balancing(min_workers=2, max_workers=8)        # doctest: +SKIP
>>> results = parallel_map(process_file, file_list, executor_type="process",
...                        estimated_task_size=10 * 1024 * 1024)       # doctest: +SKIP

- :func:`parallel_map` / :func:`parallel_apply`: lists in, lists out, through joblib with the
  ``"wfa-balanced"`` backend (usable directly with ``joblib.parallel_config``).
- :func:`imap_ordered`: lazy and order-preserving, for streams of chunks.
- :class:`ExecutorManager`: the global load balancer and named pools.
- :func:`use_dask`: run all of the above on a Dask cluster.
"""
from __future__ import annotations

# Executors and the global load balancer
from .manager import (
    ExecutorManager,
    disable_global_load_balancing,
    enable_global_load_balancing,
    get_executor,
    get_executor_manager,
    get_load_balancer_stats,
)

# Running work
from .parallel import parallel_apply, parallel_map
from .streaming import imap_ordered

# The joblib backend (registered on import)
from .backend import BACKEND_NAME, WfaBalancedBackend

# Clusters
from .dask import DaskClusterProbe, dask_client, stop_using_dask, use_dask

# The balancer itself, for convenience
from ..load_balancer import DynamicLoadBalancer

__all__ = [
    # executors and the global load balancer
    "ExecutorManager",
    "get_executor_manager",
    "get_executor",
    "enable_global_load_balancing",
    "disable_global_load_balancing",
    "get_load_balancer_stats",
    # running work
    "parallel_map",
    "parallel_apply",
    "imap_ordered",
    # joblib backend
    "WfaBalancedBackend",
    "BACKEND_NAME",
    # clusters
    "use_dask",
    "stop_using_dask",
    "dask_client",
    "DaskClusterProbe",
    # balancer
    "DynamicLoadBalancer",
]
