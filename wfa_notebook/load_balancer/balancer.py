"""DynamicLoadBalancer: how many workers to use now, and what happened to the tasks so far."""
from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .validation import check_count, is_real_number, is_whole_number
from ..errors import WfaConfigError
from .policy import (
    CPU_BOUND_FRACTION,
    Capacity,
    CallInputs,
    CapacityInputs,
    Decision,
    PolicyConfig,
    choose_workers,
    external_demand,
    plan_capacity,
)
from .probe import ResourceProbe, ResourceSnapshot, default_probe
from .stats import HISTORY_SIZE, TaskHistory

__all__ = ["DynamicLoadBalancer", "EXECUTOR_TYPES"]

#: Where tasks may run; the balancer keeps one capacity per executor type because waiting
#: tasks may use extra threads or processes but not extra cluster threads.
EXECUTOR_TYPES = ("thread", "process", "dask")

#: Decisions kept for :meth:`DynamicLoadBalancer.recent_decisions`.
DECISION_HISTORY_SIZE = 100


@dataclass
class _CapacityState:
    capacity: Capacity
    config: PolicyConfig
    checked_at: float


class DynamicLoadBalancer:
    """Chooses the number of workers from the machine's free CPU and memory and task history.

    At most every ``check_interval`` seconds the balancer measures the machine through its probe
    and plans a capacity: ``cpu_threshold x cores`` minus the CPU used by *other* programs (the
    toolkit's own process tree is measured and subtracted, so a busy balanced run never shrinks
    itself), divided by the share of a core one task uses (tasks that mostly wait on I/O may run
    more workers than cores, up to ``max_workers``). An idle machine gets all allowed workers at
    the first call. The pool only shrinks when the budget falls more than one core below it.
    Each call then takes the capacity, limited by its number of tasks, by memory
    (``available x memory_threshold / memory per task``), by its own ``max_workers``, and, for
    calls made from inside a parallel task, by that task's share.

    Parameters
    ----------
    min_workers : int, default 1
        Fewest workers planned (calls with fewer tasks, or a memory cap, still use fewer).
    max_workers : int, optional
        Most workers planned; default: the cores this process may use.
    cpu_threshold : float, default 0.8
        Fraction of all cores the machine may be kept busy with, others' load included;
        in (0, 1].
    memory_threshold : float, default 0.85
        Fraction of the available memory concurrent tasks may use; in (0, 1].
    check_interval : float, default 5.0
        Seconds between measurements of the machine; between them the last plan is reused.
    probe : ResourceProbe, optional
        Source of measurements; default :class:`~wfa_notebook.load_balancer.SystemProbe`
        (psutil), or a basic cores-only probe, with a one-time warning, without psutil.

    Examples
    --------
    >>> from wfa_notebook.load_balancer import DynamicLoadBalancer, FakeProbe
    >>> balancer = DynamicLoadBalancer(probe=FakeProbe(cpu_count=8), cpu_threshold=1.0)
    >>> balancer.get_optimal_workers(n_tasks=100)
    8
    >>> balancer.record_task_completion(duration=0.5)
    >>> balancer.get_statistics()["total_tasks"]
    1
    """

    def __init__(
        self,
        min_workers: int = 1,
        max_workers: int | None = None,
        cpu_threshold: float = 0.8,
        memory_threshold: float = 0.85,
        check_interval: float = 5.0,
        probe: ResourceProbe | None = None,
    ) -> None:
        _check_workers("min_workers", min_workers)
        if max_workers is not None:
            _check_workers("max_workers", max_workers)
            if min_workers > max_workers:
                msg = (
                    f"DynamicLoadBalancer: min_workers={min_workers} is larger than "
                    f"max_workers={max_workers}; expected 1 <= min_workers <= max_workers. "
                    "Lower min_workers or raise max_workers."
                )
                raise WfaConfigError(msg)
        _check_fraction("cpu_threshold", cpu_threshold)
        _check_fraction("memory_threshold", memory_threshold)
        if not is_real_number(check_interval) or not (0 < check_interval < math.inf):
            msg = (
                f"DynamicLoadBalancer: check_interval={check_interval!r} must be a finite number "
                "of seconds > 0 (default 5.0)."
            )
            raise WfaConfigError(msg)
        self._probe: ResourceProbe = probe if probe is not None else default_probe()
        self._max_workers_setting = int(max_workers) if max_workers is not None else None
        # max_workers=None means "all cores of the machine measured", which differs between
        # this machine and a Dask cluster; _config_for resolves it per probe.
        self._config = self._config_for(
            int(self._probe.cpu_count()),
            min_workers=int(min_workers),
            cpu_threshold=float(cpu_threshold),
            memory_threshold=float(memory_threshold),
        )
        self._check_interval = float(check_interval)
        self._lock = threading.RLock()
        self._history = TaskHistory(HISTORY_SIZE)
        self._states: dict[tuple[str, str], _CapacityState] = {}
        self._snapshots: dict[str, tuple[float, ResourceSnapshot]] = {}
        self._snapshot_tasks: dict[str, int] = {}
        self._decisions: deque[Decision] = deque(maxlen=DECISION_HISTORY_SIZE)
        self._total_calls = 0
        self._current_workers: int | None = None

    def _config_for(
        self,
        cpu_count: int,
        *,
        min_workers: int | None = None,
        cpu_threshold: float | None = None,
        memory_threshold: float | None = None,
    ) -> PolicyConfig:
        """Settings with ``max_workers=None`` resolved for a machine of ``cpu_count`` cores."""
        config = getattr(self, "_config", None)
        min_workers = min_workers if min_workers is not None else config.min_workers
        maximum = self._max_workers_setting
        if maximum is None:
            maximum = max(cpu_count, min_workers)
        return PolicyConfig(
            min_workers=min_workers,
            max_workers=maximum,
            cpu_threshold=cpu_threshold if cpu_threshold is not None else config.cpu_threshold,
            memory_threshold=(
                memory_threshold if memory_threshold is not None else config.memory_threshold
            ),
        )

    # ------------------------------------------------------------------ settings
    @property
    def min_workers(self) -> int:
        """Fewest workers planned."""
        return self._config.min_workers

    @property
    def max_workers(self) -> int:
        """Most workers planned."""
        return self._config.max_workers

    @property
    def cpu_threshold(self) -> float:
        """Fraction of all cores the machine may be kept busy with."""
        return self._config.cpu_threshold

    @property
    def memory_threshold(self) -> float:
        """Fraction of available memory concurrent tasks may use."""
        return self._config.memory_threshold

    @property
    def check_interval(self) -> float:
        """Seconds between measurements of the machine."""
        return self._check_interval

    @property
    def probe(self) -> ResourceProbe:
        """The probe measuring the machine."""
        return self._probe

    @property
    def current_workers(self) -> int | None:
        """Capacity planned at the latest check (None before the first call)."""
        return self._current_workers

    # ------------------------------------------------------------------ decisions
    def get_optimal_workers(
        self, n_tasks: int | None, estimated_task_size: int | None = None
    ) -> int:
        """Number of workers to use now for a call of ``n_tasks`` tasks.

        Parameters
        ----------
        n_tasks : int or None
            Tasks in the call; None when unknown (a stream).
        estimated_task_size : int, optional
            Memory one task needs, bytes; without it, memory measured on earlier tasks is used.

        Returns
        -------
        int
            At least 1.
        """
        return self.decide(n_tasks, estimated_task_size).workers

    def decide(
        self,
        n_tasks: int | None,
        estimated_task_size: float | None = None,
        *,
        executor_type: str = "thread",
        max_workers: int | None = None,
        workers_in_use: int = 0,
        nested_share: int | None = None,
        probe: ResourceProbe | None = None,
        count_call: bool = True,
    ) -> Decision:
        """Like :meth:`get_optimal_workers`, with the full :class:`Decision` and call limits.

        Parameters
        ----------
        n_tasks, estimated_task_size
            As in :meth:`get_optimal_workers`.
        executor_type : {"thread", "process", "dask"}
            Where the tasks will run.
        max_workers : int, optional
            Upper limit of this call.
        workers_in_use : int
            Workers busy with other calls of this process.
        nested_share : int, optional
            Share of the enclosing parallel task when called from inside one.
        probe : ResourceProbe, optional
            Measure another machine (a Dask cluster) instead of the balancer's probe.
        count_call : bool
            False for re-checks during a running stream (not counted in ``total_calls``).
        """
        if n_tasks is not None and (not is_whole_number(n_tasks) or n_tasks < 0):
            msg = f"n_tasks={n_tasks!r} must be an integer >= 0, or None when unknown."
            raise WfaConfigError(msg)
        if estimated_task_size is not None and (
            not is_real_number(estimated_task_size) or not estimated_task_size > 0
        ):
            msg = (
                f"estimated_task_size={estimated_task_size!r} must be a number of bytes > 0 "
                "(memory one task needs), or None to use memory measured on earlier tasks."
            )
            raise WfaConfigError(msg)
        if executor_type not in EXECUTOR_TYPES:
            msg = f"executor_type={executor_type!r}; expected one of {EXECUTOR_TYPES}."
            raise WfaConfigError(msg)
        probe = probe if probe is not None else self._probe
        with self._lock:
            if count_call:
                self._total_calls += 1
            capacity, config = self._capacity(probe, executor_type)
            if estimated_task_size is not None:
                task_memory, source = float(estimated_task_size), "estimated_task_size"
            else:
                task_memory = self._history.task_memory_estimate()
                source = "measured on earlier tasks"
            available = probe.available_memory_bytes() if task_memory else None
            decision = choose_workers(
                config,
                capacity,
                CallInputs(
                    n_tasks=n_tasks,
                    call_max_workers=max_workers,
                    workers_in_use=workers_in_use,
                    nested_share=nested_share,
                    available_memory_bytes=available,
                    task_memory_bytes=task_memory,
                    task_memory_source=source if task_memory else "",
                ),
            )
            self._decisions.append(decision)
            self._current_workers = capacity.workers
        return decision

    def _capacity(
        self, probe: ResourceProbe, executor_type: str
    ) -> tuple[Capacity, PolicyConfig]:
        """Capacity of the latest check, re-planned when ``check_interval`` has passed."""
        now = probe.clock()
        key = (probe.key, executor_type)
        state = self._states.get(key)
        if state is not None and now - state.checked_at < self._check_interval:
            return state.capacity, state.config
        tasks_before = self._snapshot_tasks.get(probe.key)
        snapshot = self._snapshot(probe, now)
        config = self._config_for(snapshot.cpu_count)
        cpu_fraction, concurrent = self._history.cpu_profile(executor_type)
        # Our workers were running during the measured window if tasks finished in it.
        running = None
        if state is not None and tasks_before is not None and (
            self._history.total_tasks > tasks_before
        ) and (cpu_fraction is None or cpu_fraction >= CPU_BOUND_FRACTION):
            running = state.capacity.workers
        external, note = external_demand(
            snapshot.system_busy_cores,
            snapshot.own_busy_cores,
            snapshot.machine_cpu_count,
            snapshot.cpu_count,
            running,
        )
        capacity = plan_capacity(
            config,
            CapacityInputs(
                cpu_count=snapshot.cpu_count,
                external_busy_cores=external,
                shared=snapshot.shared,
                cpu_fraction=cpu_fraction,
                concurrent_task_cores=concurrent,
                executor_type=executor_type,
                previous_workers=state.capacity.workers if state is not None else None,
                external_note=note,
            ),
        )
        self._states[key] = _CapacityState(capacity, config, now)
        return capacity, config

    def _snapshot(self, probe: ResourceProbe, now: float) -> ResourceSnapshot:
        """One sample per probe per check, shared by all executor types."""
        cached = self._snapshots.get(probe.key)
        if cached is not None and now - cached[0] < self._check_interval:
            return cached[1]
        snapshot = probe.sample()
        self._snapshots[probe.key] = (now, snapshot)
        self._snapshot_tasks[probe.key] = self._history.total_tasks
        return snapshot

    # ------------------------------------------------------------------ recording
    def record_task_completion(
        self, duration: float, memory_used: int | None = None, success: bool = True
    ) -> None:
        """Record one finished task.

        Parameters
        ----------
        duration : float
            Wall-clock seconds the task took.
        memory_used : int, optional
            Peak extra memory of the task, bytes.
        success : bool
            False when the task raised.
        """
        if not is_real_number(duration) or duration < 0:
            msg = f"duration={duration!r} must be a number of seconds >= 0."
            raise WfaConfigError(msg)
        with self._lock:
            self._history.add(
                [float(duration)], failed=0 if success else 1, memory_bytes=memory_used
            )

    def record_tasks(
        self,
        durations: Sequence[float],
        *,
        failed: int = 0,
        cpu_seconds: float | None = None,
        memory_bytes: float | None = None,
        executor_type: str | None = None,
        workers: int | None = None,
    ) -> None:
        """Record many finished tasks at once (the executors' fast path).

        Parameters
        ----------
        durations : sequence of float
            Wall-clock seconds of each task whose duration is known.
        failed : int
            How many of these tasks failed (may exceed ``len(durations)``).
        cpu_seconds : float, optional
            CPU seconds the tasks used together.
        memory_bytes : float, optional
            Peak extra memory of one task, bytes.
        executor_type : str, optional
            ``"thread"``, ``"process"`` or ``"dask"``.
        workers : int, optional
            Workers that ran concurrently.
        """
        with self._lock:
            self._history.add(
                durations,
                failed=failed,
                cpu_seconds=cpu_seconds,
                memory_bytes=memory_bytes,
                executor_type=executor_type,
                workers=workers,
            )

    def record_stream_length(self, n_items: int) -> None:
        """Record how many items a finished stream had."""
        with self._lock:
            self._history.add_stream(n_items)

    def expected_stream_length(self) -> int | None:
        """Length of the next stream, estimated from the streams seen so far (median)."""
        with self._lock:
            return self._history.expected_stream_length()

    # ------------------------------------------------------------------ reporting
    def get_statistics(self) -> dict[str, Any]:
        """Counts, durations, memory, settings and the latest decision.

        Returns
        -------
        dict
            ``total_tasks``, ``successful_tasks``, ``failed_tasks``, ``success_rate``;
            ``avg_duration``, ``min_duration``, ``max_duration``, ``p50_duration``,
            ``p95_duration`` (seconds, over the last 1000 tasks; None before any task);
            ``avg_memory_mb``, ``max_memory_mb`` (None when never measured);
            ``current_workers`` (capacity at the latest check), ``min_workers``,
            ``max_workers``, ``cpu_threshold``, ``memory_threshold``, ``check_interval``;
            ``total_calls`` (decisions asked for); ``cpu_fraction`` (CPU s per wall s of
            recent thread tasks); ``probe``; ``last_decision`` (``workers``, ``capacity``,
            ``reason`` in words, ``inputs``; None before the first call).
        """
        with self._lock:
            stats = self._history.summary()
            last = self._decisions[-1].as_dict() if self._decisions else None
            cpu_fraction, _ = self._history.cpu_profile("thread")
            stats.update(
                current_workers=self._current_workers,
                min_workers=self._config.min_workers,
                max_workers=self._config.max_workers,
                cpu_threshold=self._config.cpu_threshold,
                memory_threshold=self._config.memory_threshold,
                check_interval=self._check_interval,
                total_calls=self._total_calls,
                cpu_fraction=cpu_fraction,
                probe=type(self._probe).__name__,
                last_decision=last,
            )
        return stats

    def recent_durations(self) -> list[float]:
        """Durations of the recent tasks (the last 1000), seconds, oldest first."""
        with self._lock:
            return self._history.durations()

    def recent_decisions(self, limit: int = 20) -> list[dict[str, Any]]:
        """The latest decisions, oldest first, as dicts (see ``last_decision``)."""
        with self._lock:
            decisions = list(self._decisions)[-limit:] if limit > 0 else []
        return [decision.as_dict() for decision in decisions]

    def reset(self) -> None:
        """Forget history, statistics and plans; the next call measures the machine afresh."""
        with self._lock:
            self._history.clear()
            self._states.clear()
            self._snapshots.clear()
            self._snapshot_tasks.clear()
            self._decisions.clear()
            self._total_calls = 0
            self._current_workers = None

    def __repr__(self) -> str:
        config = self._config
        return (
            f"DynamicLoadBalancer(min_workers={config.min_workers}, "
            f"max_workers={config.max_workers}, cpu_threshold={config.cpu_threshold}, "
            f"memory_threshold={config.memory_threshold}, "
            f"check_interval={self._check_interval}, current_workers={self._current_workers})"
        )


def _check_workers(name: str, value: Any) -> None:
    check_count("DynamicLoadBalancer", name, value)


def _check_fraction(name: str, value: Any) -> None:
    if not is_real_number(value) or not (0.0 < float(value) <= 1.0):
        msg = (
            f"DynamicLoadBalancer: {name}={value!r} is outside the valid range (0, 1]; "
            f"it is a fraction, e.g. 0.8 for 80 %."
        )
        raise WfaConfigError(msg)
