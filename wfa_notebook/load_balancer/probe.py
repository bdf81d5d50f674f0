"""Resource probes: what the load balancer knows about the machine it runs on.

A probe answers four questions: what time is it, how many cores may we use, how busy are the
CPUs (all of them, and our own process tree), and how much memory is available. The balancer
only talks to a probe, so the policy can be tested on machines that do not exist
(:class:`FakeProbe`, e.g. 64 cores with external load that comes and goes).

:class:`SystemProbe` measures the real machine with psutil. CPU use is a rate, so it is measured
over the window between two samples; our own process tree (this process, its threads and every
child process such as loky or Dask workers) is measured over the same window and subtracted, so
the toolkit's own workers are never mistaken for somebody else's load.
"""
from __future__ import annotations

import os
import threading
import time
import warnings
from dataclasses import dataclass
from typing import Callable, Protocol, Union, runtime_checkable

from .policy import external_demand

__all__ = [
    "ResourceSnapshot",
    "ResourceProbe",
    "SystemProbe",
    "BasicProbe",
    "FakeProbe",
    "default_probe",
    "usable_cpu_count",
    "current_rss_bytes",
    "reset_peak_rss",
    "peak_rss_bytes",
]


@dataclass(frozen=True)
class ResourceSnapshot:
    """What a probe measured at one check.

    Attributes
    ----------
    cpu_count : int
        Cores this process may use (affinity and container quotas applied), or the number of
        worker threads of a cluster.
    machine_cpu_count : int
        Logical cores of the whole machine; ``system_busy_cores`` is measured against this.
    system_busy_cores : float or None
        Cores busy on the whole machine during the sampling window, own work included.
        None when the probe cannot measure CPU use.
    own_busy_cores : float or None
        Cores used by this process and all its descendants during the same window.
    available_memory_bytes : int or None
        Memory that can be allocated without swapping.
    total_memory_bytes : int or None
        Physical memory of the machine (or the sum over cluster workers).
    shared : bool
        True when other users' programs may run on these cores (a workstation); False for
        cluster workers that only run what the scheduler gives them.
    window_s : float
        Length of the window the CPU rates were measured over, seconds.
    source : str
        ``"psutil"``, ``"basic"``, ``"fake"`` or ``"dask"``.
    """

    cpu_count: int
    machine_cpu_count: int
    system_busy_cores: float | None
    own_busy_cores: float | None
    available_memory_bytes: int | None
    total_memory_bytes: int | None
    shared: bool = True
    window_s: float = 0.0
    source: str = "psutil"

    @property
    def external_busy_cores(self) -> float | None:
        """Cores busy with other programs, scaled to the cores this process may use.

        Load from the toolkit's own process tree is subtracted. When only part of the machine is
        usable (CPU affinity, container quota) the external load is assumed to be spread evenly
        over all cores, so only its share on our cores counts. See
        :func:`~wfa_notebook.load_balancer.policy.external_demand` for the correction the
        balancer applies when the machine is saturated.
        """
        return external_demand(self.system_busy_cores, self.own_busy_cores,
                               self.machine_cpu_count, self.cpu_count)[0]


@runtime_checkable
class ResourceProbe(Protocol):
    """Interface of every probe the balancer accepts."""

    #: Identifies the machine or cluster measured; the balancer keeps one state per key.
    key: str

    def clock(self) -> float:
        """Monotonic time in seconds."""

    def cpu_count(self) -> int:
        """Cores this process may use."""

    def sample(self) -> ResourceSnapshot:
        """Measure CPU use since the previous sample, and memory now."""

    def available_memory_bytes(self) -> int | None:
        """Memory available now (cheap; read on every call that needs a memory cap)."""


def usable_cpu_count() -> int:
    """Cores this process may use: affinity, cgroup quota and LOKY_MAX_CPU_COUNT applied."""
    try:
        from joblib import cpu_count
    except ImportError:  # pragma: no cover - joblib is a hard dependency
        return os.cpu_count() or 1
    return max(1, int(cpu_count()))


# ----------------------------------------------------------------------------------------------
# Per-process memory helpers (Linux /proc; None elsewhere).
# ----------------------------------------------------------------------------------------------
def current_rss_bytes() -> int | None:
    """Resident set size of this process now, bytes."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            pages = int(statm.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


def reset_peak_rss() -> bool:
    """Reset this process's peak RSS counter (Linux >= 4.0); True on success.

    Only worker processes call this, never the user's own process, whose peak-memory figure
    other tools may be reporting.
    """
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


def peak_rss_bytes() -> int | None:
    """Peak RSS of this process since start or the last :func:`reset_peak_rss`, bytes."""
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


# ----------------------------------------------------------------------------------------------
# Real machine, with psutil.
# ----------------------------------------------------------------------------------------------
def _import_psutil():
    import psutil

    return psutil


class SystemProbe:
    """Measures this machine with psutil.

    The first :meth:`sample` measures the window since the probe was created; if that window is
    shorter than :attr:`MIN_WINDOW_S` it waits for the rest of it, once.
    """

    key = "local"

    #: psutil reads CPU times in clock ticks of 10 ms (USER_HZ = 100 on Linux); a 100 ms window
    #: resolves the load of each core to about 10 %, and is paid at most once per balancer.
    MIN_WINDOW_S = 0.1

    def __init__(self) -> None:
        self._psutil = _import_psutil()
        self._process = self._psutil.Process()
        self._cpu_count = usable_cpu_count()
        self._machine_cpu_count = self._psutil.cpu_count(logical=True) or self._cpu_count
        self._lock = threading.Lock()
        self._last = self._read_counters()

    def clock(self) -> float:
        """Monotonic time in seconds."""
        return time.monotonic()

    def cpu_count(self) -> int:
        """Cores this process may use."""
        return self._cpu_count

    def available_memory_bytes(self) -> int | None:
        """Memory available without swapping, bytes."""
        return int(self._psutil.virtual_memory().available)

    def sample(self) -> ResourceSnapshot:
        """Measure CPU use since the previous sample, and memory now."""
        with self._lock:
            previous = self._last
            current = self._read_counters()
            if current[0] - previous[0] < self.MIN_WINDOW_S:
                time.sleep(self.MIN_WINDOW_S - (current[0] - previous[0]))
                current = self._read_counters()
            self._last = current
        window = current[0] - previous[0]
        system_busy = max(0.0, (current[1] - previous[1]) / window)
        own_busy = max(0.0, (current[2] - previous[2]) / window)
        memory = self._psutil.virtual_memory()
        return ResourceSnapshot(
            cpu_count=self._cpu_count,
            machine_cpu_count=self._machine_cpu_count,
            system_busy_cores=min(system_busy, float(self._machine_cpu_count)),
            own_busy_cores=own_busy,
            available_memory_bytes=int(memory.available),
            total_memory_bytes=int(memory.total),
            shared=True,
            window_s=window,
            source="psutil",
        )

    def _read_counters(self) -> tuple[float, float, float]:
        """(monotonic time, machine busy CPU seconds, own process-tree CPU seconds)."""
        now = time.monotonic()
        times = self._psutil.cpu_times()
        idle = times.idle + getattr(times, "iowait", 0.0)
        busy = sum(times) - idle
        # Guest time is already included in user time on Linux; do not count it twice.
        busy -= getattr(times, "guest", 0.0) + getattr(times, "guest_nice", 0.0)
        return now, busy, self._own_tree_cpu_seconds()

    def _own_tree_cpu_seconds(self) -> float:
        """CPU seconds of this process and its descendants, reaped ones included."""
        psutil = self._psutil
        total = 0.0
        try:
            processes = [self._process, *self._process.children(recursive=True)]
        except psutil.Error:
            processes = [self._process]
        for process in processes:
            try:
                cpu = process.cpu_times()
            except psutil.Error:
                # The child ended between listing and reading: its time moves to its parent's
                # children_* counters once reaped.
                continue
            total += cpu.user + cpu.system + cpu.children_user + cpu.children_system
        return total


# ----------------------------------------------------------------------------------------------
# Without psutil.
# ----------------------------------------------------------------------------------------------
class BasicProbe:
    """Knows only the number of cores: the balancer then plans ``cpu_threshold x cores``."""

    key = "local"

    def __init__(self) -> None:
        self._cpu_count = usable_cpu_count()

    def clock(self) -> float:
        """Monotonic time in seconds."""
        return time.monotonic()

    def cpu_count(self) -> int:
        """Cores this process may use."""
        return self._cpu_count

    def available_memory_bytes(self) -> int | None:
        """Unknown without psutil."""
        return None

    def sample(self) -> ResourceSnapshot:
        """Cores only; CPU use and memory unknown."""
        return ResourceSnapshot(
            cpu_count=self._cpu_count,
            machine_cpu_count=self._cpu_count,
            system_busy_cores=None,
            own_busy_cores=None,
            available_memory_bytes=None,
            total_memory_bytes=None,
            source="basic",
        )


_warned_no_psutil = False
_warn_lock = threading.Lock()


def default_probe() -> SystemProbe | BasicProbe:
    """A :class:`SystemProbe`, or a :class:`BasicProbe` with a one-time warning without psutil."""
    global _warned_no_psutil
    try:
        return SystemProbe()
    except ImportError:
        with _warn_lock:
            first = not _warned_no_psutil
            _warned_no_psutil = True
        if first:
            msg = (
                "psutil is not installed, so the load balancer cannot see CPU or memory use: it "
                "will plan cpu_threshold x cores workers and apply no memory cap. "
                "Install it with `pip install psutil`."
            )
            warnings.warn(msg, RuntimeWarning, stacklevel=3)
        return BasicProbe()


# ----------------------------------------------------------------------------------------------
# Scripted machine for tests, benchmarks and notebooks that explain the policy.
# ----------------------------------------------------------------------------------------------
Cores = Union[float, Callable[[], float]]


class FakeProbe:
    """A scripted machine: set its load, advance its clock, count its samples.

    Parameters
    ----------
    cpu_count : int
        Cores of the simulated machine.
    external_busy_cores : float or callable
        Cores busy with other users' programs (a callable is read at each sample).
    own_busy_cores : float or callable
        Cores busy with the toolkit's own workers, e.g. ``lambda: balancer_workers``.
    available_memory_bytes : int or None
        Memory available.
    total_memory_bytes : int or None
        Physical memory (defaults to ``available_memory_bytes``).
    shared : bool
        False to simulate dedicated cluster workers.
    measures_cpu : bool
        False to simulate a machine without psutil.
    contention : bool
        True: when external and own demand together exceed the cores, share the cores in
        proportion to demand (as the kernel does), so both are *measured* lower than they
        want. False (default): report both exactly as set, even beyond the cores.
    key : str
        State key in the balancer.

    Examples
    --------
    >>> probe = FakeProbe(cpu_count=64, external_busy_cores=10.0)
    >>> probe.sample().external_busy_cores
    10.0
    >>> probe.advance(5.0); probe.clock()
    5.0
    """

    def __init__(
        self,
        cpu_count: int = 4,
        external_busy_cores: Cores = 0.0,
        own_busy_cores: Cores = 0.0,
        available_memory_bytes: int | None = 16 * 1024**3,
        total_memory_bytes: int | None = None,
        shared: bool = True,
        measures_cpu: bool = True,
        contention: bool = False,
        key: str = "fake",
    ) -> None:
        self.key = key
        self.cpu_count_value = int(cpu_count)
        self.external_busy_cores = external_busy_cores
        self.own_busy_cores = own_busy_cores
        self.available_memory = available_memory_bytes
        self.total_memory = total_memory_bytes if total_memory_bytes is not None else (
            available_memory_bytes
        )
        self.shared = shared
        self.measures_cpu = measures_cpu
        self.contention = contention
        self.now = 0.0
        self.samples = 0

    def advance(self, seconds: float) -> None:
        """Move the simulated clock forward."""
        self.now += float(seconds)

    def clock(self) -> float:
        """Simulated time in seconds."""
        return self.now

    def cpu_count(self) -> int:
        """Cores of the simulated machine."""
        return self.cpu_count_value

    def available_memory_bytes(self) -> int | None:
        """Simulated available memory."""
        return self.available_memory

    def sample(self) -> ResourceSnapshot:
        """Snapshot of the scripted state; counts calls in :attr:`samples`."""
        self.samples += 1
        cores = float(self.cpu_count_value)
        external = _value(self.external_busy_cores)
        own = _value(self.own_busy_cores)
        if self.contention and external + own > cores:
            share = cores / (external + own)
            external, own = external * share, own * share
        system = external + own if self.measures_cpu else None
        return ResourceSnapshot(
            cpu_count=self.cpu_count_value,
            machine_cpu_count=self.cpu_count_value,
            system_busy_cores=system,
            own_busy_cores=own if self.measures_cpu else None,
            available_memory_bytes=self.available_memory,
            total_memory_bytes=self.total_memory,
            shared=self.shared,
            window_s=0.0,
            source="fake",
        )


def _value(cores: Cores) -> float:
    return float(cores() if callable(cores) else cores)
