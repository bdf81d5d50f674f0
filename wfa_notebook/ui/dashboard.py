"""The live load-balancer dashboard: an ipywidgets skin over :class:`LoadBalancerMetrics`.

>>> from wfa_notebook.ui import Dashboard
>>> dashboard = Dashboard()                           # doctest: +SKIP
>>> with dashboard.attached() as run:                 # doctest: +SKIP
...     results = parallel_map(process_file, files)
>>> print(run)                                        # doctest: +SKIP

All counting happens in :class:`~wfa_notebook.ui.metrics.LoadBalancerMetrics`; the panel builds
its widgets once and copies the model's state into them in one method, :meth:`Dashboard._refresh`,
called after every refresh of the model (at most 4 a second, from a background thread).
"""
from __future__ import annotations

import contextlib
import html
import io
import math
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ..errors import WfaDependencyError
from ..plot import _axes
from .metrics import (
    MIN_REFRESH_INTERVAL_S,
    LoadBalancerMetrics,
    MetricsSnapshot,
    RunSummary,
    WorkerTimeline,
    check_refresh_interval,
    ensure_load_balancing,
)
from .statistics import BalancerSource, DurationHistogram, duration_histogram, statistics_table

try:
    import ipywidgets as widgets
except ImportError as exc:  # pragma: no cover - ipywidgets is a dependency; a clear message if removed
    msg = (
        "The load-balancer dashboard needs ipywidgets: pip install ipywidgets (and use "
        "JupyterLab >= 4 or Notebook >= 7). Without widgets, use "
        "wfa_notebook.ui.LoadBalancerMetrics, which has the same numbers."
    )
    raise WfaDependencyError(msg) from exc

__all__ = [
    "Dashboard",
    "show_dashboard",
    "show_statistics",
    "run_watched",
    "plot_task_durations",
    "plot_worker_timeline",
    "HISTOGRAM_REDRAW_INTERVAL_S",
    "MAX_DRAW_SHARE",
]

#: Plots are redrawn at most once per this many seconds, and only when their data changed.
HISTOGRAM_REDRAW_INTERVAL_S = 1.0

#: ... and at most this share of the kernel's time goes to drawing them: drawing and PNG-encoding
#: both plots took 150-250 ms on the 2-core development machine (60-120 ms per plot, most of it
#: in matplotlib's tick and text layout), so there the plots are redrawn every ~2 s while the
#: numbers beside them keep refreshing 4 times a second.
MAX_DRAW_SHARE = 0.1

# Size of each plot: two fit side by side in a notebook column.
_FIGSIZE_IN = (4.4, 2.7)
_DPI = 80
_MARGINS = {"left": 0.15, "right": 0.97, "bottom": 0.24, "top": 0.89}


# ----------------------------------------------------------------------------------------------
# Plots (matplotlib, no pyplot; usable outside the dashboard)
# ----------------------------------------------------------------------------------------------
def _time_unit(seconds: float) -> tuple[str, float]:
    if seconds < 1e-3:
        return "us", 1e6
    if seconds < 1.0:
        return "ms", 1e3
    return "s", 1.0


def plot_task_durations(histogram: DurationHistogram, ax: Any = None) -> Any:
    """Histogram of task durations (from :meth:`LoadBalancerMetrics.duration_histogram`).

    Parameters
    ----------
    histogram : DurationHistogram
    ax : matplotlib Axes, optional
        Default: a new Figure's axes.

    Returns
    -------
    matplotlib Axes
    """
    ax = _axes(ax, _FIGSIZE_IN)
    if histogram.n_tasks == 0:
        ax.text(0.5, 0.5, "no tasks yet", ha="center", va="center", transform=ax.transAxes,
                color="0.4")
        ax.set_xlabel("task duration [s]")
    else:
        unit, scale = _time_unit(float(histogram.edges_s[-1]))
        ax.stairs(histogram.counts, histogram.edges_s * scale, fill=True, color="tab:blue",
                  alpha=0.8)
        if histogram.log_scale:
            from matplotlib.ticker import FuncFormatter, NullFormatter

            ax.set_xscale("log")
            # Plain numbers: matplotlib's default 10^n labels go through mathtext, which
            # alone tripled the time to draw this plot.
            ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(f"task duration [{unit}]")
    ax.set_ylabel("tasks")
    ax.set_title(f"task durations ({histogram.n_tasks} recent tasks)", fontsize="medium")
    return ax


def plot_worker_timeline(timeline: WorkerTimeline, ax: Any = None) -> Any:
    """Workers of the latest call and the balancer's capacity over time, as steps.

    Parameters
    ----------
    timeline : WorkerTimeline
        From :meth:`LoadBalancerMetrics.timeline`.
    ax : matplotlib Axes, optional
        Default: a new Figure's axes.

    Returns
    -------
    matplotlib Axes
    """
    from matplotlib.ticker import MaxNLocator

    ax = _axes(ax, _FIGSIZE_IN)
    if len(timeline.times_s) == 0:
        ax.text(0.5, 0.5, "no parallel call yet", ha="center", va="center",
                transform=ax.transAxes, color="0.4")
    else:
        # Each value holds until the next change, the last one until the latest refresh.
        first = float(timeline.times_s[0])
        until = max(timeline.until_s, float(timeline.times_s[-1]))
        times = np.append(timeline.times_s, until)
        ax.step(times, np.append(timeline.workers, timeline.workers[-1]), where="post",
                color="tab:blue", label="workers (latest call)")
        ax.step(times, np.append(timeline.capacity, timeline.capacity[-1]), where="post",
                color="tab:orange", ls="--", label="capacity")
        ax.plot(timeline.times_s, timeline.workers, "o", color="tab:blue", ms=3)
        top = int(max(timeline.workers.max(), timeline.capacity.max()))
        ax.set_ylim(0, top + 1)
        ax.set_xlim(first, max(until, first + 1.0))
        ax.legend(loc="lower right", fontsize="small")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("time since the dashboard started [s]")
    ax.set_ylabel("workers")
    ax.set_title("worker count", fontsize="medium")
    return ax


def _new_figure() -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # A bare Figure with an Agg canvas: no pyplot state, no inline-backend double display.
    # Fixed margins: constrained layout draws the figure twice and took a third more time.
    figure = Figure(figsize=_FIGSIZE_IN, dpi=_DPI)
    FigureCanvasAgg(figure)
    return figure


def _png(figure: Any, draw: Callable[[Any], Any]) -> bytes:
    from matplotlib.ticker import NullLocator

    figure.clear()  # also resets the margins
    figure.subplots_adjust(**_MARGINS)
    ax = draw(figure.add_subplot())
    # Each minor tick is an artist of its own; a log axis has dozens of them.
    ax.xaxis.set_minor_locator(NullLocator())
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


# ----------------------------------------------------------------------------------------------
# The panel
# ----------------------------------------------------------------------------------------------
def _ipython() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()


class Dashboard(widgets.VBox):
    """Live view of a load balancer: workers, machine load, tasks, durations, decisions.

    Parameters
    ----------
    balancer : DynamicLoadBalancer, StreamingPlugin, callable or None
        What to watch (see :class:`~wfa_notebook.ui.metrics.LoadBalancerMetrics`); default:
        the global balancer.
    display : bool
        Show the panel now (in a notebook). ``display=False`` builds it without showing it,
        for tests or to place it inside another layout.
    interval_s : float
        Seconds between live refreshes, at least 0.25.
    metrics : LoadBalancerMetrics, optional
        Use this model instead of building one (``balancer`` is then ignored).

    Attributes
    ----------
    model : LoadBalancerMetrics
        The plain model doing the counting (usable without widgets).
    children : tuple of widgets
        ``[0]`` status line (HTML); ``[1]`` workers: current, min, max (IntText); ``[2]`` machine:
        system CPU %, this kernel's CPU %, memory % (FloatText); ``[3]`` tasks: done, failed,
        throughput in tasks/s; ``[4]`` task-duration histogram and worker-count timeline (Image,
        PNG); ``[5]`` latest decision in words (HTML); ``[6]`` summary of the latest
        :meth:`attached` block (HTML). Each is also an attribute (``workers_text``,
        ``tasks_done_text``, ``histogram_image`` ...).
    """

    def __init__(
        self,
        balancer: BalancerSource = None,
        *,
        display: bool = True,
        interval_s: float = MIN_REFRESH_INTERVAL_S,
        metrics: LoadBalancerMetrics | None = None,
    ) -> None:
        check_refresh_interval(interval_s)
        super().__init__()
        self.model = metrics if metrics is not None else LoadBalancerMetrics(balancer)
        self.interval_s = interval_s
        self.draw_count = 0
        self._lock = threading.RLock()
        self._drawn_at = -math.inf
        self._draw_seconds = 0.0
        self._drawn_version: tuple | None = None
        self._hooked: Any = None
        self._force_draw = False  # set by refresh() for the update it triggers
        self._histogram_figure = _new_figure()
        self._timeline_figure = _new_figure()
        self._build()
        self.model.add_listener(self._on_model_refresh)
        self.model.refresh()
        if display:
            from IPython.display import display as show

            show(self)

    # --- construction --------------------------------------------------------------------------

    def _build(self) -> None:
        style = {"description_width": "110px"}
        cell = widgets.Layout(width="220px")

        def number(kind: type, description: str, css: str) -> Any:
            readout = kind(value=0, description=description, disabled=True, style=style,
                           layout=cell)
            readout.add_class(css)
            return readout

        self.status_html = widgets.HTML()
        self.status_html.add_class("wfa-dashboard-status")
        self.workers_text = number(widgets.IntText, "workers", "wfa-dashboard-workers")
        self.min_workers_text = number(widgets.IntText, "min workers", "wfa-dashboard-min-workers")
        self.max_workers_text = number(widgets.IntText, "max workers", "wfa-dashboard-max-workers")
        self.system_cpu_text = number(widgets.FloatText, "system CPU %", "wfa-dashboard-system-cpu")
        self.kernel_cpu_text = number(widgets.FloatText, "kernel CPU %", "wfa-dashboard-kernel-cpu")
        self.memory_text = number(widgets.FloatText, "memory %", "wfa-dashboard-memory")
        self.tasks_done_text = number(widgets.IntText, "tasks done", "wfa-dashboard-tasks-done")
        self.tasks_failed_text = number(widgets.IntText, "tasks failed", "wfa-dashboard-tasks-failed")
        self.throughput_text = number(widgets.FloatText, "tasks / s", "wfa-dashboard-throughput")
        self.kernel_cpu_text.tooltip = (
            "CPU used by this Python process and its worker processes, % of all cores"
        )
        self.histogram_image = widgets.Image(format="png")
        self.histogram_image.add_class("wfa-dashboard-histogram")
        self.timeline_image = widgets.Image(format="png")
        self.timeline_image.add_class("wfa-dashboard-timeline")
        self.decision_html = widgets.HTML()
        self.decision_html.add_class("wfa-dashboard-decision")
        self.run_html = widgets.HTML()
        self.run_html.add_class("wfa-dashboard-run")
        self.add_class("wfa-dashboard")
        self.children = [
            self.status_html,
            widgets.HBox([self.workers_text, self.min_workers_text, self.max_workers_text]),
            widgets.HBox([self.system_cpu_text, self.kernel_cpu_text, self.memory_text]),
            widgets.HBox([self.tasks_done_text, self.tasks_failed_text, self.throughput_text]),
            widgets.HBox([self.histogram_image, self.timeline_image]),
            self.decision_html,
            self.run_html,
        ]

    # --- live updates ---------------------------------------------------------------------------

    @property
    def live(self) -> bool:
        """True while the panel refreshes itself in the background."""
        return self.model.running

    def start(self) -> bool:
        """Refresh live: a background thread, plus a final refresh after every notebook cell.

        Returns
        -------
        bool
            True if this call started live updates, False if they were already running.
        """
        started = self.model.start(self.interval_s)
        ip = _ipython()
        with self._lock:
            if ip is not None and self._hooked is None:
                # The refresh when a cell ends keeps the final state in saved notebooks.
                ip.events.register("post_run_cell", self._after_cell)
                self._hooked = ip
        self._refresh()
        return started

    def stop(self) -> None:
        """Stop live updates, after one last synchronous refresh."""
        self.model.stop()
        with self._lock:
            ip, self._hooked = self._hooked, None
        if ip is not None:
            with contextlib.suppress(ValueError):  # already unregistered
                ip.events.unregister("post_run_cell", self._after_cell)
        self.refresh()

    def refresh(self) -> MetricsSnapshot:
        """Refresh the model and the panel now, plots included if their data changed."""
        # The model calls _on_model_refresh itself; the flag makes that one update redraw too.
        self._force_draw = True
        try:
            return self.model.refresh()
        finally:
            self._force_draw = False

    @contextlib.contextmanager
    def attached(self) -> Iterator[RunSummary]:
        """Live updates during a block, then a final synchronous refresh and a summary.

        Yields
        ------
        RunSummary
            Filled in when the block ends (also when it raises) and shown in the panel.

        Examples
        --------
        >>> with dashboard.attached() as run:                 # doctest: +SKIP
        ...     results = parallel_map(f, items)
        >>> run.tasks                                         # doctest: +SKIP
        100
        """
        summary = self.model.begin_run()
        started = not self.live and self.start()
        try:
            yield summary
        finally:
            if started:
                self.stop()
            else:
                self.refresh()
            self.model.end_run(summary)
            self.run_html.value = f"<b>Last block:</b> {html.escape(str(summary))}"

    def _after_cell(self, result: Any = None) -> None:
        self.refresh()

    def _on_model_refresh(self, _snapshot: MetricsSnapshot) -> None:
        self._refresh(force_draw=self._force_draw)

    # --- one refresh: model state into widgets --------------------------------------------------

    def _refresh(self, force_draw: bool = False) -> None:
        """Copy the model's latest snapshot into the widgets; redraw plots at most once a second.

        ``force_draw`` redraws regardless of the last redraw's time (the final refresh of a
        block), but still only when the data changed.
        """
        snap = self.model.snapshot
        with self._lock:
            self.status_html.value = self._status(snap)
            self.workers_text.value = snap.workers or 0
            self.min_workers_text.value = snap.min_workers or 0
            self.max_workers_text.value = snap.max_workers or 0
            self.system_cpu_text.value = _rounded(snap.system_cpu_percent)
            self.kernel_cpu_text.value = _rounded(snap.kernel_cpu_percent)
            self.memory_text.value = _rounded(snap.memory_percent)
            self.tasks_done_text.value = snap.tasks_done
            self.tasks_failed_text.value = snap.tasks_failed
            self.throughput_text.value = _rounded(snap.throughput_tasks_per_s)
            self.decision_html.value = (
                f"<b>Latest decision:</b> {html.escape(snap.last_decision)}"
            )
            version = (snap.balancing, snap.tasks_done, snap.tasks_failed, snap.workers,
                       snap.capacity)
            interval = max(HISTOGRAM_REDRAW_INTERVAL_S, self._draw_seconds / MAX_DRAW_SHARE)
            due = force_draw or snap.time_s - self._drawn_at >= interval
            if version != self._drawn_version and due:
                self._draw()
                self._drawn_version = version
                self._drawn_at = snap.time_s

    def _draw(self) -> None:
        started = time.perf_counter()
        histogram = self.model.duration_histogram()
        timeline = self.model.timeline()
        self.histogram_image.value = _png(
            self._histogram_figure, lambda ax: plot_task_durations(histogram, ax)
        )
        self.timeline_image.value = _png(
            self._timeline_figure, lambda ax: plot_worker_timeline(timeline, ax)
        )
        self.draw_count += 1
        self._draw_seconds = time.perf_counter() - started

    def _status(self, snap: MetricsSnapshot) -> str:
        state = "on" if snap.balancing else "off"
        parts = [f"<b>Load balancer</b> ({html.escape(snap.source)}): {state}"]
        parts.append("live" if self.live else "not live")
        if snap.dask_scheduler:
            parts.append(f"tasks run on the Dask cluster at {html.escape(snap.dask_scheduler)}; "
                         "CPU and memory are this machine's")
        return " &middot; ".join(parts)

    def close(self) -> None:
        """Stop live updates and close the widgets."""
        model = getattr(self, "model", None)
        if model is None:  # __init__ refused its arguments; close() runs from __del__
            return
        if self.live or self._hooked is not None:
            self.stop()
        model.remove_listener(self._on_model_refresh)
        for child in self.children:
            for grandchild in getattr(child, "children", ()):
                grandchild.close()
            child.close()
        super().close()

    def __repr__(self) -> str:
        snap = self.model.snapshot
        workers = f"{snap.workers} workers, " if snap.workers is not None else ""
        return (
            f"<Dashboard of the {snap.source}: {workers}{snap.tasks_done} tasks done, "
            f"{'live' if self.live else 'not live'}>"
        )


def _rounded(value: float | None) -> float:
    # Unknown (no psutil, or the first 0.1 s) shows as 0; widgets cannot show None.
    return 0.0 if value is None else round(float(value), 1)


# ----------------------------------------------------------------------------------------------
# What the magics call
# ----------------------------------------------------------------------------------------------
_shown_lock = threading.Lock()
_shown: Dashboard | None = None


def show_dashboard(balancer: BalancerSource = None, interval_s: float = MIN_REFRESH_INTERVAL_S
                   ) -> Dashboard:
    """Show a live dashboard (``%wfa_dashboard``); the one shown before stops updating.

    Parameters
    ----------
    balancer : DynamicLoadBalancer, StreamingPlugin, callable or None
        What to watch; default: the global balancer.
    interval_s : float
        Seconds between live refreshes, at least 0.25.

    Returns
    -------
    Dashboard
        Already displayed and live; ``.stop()`` ends its updates.
    """
    global _shown
    dashboard = Dashboard(balancer, display=True, interval_s=interval_s)
    with _shown_lock:
        previous, _shown = _shown, dashboard
    if previous is not None:
        previous.stop()
    dashboard.start()
    return dashboard


def show_statistics(balancer: BalancerSource = None, bins: int = 20) -> None:
    """Display a balancer's statistics table and task-duration histogram (``%wfa_stats``).

    Parameters
    ----------
    balancer : DynamicLoadBalancer, StreamingPlugin or None
        Default: the global balancer.
    bins : int
        Bins of the histogram.
    """
    from IPython.display import Image, display

    display(statistics_table(balancer))
    histogram = duration_histogram(balancer, bins=bins)
    if histogram.n_tasks:
        png = _png(_new_figure(), lambda ax: plot_task_durations(histogram, ax))
        display(Image(data=png, format="png"))


def run_watched(func: Callable[[], Any], *, workers: int | None = None, display: bool = True
                ) -> RunSummary:
    """Run ``func()`` under the load balancer with a dashboard attached (``%%wfa_parallel``).

    Parameters
    ----------
    func : callable
        Called without arguments; its parallel calls are watched.
    workers : int, optional
        At most this many workers, when global load balancing is off (a temporary balancer is
        then used, see :func:`~wfa_notebook.ui.metrics.ensure_load_balancing`).
    display : bool
        Show the dashboard (False in tests).

    Returns
    -------
    RunSummary
        Tasks, failures, time and workers used; ``func``'s own result is not kept (use
        ``with Dashboard().attached(): ...`` to keep it).
    """
    with ensure_load_balancing(workers):
        dashboard = Dashboard(display=display)
        with dashboard.attached() as summary:
            func()
    return summary
