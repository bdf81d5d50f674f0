"""What a load balancer is doing, as plain numbers: the model behind the live dashboard.

:class:`LoadBalancerMetrics` samples a :class:`~wfa_notebook.load_balancer.DynamicLoadBalancer`
(the global one, a StreamingPlugin's own, or any other) together with this machine's CPU and
memory use. It imports neither ipywidgets nor IPython, so it works, and is tested, anywhere:

>>> from wfa_notebook.ui.metrics import LoadBalancerMetrics
>>> metrics = LoadBalancerMetrics()                        # the global balancer
>>> with metrics.watch() as run:                           # doctest: +SKIP
...     results = parallel_map(process_file, files)
>>> print(run)                                             # doctest: +SKIP
120 tasks (0 failed) in 3.2 s on up to 4 workers, 37.5 tasks/s

Sampling is polled, never hooked into tasks: a background thread refreshes at most
:data:`MAX_REFRESH_HZ` times a second, whatever the rate at which tasks finish.
"""
from __future__ import annotations

import contextlib
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import WfaConfigError
from ..load_balancer import DynamicLoadBalancer
from ..load_balancer.probe import ResourceProbe, ResourceSnapshot
from .statistics import (
    BalancerSource,
    DurationHistogram,
    histogram_of_durations,
    load_balancing_off_text,
    recent_durations,
    resolve_balancer,
)

__all__ = [
    # the model
    "LoadBalancerMetrics",
    "MetricsSnapshot",
    "RunSummary",
    "WorkerTimeline",
    # running a block under a balancer
    "ensure_load_balancing",
    # refresh rate
    "MAX_REFRESH_HZ",
    "MIN_REFRESH_INTERVAL_S",
    "check_refresh_interval",
]

#: Most background refreshes per second. Jupyter drops IOPub messages beyond its rate limit
#: (``iopub_msg_rate_limit``, 1000 messages/s by default) and prints "IOPub message rate
#: exceeded"; one dashboard refresh sends at most ~12 widget updates, so 4 refreshes a second
#: stay below 50 messages/s, leaving room for the cell's own output and for several panels.
#: It is also the fastest rate a person can read numbers at.
MAX_REFRESH_HZ = 4
MIN_REFRESH_INTERVAL_S = 1.0 / MAX_REFRESH_HZ

#: Samples of ``(time, tasks done)`` the throughput is averaged over, seconds: long enough to
#: smooth joblib's batches (up to 0.5 s each for threads), short enough to follow a change.
THROUGHPUT_WINDOW_S = 5.0

#: Changes of the worker count kept for the timeline (one point per change, not per sample).
TIMELINE_SIZE = 2000

#: psutil reads CPU times in 10 ms clock ticks; windows shorter than this would show ±10 %
#: noise per core, so a refresh sooner than this after the previous one reuses its CPU figures.
MIN_CPU_WINDOW_S = 0.1



# ----------------------------------------------------------------------------------------------
# Results
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MetricsSnapshot:
    """Everything the dashboard shows, at one refresh.

    Attributes
    ----------
    time_s : float
        Seconds since the model was created.
    source : str
        Which balancer is watched, in words.
    balancing : bool
        False while there is no balancer to watch (global load balancing off).
    workers : int or None
        Workers chosen by the latest decision (what the latest parallel call ran with).
    capacity : int or None
        Workers the machine could take at the balancer's latest check.
    min_workers, max_workers : int or None
        The balancer's limits.
    system_cpu_percent : float or None
        CPU use of the whole machine, % of all its cores.
    kernel_cpu_percent : float or None
        CPU use of this Python process and its children (worker processes included),
        % of all the machine's cores, so it compares directly with ``system_cpu_percent``.
    memory_percent : float or None
        Memory in use on the machine, %.
    tasks_done : int
        Tasks finished (successful or failed) as recorded by the balancer.
    tasks_failed : int
        Tasks that raised, or whose worker died.
    throughput_tasks_per_s : float
        Tasks finished per second over the last few seconds.
    avg_duration_s, p95_duration_s : float or None
        Task durations over the balancer's recent history, seconds.
    total_calls : int
        Parallel calls that asked the balancer for workers.
    last_decision : str
        The latest decision in words (or why there is none).
    dask_scheduler : str or None
        Address of the Dask scheduler while work is sent to a cluster with ``use_dask``
        (CPU and memory figures are still this machine's).
    """

    time_s: float
    source: str
    balancing: bool
    workers: int | None
    capacity: int | None
    min_workers: int | None
    max_workers: int | None
    system_cpu_percent: float | None
    kernel_cpu_percent: float | None
    memory_percent: float | None
    tasks_done: int
    tasks_failed: int
    throughput_tasks_per_s: float
    avg_duration_s: float | None
    p95_duration_s: float | None
    total_calls: int
    last_decision: str
    dask_scheduler: str | None = None


@dataclass(frozen=True)
class WorkerTimeline:
    """How the worker count changed: one point per change.

    Attributes
    ----------
    times_s : numpy.ndarray
        Seconds since the model was created at which the count changed (float64).
    workers : numpy.ndarray
        Workers of the latest decision from that time on (int64).
    capacity : numpy.ndarray
        Capacity planned at the balancer's latest check from that time on (int64).
    until_s : float
        Time of the latest refresh: the last values hold until then.
    """

    times_s: np.ndarray
    workers: np.ndarray
    capacity: np.ndarray
    until_s: float


@dataclass
class RunSummary:
    """What happened during one watched block (see :meth:`LoadBalancerMetrics.watch`).

    Filled in when the block ends; ``finished`` is False until then.

    Attributes
    ----------
    tasks : int
        Tasks finished in the block (successful or failed).
    failed : int
        Tasks that failed.
    seconds : float
        Wall-clock duration of the block.
    workers_used : int or None
        Most workers any parallel call of the block ran with (None when no call asked the
        balancer, e.g. ``max_workers=1`` or ``use_load_balancer=False``).
    source : str
        Which balancer counted the tasks.
    finished : bool
        True once the block has ended.
    """

    tasks: int = 0
    failed: int = 0
    seconds: float = 0.0
    workers_used: int | None = None
    source: str = ""
    finished: bool = False

    @property
    def throughput_tasks_per_s(self) -> float:
        """Tasks per second over the whole block."""
        return self.tasks / self.seconds if self.seconds > 0 else 0.0

    def __str__(self) -> str:
        if not self.finished:
            return "run in progress"
        workers = (
            f"on up to {self.workers_used} worker{'s' if self.workers_used != 1 else ''}"
            if self.workers_used is not None
            else "without asking the load balancer"
        )
        return (
            f"{self.tasks} task{'s' if self.tasks != 1 else ''} ({self.failed} failed) in "
            f"{self.seconds:.3g} s {workers}, {self.throughput_tasks_per_s:.1f} tasks/s"
        )


def check_refresh_interval(interval_s: Any) -> None:
    """Refuse live refreshes more frequent than :data:`MAX_REFRESH_HZ` a second."""
    if not isinstance(interval_s, (int, float)) or isinstance(interval_s, bool) or not (
        MIN_REFRESH_INTERVAL_S <= interval_s < math.inf
    ):
        msg = (
            f"interval_s={interval_s!r}: live updates run at most {MAX_REFRESH_HZ} times a "
            f"second, so the interval must be a number of seconds >= {MIN_REFRESH_INTERVAL_S} "
            "(Jupyter drops messages sent faster than it can forward them)."
        )
        raise WfaConfigError(msg)


# ----------------------------------------------------------------------------------------------
# Running a block under a balancer
# ----------------------------------------------------------------------------------------------
@contextlib.contextmanager
def ensure_load_balancing(max_workers: int | None = None) -> Iterator[DynamicLoadBalancer]:
    """Run the block's parallel calls under a load balancer, so they can be watched and counted.

    When global load balancing is on, its balancer is used unchanged. When it is off, a
    temporary global balancer with the default settings (and at most ``max_workers`` workers)
    is enabled for the block and disabled again at its end.

    Parameters
    ----------
    max_workers : int, optional
        Most workers of the temporary balancer.

    Yields
    ------
    DynamicLoadBalancer
        The balancer the block's parallel calls ask.

    Raises
    ------
    WfaConfigError
        ``max_workers`` differs from the limit of the global balancer that is already on: that
        limit cannot be changed for one block only.
    """
    from ..execution import (
        disable_global_load_balancing,
        enable_global_load_balancing,
        get_executor_manager,
    )

    active = get_executor_manager().active_balancer()
    if active is not None:
        if max_workers is not None and max_workers != active.max_workers:
            msg = (
                f"ensure_load_balancing(max_workers={max_workers}): global load balancing is "
                f"already on with max_workers={active.max_workers}, and its limit cannot be "
                "changed for one block only. Leave out the worker limit, or change the global "
                f"one with enable_global_load_balancing(max_workers={max_workers}) "
                f"(%wfa_balance on --max {max_workers})."
            )
            raise WfaConfigError(msg)
        yield active
        return
    balancer = enable_global_load_balancing(max_workers=max_workers)
    try:
        yield balancer
    finally:
        # Only undo our own: somebody may have enabled another balancer inside the block.
        if get_executor_manager().active_balancer() is balancer:
            disable_global_load_balancing()


# ----------------------------------------------------------------------------------------------
# Machine usage, never blocking
# ----------------------------------------------------------------------------------------------
class _ThrottledProbe:
    """Samples the system probe at most every MIN_CPU_WINDOW_S; in between, the last sample.

    :class:`~wfa_notebook.load_balancer.SystemProbe` waits when asked for a window shorter
    than its minimum; the dashboard must never wait, so it asks only once enough time passed.
    """

    def __init__(self, probe: ResourceProbe) -> None:
        self._probe = probe
        self._lock = threading.Lock()
        self._sampled_at = probe.clock()
        self._last: ResourceSnapshot | None = None

    def sample(self) -> ResourceSnapshot | None:
        with self._lock:
            now = self._probe.clock()
            if now - self._sampled_at >= MIN_CPU_WINDOW_S:
                self._last = self._probe.sample()
                self._sampled_at = now
            return self._last


def _default_usage_probe() -> _ThrottledProbe | None:
    try:
        from ..load_balancer.probe import SystemProbe

        return _ThrottledProbe(SystemProbe())
    except ImportError:  # no psutil: CPU and memory are shown as unknown
        return None


def _usage(snapshot: ResourceSnapshot | None) -> tuple[float | None, float | None, float | None]:
    """(system CPU %, own process-tree CPU %, memory %) of a probe's snapshot."""
    if snapshot is None:
        return None, None, None
    cores = float(snapshot.machine_cpu_count or 1)
    system = snapshot.system_busy_cores
    own = snapshot.own_busy_cores
    total = snapshot.total_memory_bytes
    available = snapshot.available_memory_bytes
    return (
        None if system is None else min(100.0, 100.0 * system / cores),
        None if own is None else min(100.0, 100.0 * own / cores),
        None if not total or available is None else 100.0 * (1.0 - available / total),
    )


def _dask_scheduler() -> str | None:
    from ..execution.dask import dask_client

    client = dask_client()
    if client is None:
        return None
    return str(getattr(client.scheduler, "address", "a Dask cluster"))


# ----------------------------------------------------------------------------------------------
# The model
# ----------------------------------------------------------------------------------------------
@dataclass
class _RunMark:
    balancer: DynamicLoadBalancer | None
    tasks: int
    failed: int
    calls: int
    started_at: float


@dataclass
class _Counts:
    tasks: int = 0
    failed: int = 0
    calls: int = 0


class LoadBalancerMetrics:
    """Thread-safe model of a load balancer's activity and of the machine's load.

    Each :meth:`refresh` reads the balancer's statistics and the machine's CPU and memory use
    into a :class:`MetricsSnapshot`, extends the worker-count timeline and updates the task
    duration data, then calls the listeners (e.g. a dashboard's refresh). :meth:`start` runs
    refreshes in a background thread at most :data:`MAX_REFRESH_HZ` times a second;
    :meth:`watch` does so for a block and refreshes once more, synchronously, at its end.

    Parameters
    ----------
    balancer : DynamicLoadBalancer, StreamingPlugin, callable or None
        What to watch. None (default): the global balancer, looked up at every refresh, so
        enabling, replacing or disabling global load balancing is followed. A StreamingPlugin
        class or instance: its own balancer. A callable: called at every refresh, returns a
        balancer or None.
    usage_probe : ResourceProbe, optional
        Source of the machine's CPU and memory use (e.g. a
        :class:`~wfa_notebook.load_balancer.FakeProbe` in tests); sampled at every refresh.
        Default: psutil, sampled at most every 0.1 s.
    clock : callable, optional
        Monotonic seconds (default ``time.monotonic``); replaceable for tests.

    Examples
    --------
    >>> from wfa_notebook.load_balancer import DynamicLoadBalancer, FakeProbe
    >>> balancer = DynamicLoadBalancer(probe=FakeProbe(cpu_count=8), cpu_threshold=1.0)
    >>> metrics = LoadBalancerMetrics(balancer, usage_probe=FakeProbe(cpu_count=8))
    >>> balancer.get_optimal_workers(n_tasks=100)
    8
    >>> balancer.record_task_completion(duration=0.5)
    >>> metrics.refresh().tasks_done
    1
    """

    def __init__(
        self,
        balancer: BalancerSource = None,
        *,
        usage_probe: ResourceProbe | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._resolve, self.source = resolve_balancer(balancer)
        self._usage_probe: Any = usage_probe if usage_probe is not None else _default_usage_probe()
        self._clock = clock if clock is not None else time.monotonic
        self._t0 = self._clock()
        self._lock = threading.RLock()
        self._listeners: list[Callable[[MetricsSnapshot], None]] = []
        self._watched: DynamicLoadBalancer | None = None
        self._throughput: deque[tuple[float, int]] = deque()
        self._timeline: deque[tuple[float, int, int]] = deque(maxlen=TIMELINE_SIZE)
        self._durations = np.zeros(0, np.float64)
        self._durations_at = -1  # tasks_done when the durations were read
        self._snapshot = self._empty_snapshot()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.refresh_count = 0
        #: The latest exception raised by a background refresh or a listener (None if none).
        self.last_error: BaseException | None = None

    # ------------------------------------------------------------------ reading
    @property
    def snapshot(self) -> MetricsSnapshot:
        """State at the latest refresh."""
        with self._lock:
            return self._snapshot

    def duration_histogram(self, bins: int = 20) -> DurationHistogram:
        """Histogram of the task durations read at the latest refresh."""
        with self._lock:
            durations = self._durations
        return histogram_of_durations(durations, bins)

    def timeline(self) -> WorkerTimeline:
        """Worker count over time, as read at the refreshes so far."""
        with self._lock:
            points = list(self._timeline)
            until = self._snapshot.time_s
        if not points:
            empty = np.zeros(0, np.int64)
            return WorkerTimeline(np.zeros(0, np.float64), empty, empty.copy(), until)
        times, workers, capacity = zip(*points)
        return WorkerTimeline(
            np.asarray(times, np.float64),
            np.asarray(workers, np.int64),
            np.asarray(capacity, np.int64),
            until,
        )

    # ------------------------------------------------------------------ listeners
    def add_listener(self, callback: Callable[[MetricsSnapshot], None]) -> None:
        """Call ``callback(snapshot)`` after every refresh (in the refreshing thread)."""
        with self._lock:
            if callback not in self._listeners:
                self._listeners.append(callback)

    def remove_listener(self, callback: Callable[[MetricsSnapshot], None]) -> None:
        """Stop calling ``callback``."""
        with self._lock:
            if callback in self._listeners:
                self._listeners.remove(callback)

    # ------------------------------------------------------------------ refreshing
    def refresh(self) -> MetricsSnapshot:
        """Read the balancer and the machine now; returns (and keeps) the new snapshot."""
        balancer = self._resolve()
        stats = balancer.get_statistics() if balancer is not None else None
        usage = _usage(self._usage_probe.sample() if self._usage_probe is not None else None)
        scheduler = _dask_scheduler()
        with self._lock:
            now = self._clock() - self._t0
            if balancer is not self._watched:
                # Another balancer (global balancing re-enabled): its counts start afresh.
                self._watched = balancer
                self._throughput.clear()
                self._durations = np.zeros(0, np.float64)
                self._durations_at = -1
            snapshot = self._snapshot_from(now, balancer, stats, usage, scheduler)
            if balancer is not None and snapshot.tasks_done != self._durations_at:
                self._durations = recent_durations(balancer)
                self._durations_at = snapshot.tasks_done
            if snapshot.workers is not None:
                capacity = snapshot.capacity if snapshot.capacity is not None else snapshot.workers
                last = self._timeline[-1] if self._timeline else None
                if last is None or (last[1], last[2]) != (snapshot.workers, capacity):
                    self._timeline.append((now, snapshot.workers, capacity))
            self._snapshot = snapshot
            self.refresh_count += 1
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(snapshot)
            except Exception as exc:  # one broken panel must not stop the others
                self.last_error = exc
        return snapshot

    def _snapshot_from(
        self,
        now: float,
        balancer: DynamicLoadBalancer | None,
        stats: dict[str, Any] | None,
        usage: tuple[float | None, float | None, float | None],
        scheduler: str | None,
    ) -> MetricsSnapshot:
        system, kernel, memory = usage
        if balancer is None or stats is None:
            return MetricsSnapshot(
                time_s=now, source=self.source, balancing=False, workers=None, capacity=None,
                min_workers=None, max_workers=None, system_cpu_percent=system,
                kernel_cpu_percent=kernel, memory_percent=memory, tasks_done=0, tasks_failed=0,
                throughput_tasks_per_s=0.0, avg_duration_s=None, p95_duration_s=None,
                total_calls=0, last_decision=load_balancing_off_text(), dask_scheduler=scheduler,
            )
        done = int(stats["total_tasks"])
        window = self._throughput
        window.append((now, done))
        while len(window) > 2 and now - window[1][0] >= THROUGHPUT_WINDOW_S:
            window.popleft()
        first_t, first_done = window[0]
        throughput = (done - first_done) / (now - first_t) if now > first_t else 0.0
        last = stats["last_decision"]
        return MetricsSnapshot(
            time_s=now,
            source=self.source,
            balancing=True,
            workers=int(last["workers"]) if last else None,
            capacity=stats["current_workers"],
            min_workers=stats["min_workers"],
            max_workers=stats["max_workers"],
            system_cpu_percent=system,
            kernel_cpu_percent=kernel,
            memory_percent=memory,
            tasks_done=done,
            tasks_failed=int(stats["failed_tasks"]),
            throughput_tasks_per_s=max(0.0, throughput),
            avg_duration_s=stats["avg_duration"],
            p95_duration_s=stats["p95_duration"],
            total_calls=int(stats["total_calls"]),
            last_decision=(
                last["reason"] if last else "No parallel call has asked the balancer yet."
            ),
            dask_scheduler=scheduler,
        )

    def _empty_snapshot(self) -> MetricsSnapshot:
        return MetricsSnapshot(
            time_s=0.0, source=self.source, balancing=False, workers=None, capacity=None,
            min_workers=None, max_workers=None, system_cpu_percent=None,
            kernel_cpu_percent=None, memory_percent=None, tasks_done=0, tasks_failed=0,
            throughput_tasks_per_s=0.0, avg_duration_s=None, p95_duration_s=None,
            total_calls=0, last_decision="Not refreshed yet.",
        )

    # ------------------------------------------------------------------ background thread
    @property
    def running(self) -> bool:
        """True while the background thread refreshes."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def start(self, interval_s: float = MIN_REFRESH_INTERVAL_S) -> bool:
        """Refresh every ``interval_s`` seconds in a background thread.

        Parameters
        ----------
        interval_s : float
            At least :data:`MIN_REFRESH_INTERVAL_S` (0.25 s).

        Returns
        -------
        bool
            True if this call started the thread, False if it was already running.
        """
        check_refresh_interval(interval_s)
        with self._lock:
            if self.running:
                return False
            self._stop = threading.Event()
            self._thread = threading.Thread(
                target=self._run, args=(self._stop, float(interval_s)),
                name="wfa-metrics", daemon=True,
            )
            self._thread.start()
        return True

    def stop(self) -> None:
        """Stop the background thread (waits for a refresh in progress to finish)."""
        with self._lock:
            thread, self._thread = self._thread, None
            self._stop.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _run(self, stop: threading.Event, interval_s: float) -> None:
        while not stop.wait(interval_s):
            try:
                self.refresh()
            except Exception as exc:  # e.g. a process vanished while psutil read it
                self.last_error = exc

    # ------------------------------------------------------------------ watched blocks
    def begin_run(self) -> RunSummary:
        """Start counting a block's tasks; pass the result to :meth:`end_run`."""
        balancer = self._resolve()
        counts = self._counts(balancer)
        summary = RunSummary(source=self.source)
        mark = _RunMark(balancer, counts.tasks, counts.failed, counts.calls, self._clock())
        # Not a dataclass field: dataclasses.asdict(summary) must not copy the balancer.
        summary._mark = mark  # type: ignore[attr-defined]
        return summary

    def end_run(self, summary: RunSummary) -> RunSummary:
        """Fill in ``summary`` (from :meth:`begin_run`) with what happened since."""
        mark: _RunMark | None = getattr(summary, "_mark", None)
        if mark is None:
            msg = "end_run(summary): pass the RunSummary returned by begin_run() of this model."
            raise WfaConfigError(msg)
        balancer = self._resolve()
        counts = self._counts(balancer)
        if balancer is not mark.balancer:  # a new balancer counted everything of the block
            mark = _RunMark(balancer, 0, 0, 0, mark.started_at)
        calls = counts.calls - mark.calls
        workers = None
        if balancer is not None and calls > 0:
            # The latest `calls` decisions were all made inside the block (re-checks of running
            # streams add decisions without counting as calls).
            decisions = balancer.recent_decisions(limit=calls)
            workers = max((int(d["workers"]) for d in decisions), default=None)
        summary.tasks = counts.tasks - mark.tasks
        summary.failed = counts.failed - mark.failed
        summary.seconds = max(0.0, self._clock() - mark.started_at)
        summary.workers_used = workers
        summary.finished = True
        return summary

    @staticmethod
    def _counts(balancer: DynamicLoadBalancer | None) -> _Counts:
        if balancer is None:
            return _Counts()
        stats = balancer.get_statistics()
        return _Counts(stats["total_tasks"], stats["failed_tasks"], stats["total_calls"])

    @contextlib.contextmanager
    def watch(self, live: bool = True) -> Iterator[RunSummary]:
        """Watch a block: live refreshes during it, one synchronous refresh and a summary at its end.

        Parameters
        ----------
        live : bool
            Start the background thread for the block (unless it is already running, in which
            case it is left running afterwards).

        Yields
        ------
        RunSummary
            Filled in when the block ends, also when it raises.
        """
        summary = self.begin_run()
        started = self.start() if live else False
        try:
            yield summary
        finally:
            if started:
                self.stop()
            self.refresh()  # the final state, even when no background refresh came after the end
            self.end_run(summary)

    def __repr__(self) -> str:
        state = "live" if self.running else "idle"
        return f"<LoadBalancerMetrics of the {self.source} ({state}, {self.refresh_count} refreshes)>"
