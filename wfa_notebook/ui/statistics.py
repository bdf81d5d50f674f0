"""One-shot views of a load balancer: status line, statistics table, task-duration histogram.

Plain functions over :class:`~wfa_notebook.load_balancer.DynamicLoadBalancer` (no widgets), used
by the live model (:mod:`wfa_notebook.ui.metrics`), the dashboard and the ``%wfa_stats`` and
``%wfa_balance`` magics:

>>> from wfa_notebook.ui.statistics import balancer_status, statistics_table
>>> print(balancer_status())                       # doctest: +SKIP
Load balancing on (global load balancer): 4 workers at the latest call; min 1, max 8 workers, ...
>>> statistics_table()                             # doctest: +SKIP
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import WfaConfigError
from ..load_balancer import DynamicLoadBalancer
from ..tables import Table

__all__ = [
    "BalancerSource",
    "resolve_balancer",
    "recent_durations",
    "DurationHistogram",
    "histogram_of_durations",
    "duration_histogram",
    "balancer_status",
    "statistics_table",
    "load_balancing_off_text",
    "check_bins",
]

#: What a model can watch: None (the global balancer), a DynamicLoadBalancer, a StreamingPlugin
#: class or instance with its own balancer, or a callable returning a balancer or None.
BalancerSource = Any


@dataclass(frozen=True)
class DurationHistogram:
    """Histogram of recent task durations.

    Attributes
    ----------
    counts : numpy.ndarray
        Tasks per bin (int64).
    edges_s : numpy.ndarray
        Bin edges, seconds (``len(counts) + 1`` values; empty without tasks).
    log_scale : bool
        True when the bins are spaced logarithmically (durations spanning more than a decade).
    """

    counts: np.ndarray
    edges_s: np.ndarray
    log_scale: bool

    @property
    def n_tasks(self) -> int:
        """Tasks in the histogram."""
        return int(self.counts.sum())


# ----------------------------------------------------------------------------------------------
# Which balancer
# ----------------------------------------------------------------------------------------------
def resolve_balancer(
    source: BalancerSource,
) -> tuple[Callable[[], DynamicLoadBalancer | None], str]:
    """A function returning the balancer to watch now, and that balancer in words.

    Parameters
    ----------
    source : None, DynamicLoadBalancer, StreamingPlugin class or instance, or callable
        None: the global balancer, looked up at every call of the returned function (so
        enabling, replacing and disabling global load balancing are followed). A
        StreamingPlugin: its own balancer (instances with the same ``load_balancer_config``
        share one). A callable: returns a balancer or None.

    Raises
    ------
    WfaConfigError
        A plugin without a balancer of its own, or something that is no balancer at all.
    """
    if source is None:
        from ..execution import get_executor_manager

        return get_executor_manager().active_balancer, "global load balancer"
    if isinstance(source, DynamicLoadBalancer):
        return (lambda: source), "load balancer given"
    from ..plugins import StreamingPlugin

    if isinstance(source, type) and issubclass(source, StreamingPlugin):
        # Instances with the same load_balancer_config share one balancer (and its history).
        source = source()
    if isinstance(source, StreamingPlugin):
        name = type(source).__name__
        balancer = source.load_balancer
        if balancer is None:
            msg = (
                f"Plugin {name} has no load balancer of its own (use_load_balancer is False). "
                f"Set `use_load_balancer = True` on {name}, or watch the global load balancer "
                "(balancer=None)."
            )
            raise WfaConfigError(msg)
        return (lambda: balancer), f"balancer of plugin {name}"
    if callable(source):
        return source, getattr(source, "__qualname__", "balancer from a function")
    msg = (
        f"Cannot watch a {type(source).__name__}: expected None (the global load balancer), a "
        "DynamicLoadBalancer, a StreamingPlugin (class or instance) with use_load_balancer = "
        "True, or a function returning a DynamicLoadBalancer."
    )
    raise WfaConfigError(msg)


def recent_durations(balancer: DynamicLoadBalancer) -> np.ndarray:
    """Durations of the balancer's recent tasks (its last 1000), seconds, oldest first."""
    return np.asarray(balancer.recent_durations(), dtype=np.float64)


def histogram_of_durations(durations: np.ndarray, bins: int) -> DurationHistogram:
    """Histogram of durations in seconds; log-spaced bins when they span more than a decade."""
    check_bins(bins)
    durations = np.asarray(durations, dtype=np.float64)
    durations = durations[np.isfinite(durations) & (durations >= 0)]
    if not len(durations):
        return DurationHistogram(np.zeros(0, np.int64), np.zeros(0, np.float64), False)
    low, high = float(durations.min()), float(durations.max())
    # Task durations often span decades (a cache hit vs. a full chunk); linear bins would put
    # nearly everything in the first bin.
    log_scale = low > 0 and high / low > 10
    if log_scale:
        edges = np.geomspace(low, high, bins + 1)
    else:
        if high == low:
            low, high = max(0.0, low - 0.5 * low - 1e-6), high + 0.5 * high + 1e-6
        edges = np.linspace(low, high, bins + 1)
    counts, edges = np.histogram(durations, bins=edges)
    return DurationHistogram(counts.astype(np.int64), edges.astype(np.float64), bool(log_scale))


def duration_histogram(balancer: BalancerSource = None, bins: int = 20) -> DurationHistogram:
    """Histogram of a balancer's recent task durations.

    Parameters
    ----------
    balancer : DynamicLoadBalancer, StreamingPlugin or None
        Default: the global balancer (an empty histogram while load balancing is off).
    bins : int
        Number of bins; log-spaced when the durations span more than a factor 10.
    """
    check_bins(bins)  # before looking for the balancer
    resolve, _ = resolve_balancer(balancer)
    found = resolve()
    durations = recent_durations(found) if found is not None else np.zeros(0)
    return histogram_of_durations(durations, bins)


def check_bins(bins: Any) -> None:
    """Refuse a number of bins that is not a positive integer."""
    if not isinstance(bins, int) or isinstance(bins, bool) or bins < 1:
        msg = f"bins={bins!r} must be an integer >= 1 (default 20)."
        raise WfaConfigError(msg)


# ----------------------------------------------------------------------------------------------
# One-shot views
# ----------------------------------------------------------------------------------------------
def load_balancing_off_text() -> str:
    """What the views say while global load balancing is off."""
    from ..load_balancer.probe import usable_cpu_count

    return (
        f"Load balancing is off: parallel calls use all {usable_cpu_count()} usable cores. "
        "Enable it with enable_global_load_balancing() (or %wfa_balance on in a notebook)."
    )


def balancer_status(balancer: BalancerSource = None) -> str:
    """One line saying whether load balancing is on, with which limits, and what it did.

    Parameters
    ----------
    balancer : DynamicLoadBalancer, StreamingPlugin or None
        Default: the global balancer.
    """
    resolve, label = resolve_balancer(balancer)
    found = resolve()
    if found is None:
        return load_balancing_off_text()
    stats = found.get_statistics()
    last = stats["last_decision"]
    if last:
        workers = last["workers"]
        now = f"{workers} worker{'s' if workers != 1 else ''} at the latest call"
    else:
        now = "no call yet"
    return (
        f"Load balancing on ({label}): {now}; min {stats['min_workers']}, max "
        f"{stats['max_workers']} workers, cpu_threshold {stats['cpu_threshold']:.2f}, "
        f"memory_threshold {stats['memory_threshold']:.2f}, checks every "
        f"{stats['check_interval']:g} s; {stats['total_tasks']} tasks done, "
        f"{stats['failed_tasks']} failed."
    )


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 1e-3:
        return f"{value * 1e6:.0f} us"
    if value < 1:
        return f"{value * 1e3:.1f} ms"
    return f"{value:.2f} s"


def statistics_table(balancer: BalancerSource = None) -> Table:
    """A balancer's statistics as a two-column table (text in a terminal, HTML in Jupyter).

    Parameters
    ----------
    balancer : DynamicLoadBalancer, StreamingPlugin or None
        Default: the global balancer.

    Returns
    -------
    Table
        Rows ``{"statistic": ..., "value": ...}``; a single row saying so while load balancing
        is off.
    """
    resolve, label = resolve_balancer(balancer)
    found = resolve()
    if found is None:
        return Table([{"statistic": "load balancing", "value": load_balancing_off_text()}],
                     title="Load balancer statistics")
    stats = found.get_statistics()
    last = stats["last_decision"]
    rate = stats["success_rate"]
    memory = stats["avg_memory_mb"]
    rows = [
        ("balancer", label),
        ("workers (latest call)", last["workers"] if last else "-"),
        ("capacity (latest check)", stats["current_workers"] if stats["current_workers"] else "-"),
        ("min / max workers", f"{stats['min_workers']} / {stats['max_workers']}"),
        ("parallel calls", stats["total_calls"]),
        ("tasks done", stats["total_tasks"]),
        ("tasks failed", stats["failed_tasks"]),
        ("success rate", f"{100 * rate:.1f} %" if rate is not None else "-"),
        ("task duration mean", _seconds(stats["avg_duration"])),
        ("task duration median", _seconds(stats["p50_duration"])),
        ("task duration 95th percentile", _seconds(stats["p95_duration"])),
        ("task duration max", _seconds(stats["max_duration"])),
        ("memory per task (mean)", f"{memory:.1f} MiB" if memory is not None else "not measured"),
        ("CPU per wall second (threads)",
         f"{stats['cpu_fraction']:.2f}" if stats["cpu_fraction"] is not None else "-"),
        ("cpu_threshold / memory_threshold",
         f"{stats['cpu_threshold']:.2f} / {stats['memory_threshold']:.2f}"),
        ("check interval", f"{stats['check_interval']:g} s"),
        ("latest decision", last["reason"] if last else "no call yet"),
    ]
    return Table([{"statistic": name, "value": value} for name, value in rows],
                 title="Load balancer statistics")
