"""Task history of a load balancer: counts over all tasks, figures over the last 1000.

Not thread-safe by itself; :class:`~wfa_notebook.load_balancer.DynamicLoadBalancer` guards it.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["TaskHistory", "HISTORY_SIZE", "CPU_HISTORY_SIZE"]

#: Tasks whose duration and memory are kept for the statistics.
HISTORY_SIZE = 1000

#: Batches per executor type whose CPU/wall ratio describes "what the tasks are like now".
CPU_HISTORY_SIZE = 50

#: Streams whose length is kept to estimate the length of the next stream.
STREAM_HISTORY_SIZE = 20


class TaskHistory:
    """Durations, outcomes, memory and CPU use of recent tasks."""

    def durations(self) -> list[float]:
        """Durations of the recent tasks, seconds, oldest first."""
        return list(self._durations)

    def __init__(self, maxlen: int = HISTORY_SIZE) -> None:
        self.maxlen = maxlen
        self._durations: deque[float] = deque(maxlen=maxlen)
        self._memory: deque[float] = deque(maxlen=maxlen)
        self._cpu: dict[str, deque[tuple[float, float, int]]] = {}
        self._streams: deque[int] = deque(maxlen=STREAM_HISTORY_SIZE)
        self.total_tasks = 0
        self.successful_tasks = 0
        self.failed_tasks = 0

    def add(
        self,
        durations: Sequence[float],
        *,
        failed: int = 0,
        cpu_seconds: float | None = None,
        memory_bytes: float | None = None,
        executor_type: str | None = None,
        workers: int | None = None,
    ) -> None:
        """Record finished tasks.

        Parameters
        ----------
        durations : sequence of float
            Wall-clock seconds of each task whose duration is known.
        failed : int
            How many of the recorded tasks failed (failed tasks without a known duration are
            counted too: ``failed`` may exceed ``len(durations)``).
        cpu_seconds : float, optional
            CPU seconds these tasks used together (None when unknown, e.g. tasks that made
            nested parallel calls, whose CPU time is spent elsewhere).
        memory_bytes : float, optional
            Peak extra memory of one of these tasks, bytes.
        executor_type : str, optional
            Where the tasks ran (``"thread"``, ``"process"``, ``"dask"``).
        workers : int, optional
            How many workers ran concurrently.
        """
        n_tasks = max(len(durations), failed)
        self.total_tasks += n_tasks
        self.failed_tasks += failed
        self.successful_tasks += n_tasks - failed
        self._durations.extend(durations)
        if memory_bytes is not None and memory_bytes > 0:
            self._memory.append(float(memory_bytes))
        if cpu_seconds is not None and executor_type is not None and len(durations):
            cpu = self._cpu.setdefault(executor_type, deque(maxlen=CPU_HISTORY_SIZE))
            cpu.append((float(cpu_seconds), float(sum(durations)), workers or 1))

    def add_stream(self, n_items: int) -> None:
        """Record the length of a finished stream."""
        self._streams.append(int(n_items))

    def expected_stream_length(self) -> int | None:
        """Median length of recent streams, None before the first."""
        if not self._streams:
            return None
        return int(np.median(np.fromiter(self._streams, dtype=np.float64)))

    def cpu_profile(self, executor_type: str) -> tuple[float | None, float | None]:
        """(CPU s per wall s, cores used by all concurrent tasks) of recent tasks, or Nones."""
        cpu = self._cpu.get(executor_type)
        if not cpu:
            return None, None
        cpu_total = sum(c for c, _, _ in cpu)
        wall_total = sum(d for _, d, _ in cpu)
        # Below a millisecond of work the ratio is dominated by timer resolution.
        if wall_total < 1e-3:
            return None, None
        fraction = min(1.0, cpu_total / wall_total)
        concurrent = sum(c * w for c, _, w in cpu) / wall_total
        return fraction, concurrent

    def task_memory_estimate(self) -> float | None:
        """95th percentile of recent per-task memory, bytes; None when never measured."""
        if not self._memory:
            return None
        return float(np.percentile(np.fromiter(self._memory, dtype=np.float64), 95))

    def summary(self) -> dict[str, Any]:
        """Counts, duration figures (seconds) and memory figures (MiB)."""
        out: dict[str, Any] = {
            "total_tasks": self.total_tasks,
            "successful_tasks": self.successful_tasks,
            "failed_tasks": self.failed_tasks,
            "success_rate": (
                self.successful_tasks / self.total_tasks if self.total_tasks else None
            ),
            "history_size": len(self._durations),
        }
        if self._durations:
            durations = np.fromiter(self._durations, dtype=np.float64)
            p50, p95 = np.percentile(durations, [50, 95])
            out.update(
                avg_duration=float(durations.mean()),
                min_duration=float(durations.min()),
                max_duration=float(durations.max()),
                p50_duration=float(p50),
                p95_duration=float(p95),
            )
        else:
            out.update(
                avg_duration=None,
                min_duration=None,
                max_duration=None,
                p50_duration=None,
                p95_duration=None,
            )
        if self._memory:
            memory = np.fromiter(self._memory, dtype=np.float64) / 2**20
            out.update(avg_memory_mb=float(memory.mean()), max_memory_mb=float(memory.max()))
        else:
            out.update(avg_memory_mb=None, max_memory_mb=None)
        return out

    def clear(self) -> None:
        """Forget everything."""
        self.__init__(self.maxlen)  # type: ignore[misc]
