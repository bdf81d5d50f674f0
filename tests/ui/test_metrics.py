"""LoadBalancerMetrics: the dashboard's numbers, without any widget."""
from __future__ import annotations

import subprocess
import sys
import threading
import textwrap

import numpy as np
import pytest

from wfa_notebook.context import Context
from wfa_notebook.errors import WfaConfigError, WfaTaskError
from wfa_notebook.execution import (
    disable_global_load_balancing,
    enable_global_load_balancing,
    get_executor_manager,
    parallel_map,
    use_dask,
)
from wfa_notebook.load_balancer import DynamicLoadBalancer, FakeProbe
from wfa_notebook.plugins import StreamingPlugin
from wfa_notebook.ui.metrics import MAX_REFRESH_HZ, LoadBalancerMetrics, ensure_load_balancing
from wfa_notebook.ui.statistics import balancer_status, duration_histogram, statistics_table
from toy_plugins import PulseSource, Scaled, pulse_dtype

GiB = 1024**3


pytestmark = pytest.mark.usefixtures("plain_execution")


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def quiet_machine() -> FakeProbe:
    return FakeProbe(cpu_count=8, available_memory_bytes=12 * GiB, total_memory_bytes=16 * GiB)


def balanced(**settings) -> DynamicLoadBalancer:
    """The global balancer on a scripted idle 4-core machine: decisions are reproducible."""
    settings = {"probe": FakeProbe(cpu_count=4), "cpu_threshold": 1.0, **settings}
    return enable_global_load_balancing(**settings)


def square(x):
    return x * x


def fail_on_seven(x):
    if x == 7:
        raise ArithmeticError("seven")
    return x


# --- import without widgets ---------------------------------------------------------------------

def test_ui_package_and_model_work_without_ipywidgets_or_ipython():
    script = textwrap.dedent(
        """
        import sys
        sys.modules["ipywidgets"] = None   # as if not installed
        sys.modules["IPython"] = None
        import wfa_notebook.ui as ui
        from wfa_notebook.errors import WfaDependencyError
        from wfa_notebook.load_balancer import DynamicLoadBalancer, FakeProbe
        balancer = DynamicLoadBalancer(probe=FakeProbe(cpu_count=2))
        balancer.record_task_completion(0.1)
        assert ui.LoadBalancerMetrics(balancer, usage_probe=FakeProbe()).refresh().tasks_done == 1
        assert "off" in ui.balancer_status()
        try:
            ui.Dashboard
        except WfaDependencyError as exc:
            print("HINT:", exc)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "HINT:" in done.stdout and "pip install ipywidgets" in done.stdout


# --- what one refresh shows ---------------------------------------------------------------------

def test_snapshot_shows_workers_limits_tasks_and_the_decision_in_words():
    balancer = DynamicLoadBalancer(min_workers=2, max_workers=6, cpu_threshold=1.0,
                                   probe=FakeProbe(cpu_count=8))
    metrics = LoadBalancerMetrics(balancer, usage_probe=quiet_machine())
    assert balancer.decide(100).workers == 6
    balancer.record_tasks([0.01] * 10, failed=2)

    snap = metrics.refresh()

    assert snap.balancing
    assert (snap.workers, snap.capacity, snap.min_workers, snap.max_workers) == (6, 6, 2, 6)
    assert (snap.tasks_done, snap.tasks_failed) == (10, 2)
    assert snap.avg_duration_s == pytest.approx(0.01)
    assert snap.total_calls == 1
    assert "6 workers" in snap.last_decision and "cores" in snap.last_decision
    assert metrics.snapshot is snap


def test_machine_load_is_read_from_the_usage_probe_in_percent():
    usage = FakeProbe(cpu_count=8, external_busy_cores=2.0, own_busy_cores=2.0,
                      available_memory_bytes=4 * GiB, total_memory_bytes=16 * GiB)
    snap = LoadBalancerMetrics(DynamicLoadBalancer(probe=FakeProbe()), usage_probe=usage).refresh()
    assert snap.system_cpu_percent == pytest.approx(50.0)  # 4 of 8 cores busy, ours included
    assert snap.kernel_cpu_percent == pytest.approx(25.0)  # 2 of 8 cores are this process tree
    assert snap.memory_percent == pytest.approx(75.0)


def test_default_probe_measures_this_machine_without_waiting():
    metrics = LoadBalancerMetrics(DynamicLoadBalancer(probe=FakeProbe()))
    snap = metrics.refresh()  # right after creation: too short a window, CPU not yet known
    assert snap.system_cpu_percent is None or 0 <= snap.system_cpu_percent <= 100


def test_throughput_is_tasks_per_second_over_the_last_seconds():
    balancer = DynamicLoadBalancer(probe=FakeProbe())
    clock = FakeClock()
    metrics = LoadBalancerMetrics(balancer, usage_probe=quiet_machine(), clock=clock)
    assert metrics.refresh().throughput_tasks_per_s == 0.0
    balancer.record_tasks([0.001] * 10)
    clock.now += 2.0
    assert metrics.refresh().throughput_tasks_per_s == pytest.approx(5.0)
    # Nothing more finishes: the rate falls to zero once the burst leaves the window.
    for _ in range(3):
        clock.now += 10.0
        snap = metrics.refresh()
    assert snap.throughput_tasks_per_s == 0.0
    assert snap.tasks_done == 10


def test_worker_timeline_has_one_point_per_change_not_per_refresh():
    machine = FakeProbe(cpu_count=8)
    balancer = DynamicLoadBalancer(probe=machine, cpu_threshold=1.0, check_interval=1.0)
    clock = FakeClock()
    metrics = LoadBalancerMetrics(balancer, usage_probe=quiet_machine(), clock=clock)
    metrics.refresh()
    assert len(metrics.timeline().times_s) == 0  # no call yet: nothing to draw
    balancer.decide(100)
    for _ in range(5):
        clock.now += 0.25
        metrics.refresh()
    machine.external_busy_cores = 6.0  # somebody else takes 6 cores
    machine.advance(2.0)
    balancer.decide(100)
    clock.now += 0.25
    metrics.refresh()

    timeline = metrics.timeline()
    assert timeline.workers.tolist() == [8, 2]
    assert timeline.capacity.tolist() == [8, 2]
    assert timeline.times_s.tolist() == [0.25, 1.5]
    assert timeline.until_s == pytest.approx(1.5)


def test_duration_histogram_holds_every_recent_task():
    balancer = DynamicLoadBalancer(probe=FakeProbe())
    metrics = LoadBalancerMetrics(balancer, usage_probe=quiet_machine())
    assert metrics.refresh() and metrics.duration_histogram().n_tasks == 0

    durations = np.geomspace(1e-4, 1.0, 200)  # four decades: log-spaced bins
    balancer.record_tasks(durations.tolist())
    metrics.refresh()
    histogram = metrics.duration_histogram(bins=16)
    assert histogram.n_tasks == 200 and len(histogram.counts) == 16
    assert histogram.log_scale
    assert histogram.edges_s[0] == pytest.approx(1e-4) and histogram.edges_s[-1] == pytest.approx(1.0)

    narrow = DynamicLoadBalancer(probe=FakeProbe())
    narrow.record_tasks([0.010, 0.011, 0.012])
    linear = duration_histogram(narrow, bins=4)
    assert not linear.log_scale and linear.n_tasks == 3


def test_bins_must_be_a_positive_integer():
    with pytest.raises(WfaConfigError, match="bins"):
        LoadBalancerMetrics(DynamicLoadBalancer(probe=FakeProbe())).duration_histogram(bins=0)


# --- which balancer -----------------------------------------------------------------------------

def test_global_balancer_is_followed_through_enable_replace_and_disable():
    metrics = LoadBalancerMetrics(usage_probe=quiet_machine())
    snap = metrics.refresh()
    assert not snap.balancing and snap.workers is None
    assert "off" in snap.last_decision and "enable_global_load_balancing" in snap.last_decision

    balanced(max_workers=3)
    parallel_map(square, range(30))
    snap = metrics.refresh()
    assert snap.balancing and snap.tasks_done == 30 and snap.workers == 3

    balanced(max_workers=2)  # enabling again replaces the balancer and its statistics
    assert metrics.refresh().tasks_done == 0
    assert metrics.duration_histogram().n_tasks == 0

    disable_global_load_balancing()
    assert not metrics.refresh().balancing


class OwnBalancer(StreamingPlugin):
    provides = "own_balanced"
    depends_on = ("pulses",)
    dtype = pulse_dtype
    __version__ = "0.1.0"
    use_load_balancer = True
    load_balancer_config = {"max_workers": 2, "probe": FakeProbe(cpu_count=4),
                            "cpu_threshold": 1.0}

    def compute_chunk(self, chunk, context, run_id, **kwargs):
        return chunk.data


def test_a_streaming_plugins_own_balancer_counts_its_chunks(tmp_path):
    metrics = LoadBalancerMetrics(OwnBalancer, usage_probe=quiet_machine())
    before = metrics.refresh().tasks_done
    ctx = Context(tmp_path, register=[PulseSource, OwnBalancer],
                  config={"n_rows": 200, "chunk_rows": 20})
    ctx.get_array("run1", "own_balanced", progress=False)
    snap = metrics.refresh()
    assert snap.tasks_done - before == 10  # one task per chunk
    assert snap.max_workers == 2 and "OwnBalancer" in snap.source


def test_a_plugin_without_its_own_balancer_is_refused_with_the_fix():
    class Plain(StreamingPlugin):
        def compute_chunk(self, chunk, context, run_id, **kwargs):
            return chunk

    with pytest.raises(WfaConfigError, match="use_load_balancer = True"):
        LoadBalancerMetrics(Plain)
    with pytest.raises(WfaConfigError, match="DynamicLoadBalancer"):
        LoadBalancerMetrics("global")


def test_context_processing_is_counted_by_the_global_balancer(tmp_path):
    balanced(max_workers=2)
    metrics = LoadBalancerMetrics(usage_probe=quiet_machine())
    ctx = Context(tmp_path, register=[PulseSource, Scaled], config={"n_rows": 400, "chunk_rows": 20})
    with metrics.watch(live=False) as run:
        ctx.get_array("run1", "scaled", progress=False)
    assert run.tasks == 20 and run.failed == 0  # the 20 chunks of "scaled"
    assert run.workers_used == 2


# --- watched blocks -----------------------------------------------------------------------------

def test_watch_summarises_the_tasks_failures_and_workers_of_its_block():
    balanced(max_workers=3)
    parallel_map(square, range(5))  # before the block: not counted
    metrics = LoadBalancerMetrics(usage_probe=quiet_machine())
    with metrics.watch() as run:
        assert not run.finished
        parallel_map(square, range(40))
        with pytest.raises(WfaTaskError):
            parallel_map(fail_on_seven, range(10), max_workers=1)
    assert run.finished and not metrics.running
    assert run.failed == 1
    assert 41 <= run.tasks <= 50  # the failing call stops at its first failure
    assert run.workers_used == 3
    assert run.seconds > 0
    assert f"{run.tasks} tasks (1 failed)" in str(run) and "up to 3 workers" in str(run)
    # The final synchronous refresh saw every task: nothing left for a background thread.
    assert metrics.snapshot.tasks_done == 5 + run.tasks


def test_watch_counts_nothing_and_says_so_without_a_balancer():
    metrics = LoadBalancerMetrics(usage_probe=quiet_machine())
    with metrics.watch(live=False) as run:
        parallel_map(square, range(10))
    assert (run.tasks, run.workers_used) == (0, None)
    assert "without asking the load balancer" in str(run)


def test_watch_counts_everything_of_a_balancer_enabled_inside_the_block():
    metrics = LoadBalancerMetrics(usage_probe=quiet_machine())
    with metrics.watch(live=False) as run:
        balanced(max_workers=2)
        parallel_map(square, range(12))
    assert run.tasks == 12 and run.workers_used == 2


# --- background refreshes -----------------------------------------------------------------------

def test_background_thread_refreshes_until_stopped():
    balancer = DynamicLoadBalancer(probe=FakeProbe())
    balancer.record_tasks([0.01] * 7)
    metrics = LoadBalancerMetrics(balancer, usage_probe=quiet_machine())
    refreshed = threading.Event()
    threads = []

    def listener(snapshot):
        threads.append(threading.current_thread().name)
        if snapshot.tasks_done == 7:
            refreshed.set()

    metrics.add_listener(listener)
    assert metrics.start() is True
    assert metrics.start() is False  # already running: not a second thread
    assert refreshed.wait(timeout=10)
    metrics.stop()
    assert not metrics.running
    assert "wfa-metrics" in threads
    assert metrics.last_error is None


def test_live_refresh_rate_is_capped_at_four_per_second():
    metrics = LoadBalancerMetrics(DynamicLoadBalancer(probe=FakeProbe()), usage_probe=quiet_machine())
    assert MAX_REFRESH_HZ == 4
    with pytest.raises(WfaConfigError, match="4 times a second"):
        metrics.start(interval_s=0.1)
    assert not metrics.running


def test_a_failing_listener_does_not_stop_the_others():
    metrics = LoadBalancerMetrics(DynamicLoadBalancer(probe=FakeProbe()), usage_probe=quiet_machine())
    seen = []

    def broken(snapshot):
        raise RuntimeError("broken panel")

    metrics.add_listener(broken)
    metrics.add_listener(seen.append)
    snap = metrics.refresh()
    assert seen == [snap]
    assert isinstance(metrics.last_error, RuntimeError)
    metrics.remove_listener(broken)
    metrics.remove_listener(seen.append)
    metrics.refresh()
    assert len(seen) == 1


def test_concurrent_refreshes_while_tasks_finish_end_with_the_right_counts():
    balancer = DynamicLoadBalancer(probe=FakeProbe())
    metrics = LoadBalancerMetrics(balancer, usage_probe=quiet_machine())
    start = threading.Barrier(5)
    errors = []

    def record():
        start.wait()
        for _ in range(200):
            balancer.record_tasks([0.001] * 5)

    def refresh():
        start.wait()
        try:
            for _ in range(100):
                metrics.refresh()
                metrics.duration_histogram()
                metrics.timeline()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    workers = [threading.Thread(target=record) for _ in range(2)]
    workers += [threading.Thread(target=refresh) for _ in range(3)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    assert errors == []
    assert metrics.refresh().tasks_done == 2000
    assert metrics.duration_histogram().n_tasks == 1000  # the balancer keeps the last 1000


# --- one-shot views -----------------------------------------------------------------------------

def test_status_line_and_statistics_table():
    assert balancer_status().startswith("Load balancing is off")
    assert "off" in statistics_table()[0]["value"]

    balanced(min_workers=1, max_workers=3)
    parallel_map(square, range(20))
    status = balancer_status()
    assert status.startswith("Load balancing on") and "max 3 workers" in status
    assert "20 tasks done, 0 failed" in status
    rows = {row["statistic"]: row["value"] for row in statistics_table()}
    assert rows["tasks done"] == 20 and rows["tasks failed"] == 0
    assert rows["workers (latest call)"] == 3
    assert "3 workers" in rows["latest decision"]
    assert "tasks done" in str(statistics_table())


# --- running a block under a balancer -----------------------------------------------------------

def test_ensure_load_balancing_uses_a_temporary_balancer_only_while_off():
    manager = get_executor_manager()
    with ensure_load_balancing(max_workers=2) as temporary:
        assert manager.active_balancer() is temporary and temporary.max_workers == 2
    assert manager.active_balancer() is None

    mine = balanced(max_workers=3)
    with ensure_load_balancing() as used:
        assert used is mine
    with ensure_load_balancing(max_workers=3) as used:
        assert used is mine
    with pytest.raises(WfaConfigError, match="--max 2"):
        with ensure_load_balancing(max_workers=2):
            pass  # pragma: no cover
    assert manager.active_balancer() is mine


# --- Dask ---------------------------------------------------------------------------------------

def where_am_i(x):
    import distributed

    return x, distributed.get_worker().address


def test_tasks_run_on_a_dask_cluster_are_counted():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                       protocol="tcp", host="127.0.0.1", dashboard_address=None)
    with cluster, distributed.Client(cluster, set_as_default=False) as client:
        balanced()
        metrics = LoadBalancerMetrics(usage_probe=quiet_machine())
        with use_dask(client), metrics.watch() as run:
            results = parallel_map(where_am_i, range(24))
            snap = metrics.refresh()
        assert {address for _, address in results} <= set(client.nthreads())
        assert run.tasks == 24 and run.workers_used == 2  # the cluster's two threads
        assert snap.dask_scheduler == client.scheduler.address
