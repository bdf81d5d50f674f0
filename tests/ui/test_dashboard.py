"""The live dashboard panel: widget values after real parallel work (no browser)."""
from __future__ import annotations

import threading

import pytest

pytest.importorskip("ipywidgets")

from wfa_notebook.context import Context  # noqa: E402
from wfa_notebook.errors import WfaTaskError  # noqa: E402
from wfa_notebook.execution import (  # noqa: E402
    enable_global_load_balancing,
    get_executor_manager,
    parallel_map,
)
from wfa_notebook.load_balancer import DynamicLoadBalancer, FakeProbe  # noqa: E402
from wfa_notebook.ui import Dashboard, LoadBalancerMetrics, run_watched  # noqa: E402
from wfa_notebook.ui.dashboard import HISTOGRAM_REDRAW_INTERVAL_S  # noqa: E402
from toy_plugins import PulseSource, Scaled  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"
GiB = 1024**3

# Positions in Dashboard.children (documented in its docstring).
WORKERS, MACHINE, TASKS, PLOTS, DECISION, RUN = 1, 2, 3, 4, 5, 6


pytestmark = pytest.mark.usefixtures("plain_execution")


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def balanced(max_workers: int = 3) -> DynamicLoadBalancer:
    """The global balancer on a scripted idle 4-core machine: decisions are reproducible."""
    return enable_global_load_balancing(max_workers=max_workers, cpu_threshold=1.0,
                                        probe=FakeProbe(cpu_count=4))


def machine() -> FakeProbe:
    return FakeProbe(cpu_count=4, external_busy_cores=1.0, own_busy_cores=2.0,
                     available_memory_bytes=6 * GiB, total_memory_bytes=8 * GiB)


def square(x):
    return x * x


def fail_on_three(x):
    if x == 3:
        raise ValueError("three")
    return x


def values(box):
    return [child.value for child in box.children]


def test_panel_shows_workers_tasks_plots_and_decision_after_a_real_parallel_map():
    balanced(max_workers=3)
    dashboard = Dashboard(display=False, metrics=LoadBalancerMetrics(usage_probe=machine()))
    with dashboard.attached() as run:
        parallel_map(square, range(40))
    children = dashboard.children
    assert values(children[WORKERS]) == [3, 1, 3]  # current, min, max
    assert values(children[MACHINE]) == [75.0, 50.0, 25.0]  # system CPU, kernel CPU, memory %
    assert values(children[TASKS])[:2] == [40, 0]
    assert values(children[TASKS])[2] > 0  # throughput
    histogram, timeline = children[PLOTS].children
    assert bytes(histogram.value).startswith(PNG) and bytes(timeline.value).startswith(PNG)
    assert "3 workers" in children[DECISION].value
    assert "40 tasks (0 failed)" in children[RUN].value and "up to 3 workers" in children[RUN].value
    assert "global load balancer" in children[0].value and ": on" in children[0].value
    assert run.tasks == 40 and not dashboard.live


def test_failed_tasks_are_counted():
    balanced(max_workers=2)
    dashboard = Dashboard(display=False, metrics=LoadBalancerMetrics(usage_probe=machine()))
    with pytest.raises(WfaTaskError):
        with dashboard.attached():
            parallel_map(fail_on_three, range(8), max_workers=1)
    assert dashboard.tasks_failed_text.value == 1
    assert dashboard.tasks_done_text.value == 4  # 0, 1, 2 and the failing 3
    assert "1 failed" in dashboard.run_html.value


def test_panel_while_load_balancing_is_off_says_how_to_turn_it_on():
    dashboard = Dashboard(display=False, metrics=LoadBalancerMetrics(usage_probe=machine()))
    assert ": off" in dashboard.status_html.value
    assert "enable_global_load_balancing" in dashboard.decision_html.value
    assert dashboard.workers_text.value == 0 and dashboard.tasks_done_text.value == 0


def test_context_processing_shows_one_task_per_chunk(tmp_path):
    balanced(max_workers=2)
    ctx = Context(tmp_path, register=[PulseSource, Scaled], config={"n_rows": 300, "chunk_rows": 20})
    dashboard = Dashboard(display=False, metrics=LoadBalancerMetrics(usage_probe=machine()))
    with dashboard.attached():
        ctx.get_array("run1", "scaled", progress=False)
    assert dashboard.tasks_done_text.value == 15
    assert dashboard.workers_text.value == 2


def test_plots_are_redrawn_at_most_once_a_second_and_only_when_data_changed():
    balancer = DynamicLoadBalancer(probe=FakeProbe(cpu_count=4))
    clock = FakeClock()
    dashboard = Dashboard(balancer, display=False,
                          metrics=LoadBalancerMetrics(balancer, usage_probe=machine(), clock=clock))
    assert dashboard.draw_count == 1  # built with the current state
    balancer.decide(10)
    balancer.record_tasks([0.01] * 5)
    dashboard.model.refresh()  # what the background thread does
    clock.now += 0.5
    dashboard.model.refresh()
    assert dashboard.draw_count == 1  # numbers updated, plots not yet
    assert dashboard.tasks_done_text.value == 5

    clock.now += 60.0  # beyond any redraw interval, however slow drawing is here
    dashboard.model.refresh()
    assert dashboard.draw_count == 2
    clock.now += 60.0
    dashboard.model.refresh()
    assert dashboard.draw_count == 2  # nothing changed: no redraw

    balancer.record_tasks([0.02])
    dashboard.refresh()  # the final refresh of a block draws at once
    assert dashboard.draw_count == 3
    assert HISTOGRAM_REDRAW_INTERVAL_S >= 1.0


def test_live_updates_come_from_a_background_thread():
    balanced(max_workers=2)
    dashboard = Dashboard(display=False, metrics=LoadBalancerMetrics(usage_probe=machine()))
    parallel_map(square, range(25))
    seen = threading.Event()

    def listener(snapshot):
        if snapshot.tasks_done == 25 and threading.current_thread().name == "wfa-metrics":
            seen.set()

    dashboard.model.add_listener(listener)
    assert dashboard.start() is True and dashboard.live
    try:
        assert seen.wait(timeout=10)
        assert dashboard.tasks_done_text.value == 25
    finally:
        dashboard.stop()
    assert not dashboard.live


def test_attached_block_leaves_a_live_dashboard_live():
    balanced(max_workers=2)
    dashboard = Dashboard(display=False, metrics=LoadBalancerMetrics(usage_probe=machine()))
    dashboard.start()
    try:
        with dashboard.attached() as run:
            parallel_map(square, range(10))
        assert dashboard.live
        assert run.tasks == 10 and dashboard.tasks_done_text.value == 10
    finally:
        dashboard.stop()


def test_a_cell_end_refreshes_a_live_dashboard_synchronously():
    from IPython.testing import globalipapp

    globalipapp.start_ipython()  # once per test session; later calls return None
    ip = globalipapp.get_ipython()
    balanced(max_workers=2)
    dashboard = Dashboard(display=False, metrics=LoadBalancerMetrics(usage_probe=machine()))
    dashboard.start()
    try:
        ip.user_ns["square"] = square
        ip.run_cell("from wfa_notebook.execution import parallel_map\n"
                    "_ = parallel_map(square, range(33))")
        # post_run_cell refreshed before run_cell returned: no waiting for the thread.
        assert dashboard.tasks_done_text.value == 33
    finally:
        dashboard.stop()
    assert dashboard._after_cell not in ip.events.callbacks["post_run_cell"]


def test_run_watched_uses_a_temporary_balancer_with_the_worker_limit():
    summary = run_watched(lambda: parallel_map(square, range(30)), workers=2, display=False)
    assert summary.tasks == 30 and summary.failed == 0
    assert summary.workers_used is not None and summary.workers_used <= 2
    assert get_executor_manager().active_balancer() is None  # turned off again


def test_close_stops_live_updates():
    dashboard = Dashboard(display=False, metrics=LoadBalancerMetrics(usage_probe=machine()))
    dashboard.start()
    dashboard.close()
    assert not dashboard.live


def test_a_refresh_interval_below_a_quarter_second_is_refused_before_anything_is_shown():
    from wfa_notebook.errors import WfaConfigError

    with pytest.raises(WfaConfigError, match="at most 4 times a second"):
        Dashboard(display=False, interval_s=0.05)
