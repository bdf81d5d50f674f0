"""DynamicLoadBalancer with an injected probe: decisions, statistics, validation."""
from __future__ import annotations

import time
import warnings

import pytest

from wfa_notebook.errors import WfaConfigError
from wfa_notebook.load_balancer import DynamicLoadBalancer, FakeProbe, SystemProbe
from wfa_notebook.load_balancer import probe as probe_module

GiB = 2**30


def make(probe=None, **settings):
    return DynamicLoadBalancer(probe=probe or FakeProbe(cpu_count=64), **settings)


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"min_workers": 4, "max_workers": 2}, "1 <= min_workers <= max_workers"),
        ({"min_workers": 0}, ">= 1"),
        ({"max_workers": 0}, ">= 1"),
        ({"cpu_threshold": 0.0}, "(0, 1]"),
        ({"cpu_threshold": 1.5}, "(0, 1]"),
        ({"memory_threshold": -0.1}, "(0, 1]"),
        ({"check_interval": 0}, "> 0"),
        ({"min_workers": 2.5}, "integer"),
    ],
)
def test_invalid_settings_raise_at_once_with_the_valid_range(settings, words):
    with pytest.raises(WfaConfigError) as error:
        make(**settings)
    assert words in str(error.value)


@pytest.mark.parametrize(
    ("call", "words"),
    [
        ({"n_tasks": -1}, ">= 0"),
        ({"n_tasks": 10, "estimated_task_size": 0}, "bytes > 0"),
        ({"n_tasks": 10, "estimated_task_size": "10MB"}, "bytes > 0"),
    ],
)
def test_invalid_call_arguments_raise(call, words):
    with pytest.raises(WfaConfigError) as error:
        make().get_optimal_workers(**call)
    assert words in str(error.value)


def test_idle_machine_gets_all_allowed_workers_on_the_first_call():
    balancer = make(cpu_threshold=1.0)
    assert balancer.get_optimal_workers(n_tasks=1000) == 64
    assert make(max_workers=8).get_optimal_workers(n_tasks=1000) == 8


def test_max_workers_none_means_all_cores_of_the_machine_measured():
    balancer = make(cpu_threshold=1.0)
    assert balancer.max_workers == 64
    cluster = FakeProbe(cpu_count=200, shared=False, key="cluster")
    assert balancer.decide(10_000, probe=cluster).workers == 200


def test_machine_is_measured_once_per_check_interval():
    probe = FakeProbe(cpu_count=64)
    balancer = make(probe, check_interval=5.0)
    for _ in range(10):
        balancer.get_optimal_workers(100)
    assert probe.samples == 1
    probe.advance(5.0)
    balancer.get_optimal_workers(100)
    assert probe.samples == 2


def test_simulated_64_core_machine_with_external_load_that_comes_and_goes():
    """Load arrives and leaves; our own busy workers never count as load."""
    state = {"external": 0.0, "ours": 0}
    probe = FakeProbe(
        cpu_count=64,
        external_busy_cores=lambda: state["external"],
        own_busy_cores=lambda: state["ours"],
        contention=True,
    )
    balancer = make(probe, cpu_threshold=0.8, check_interval=5.0)
    schedule = [0.0] * 4 + [20.0] * 4 + [44.0] * 4 + [0.0] * 4 + [30.0] * 4 + [0.0] * 3
    seen = []
    for external in schedule:
        state["external"] = external
        workers = balancer.get_optimal_workers(n_tasks=100_000)
        state["ours"] = workers  # they are busy until the next check
        balancer.record_tasks([1.0] * workers, cpu_seconds=float(workers),
                              executor_type="thread", workers=workers)
        seen.append(workers)
        assert abs(workers - (0.8 * 64 - external)) <= 1.0, (external, workers)
        probe.advance(5.0)
    assert seen[0] == 51  # no ramp from min_workers
    assert seen[-1] == 51  # back to all allowed workers when the load leaves


def test_busy_balanced_run_does_not_shrink_itself():
    state = {"ours": 0}
    probe = FakeProbe(cpu_count=16, own_busy_cores=lambda: state["ours"])
    balancer = make(probe, cpu_threshold=1.0)
    for _ in range(20):
        state["ours"] = balancer.get_optimal_workers(1000)
        probe.advance(5.0)
    assert state["ours"] == 16


def test_memory_cap_from_estimated_task_size_and_from_measured_tasks():
    probe = FakeProbe(cpu_count=64, available_memory_bytes=10 * GiB)
    balancer = make(probe, memory_threshold=0.8)
    assert balancer.get_optimal_workers(100, estimated_task_size=2 * GiB) == 4
    assert balancer.get_optimal_workers(100) == 51  # nothing measured yet
    balancer.record_task_completion(0.5, memory_used=4 * GiB)
    assert balancer.get_optimal_workers(100) == 2  # 10 GiB x 0.8 / 4 GiB
    assert "measured on earlier tasks" in balancer.get_statistics()["last_decision"]["reason"]


def test_io_bound_tasks_may_use_more_threads_than_cores():
    probe = FakeProbe(cpu_count=4)
    balancer = make(probe, max_workers=16, cpu_threshold=1.0)
    assert balancer.get_optimal_workers(100) == 4
    # Tasks that slept 90 % of their time, on 4 threads: 0.4 cores used together.
    balancer.record_tasks([1.0] * 40, cpu_seconds=4.0, executor_type="thread", workers=4)
    probe.advance(5.0)
    assert balancer.get_optimal_workers(100) == 16


def test_statistics_count_tasks_not_calls():
    balancer = make()
    balancer.get_optimal_workers(50)
    balancer.record_tasks([0.1] * 50, executor_type="thread", workers=4)
    balancer.get_optimal_workers(30)
    balancer.record_tasks([0.2] * 29 + [0.3], failed=1)
    balancer.record_task_completion(0.5, memory_used=3 * 2**20)
    stats = balancer.get_statistics()
    assert stats["total_calls"] == 2
    assert stats["total_tasks"] == 81
    assert stats["successful_tasks"] == 80
    assert stats["failed_tasks"] == 1
    assert stats["min_duration"] == pytest.approx(0.1)
    assert stats["max_duration"] == pytest.approx(0.5)
    assert stats["p50_duration"] == pytest.approx(0.1)
    assert stats["p95_duration"] == pytest.approx(0.2)
    assert stats["avg_memory_mb"] == pytest.approx(3.0)
    assert stats["max_memory_mb"] == pytest.approx(3.0)
    assert stats["current_workers"] == 51
    assert (stats["min_workers"], stats["max_workers"]) == (1, 64)
    last = stats["last_decision"]
    assert last["workers"] == 30
    assert "only 30 tasks" in last["reason"]
    assert last["inputs"]["n_tasks"] == 30


def test_statistics_before_any_task_and_memory_unknown():
    stats = make().get_statistics()
    assert stats["total_tasks"] == 0
    assert stats["avg_duration"] is None
    assert stats["avg_memory_mb"] is None
    assert stats["last_decision"] is None
    assert stats["current_workers"] is None


def test_history_keeps_the_last_1000_tasks():
    balancer = make()
    balancer.record_tasks([100.0] * 10)
    balancer.record_tasks([1.0] * 1000)
    stats = balancer.get_statistics()
    assert stats["total_tasks"] == 1010
    assert stats["history_size"] == 1000
    assert stats["max_duration"] == 1.0


def test_reset_forgets_history_and_plans():
    probe = FakeProbe(cpu_count=64)
    balancer = make(probe)
    balancer.get_optimal_workers(10)
    balancer.record_task_completion(1.0, success=False)
    balancer.reset()
    stats = balancer.get_statistics()
    assert (stats["total_tasks"], stats["total_calls"], stats["last_decision"]) == (0, 0, None)
    balancer.get_optimal_workers(10)
    assert probe.samples == 2  # measured afresh


def test_record_task_completion_rejects_negative_durations():
    with pytest.raises(WfaConfigError, match=">= 0"):
        make().record_task_completion(-1.0)


def test_stream_length_is_estimated_from_earlier_streams():
    balancer = make()
    assert balancer.expected_stream_length() is None
    for n in (20, 22, 500):
        balancer.record_stream_length(n)
    assert balancer.expected_stream_length() == 22


def test_recent_decisions_explain_themselves():
    probe = FakeProbe(cpu_count=8)
    balancer = make(probe)
    balancer.get_optimal_workers(100)
    probe.external_busy_cores = 4.0
    probe.advance(5.0)
    balancer.get_optimal_workers(100)
    first, second = balancer.recent_decisions()
    assert first["workers"] == 6 and second["workers"] == 2
    assert "4.0 cores used by other programs" in second["reason"]
    assert "shrank 6 -> 2 workers" in second["reason"]


def test_without_psutil_it_warns_once_and_uses_the_basic_strategy(monkeypatch):
    def missing():
        raise ImportError("No module named 'psutil'")

    monkeypatch.setattr(probe_module, "_import_psutil", missing)
    monkeypatch.setattr(probe_module, "_warned_no_psutil", False)
    with pytest.warns(RuntimeWarning, match="pip install psutil"):
        balancer = DynamicLoadBalancer(max_workers=4, cpu_threshold=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        DynamicLoadBalancer()  # no second warning
    workers = balancer.get_optimal_workers(100)
    assert 1 <= workers <= 4
    assert balancer.get_statistics()["probe"] == "BasicProbe"
    assert "CPU use unknown" in balancer.get_statistics()["last_decision"]["reason"]


def test_system_probe_attributes_its_own_cpu_to_the_process_tree():
    probe = SystemProbe()
    probe.sample()
    cpu_start = time.process_time()
    total = 0
    while time.process_time() - cpu_start < 0.3:  # burn CPU in this process
        total += 1
    cpu_used = time.process_time() - cpu_start
    snapshot = probe.sample()
    own_cpu_seconds = snapshot.own_busy_cores * snapshot.window_s
    # psutil counts CPU in 10 ms ticks: allow a few ticks of difference.
    assert own_cpu_seconds == pytest.approx(cpu_used, abs=0.1)
    assert 0.0 <= snapshot.external_busy_cores <= snapshot.cpu_count
    assert snapshot.available_memory_bytes > 0
    assert 1 <= snapshot.cpu_count <= snapshot.machine_cpu_count
