"""parallel_map / parallel_apply, the ExecutorManager and the "wfa-balanced" joblib backend."""
from __future__ import annotations

import functools
import os
import signal
import threading

import joblib
import numpy as np
import pytest

from wfa_notebook.errors import WfaConfigError, WfaTaskError, WfaWorkerDiedError
from wfa_notebook.execution import (
    ExecutorManager,
    disable_global_load_balancing,
    enable_global_load_balancing,
    get_executor,
    get_executor_manager,
    get_load_balancer_stats,
    parallel_apply,
    parallel_map,
)
from wfa_notebook.load_balancer import FakeProbe


pytestmark = pytest.mark.usefixtures("plain_execution")


def balanced(cpu_count=4, **settings):
    """Enable the global balancer on a simulated idle machine of ``cpu_count`` cores."""
    settings.setdefault("cpu_threshold", 1.0)
    return enable_global_load_balancing(probe=FakeProbe(cpu_count=cpu_count), **settings)


# Module-level functions: worker processes import them by reference.
def square(x):
    return x * x


def process_file(path):
    return int(np.load(path, allow_pickle=False).sum())


def fail_at(x, bad=7):
    if x == bad:
        raise ValueError(f"bad input {x}")
    return x


def exit_at(x):
    if x == 3:
        os._exit(1)
    return x


def interrupt_parent(x):
    if x == 0:
        os.kill(os.getppid(), signal.SIGINT)
        threading.Event().wait()  # runs until the interrupted caller kills the workers
    return x


def worker_pid(_):
    return os.getpid()


# ----------------------------------------------------------------------------------------------
# The seed's usage and the earlier package's API
# ----------------------------------------------------------------------------------------------
def test_seed_usage_runs_unchanged(tmp_path):
    file_list = []
    for i in range(6):
        path = tmp_path / f"file{i}.npy"
        np.save(path, np.full(10, i, dtype=np.int64))
        file_list.append(path)

    enable_global_load_balancing(min_workers=2, max_workers=8, cpu_threshold=0.8,
                                 memory_threshold=0.85)
    results = parallel_map(process_file, file_list, executor_type="process",
                           use_load_balancer=True, estimated_task_size=10 * 1024 * 1024)
    stats = get_load_balancer_stats()

    assert results == [10 * i for i in range(6)]
    assert stats["avg_duration"] > 0
    assert stats["current_workers"] >= 2
    assert stats["total_tasks"] == 6


def test_balancing_is_off_by_default_and_execution_is_plain():
    assert get_executor_manager().load_balancing_enabled is False
    assert get_load_balancer_stats() is None
    assert parallel_map(square, range(20)) == [x * x for x in range(20)]
    assert get_load_balancer_stats() is None


def test_completions_are_counted_per_task_across_calls():
    balanced(min_workers=2, max_workers=8)
    parallel_map(square, range(50))
    parallel_apply(pow, [(i, 2) for i in range(30)])
    stats = get_load_balancer_stats()
    assert stats["total_tasks"] == 80
    assert stats["successful_tasks"] == 80
    assert stats["total_calls"] == 2
    assert stats["current_workers"] == 4
    assert stats["last_decision"]["workers"] == 4


def test_use_load_balancer_false_bypasses_an_enabled_balancer():
    balanced()
    parallel_map(square, range(10), use_load_balancer=False)
    assert get_load_balancer_stats()["total_calls"] == 0


def test_disable_drops_the_balancer():
    balanced()
    disable_global_load_balancing()
    assert get_load_balancer_stats() is None


# ----------------------------------------------------------------------------------------------
# Results and arguments
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("executor_type", ["thread", "process"])
def test_results_keep_input_order(executor_type):
    items = list(range(300, 0, -1))
    assert parallel_map(square, items, executor_type=executor_type, max_workers=2) == [
        x * x for x in items
    ]


def test_results_keep_input_order_when_a_later_task_finishes_first():
    second_done = threading.Event()

    def task(i):
        if i == 0:
            assert second_done.wait(timeout=30)
        if i == 1:
            second_done.set()
        return i

    assert parallel_map(task, range(2), max_workers=2, batch_size=1) == [0, 1]


def test_parallel_apply_accepts_tuples_mappings_and_single_values():
    def describe(a, b=0):
        return a + 10 * b

    assert parallel_apply(describe, [(1, 2), {"a": 3, "b": 4}, 5]) == [21, 43, 5]


def test_empty_input_returns_an_empty_list():
    balanced()
    assert parallel_map(square, []) == []


def test_progress_callable_tqdm_like_and_legacy_callback():
    seen = []
    parallel_map(square, range(5), progress=lambda done, total: seen.append((done, total)))
    assert seen == [(i, 5) for i in range(1, 6)]

    class Bar:
        n = 0

        def update(self, n):
            self.n += n

    bar = Bar()
    parallel_map(square, range(7), progress=bar)
    assert bar.n == 7

    indices = []
    parallel_map(square, range(3), progress_callback=indices.append)
    assert indices == [0, 1, 2]


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"max_workers": 0}, "max_workers=0 must be an integer >= 1"),
        ({"max_workers": -2}, ">= 1"),
        ({"executor_type": "gpu"}, "expected one of ('thread', 'process', 'dask')"),
        ({"estimated_task_size": -5}, "bytes > 0"),
        ({"progress": 3}, "progress must be"),
        ({"chunksize": 4}, "unexpected keyword argument"),
    ],
)
def test_invalid_arguments_raise_before_anything_runs(kwargs, words):
    calls = []
    with pytest.raises(WfaConfigError) as error:
        parallel_map(calls.append, range(5), **kwargs)
    assert words in str(error.value)
    assert calls == []


def test_dask_executor_without_a_client_says_how_to_create_one():
    pytest.importorskip("distributed")
    with pytest.raises(WfaConfigError, match="Client"):
        parallel_map(square, range(3), executor_type="dask")


# ----------------------------------------------------------------------------------------------
# Failures
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("executor_type", ["thread", "process"])
def test_failing_task_is_named_chained_and_counted(executor_type):
    balanced(cpu_count=2)
    with pytest.raises(WfaTaskError) as error:
        parallel_map(functools.partial(fail_at, bad=1234), range(2000),
                     executor_type=executor_type)
    assert error.value.task_index == 1234
    assert "task 1234 of 2000" in str(error.value)
    assert isinstance(error.value.__cause__, ValueError)
    assert "bad input 1234" in str(error.value.__cause__)
    assert get_load_balancer_stats()["failed_tasks"] == 1


def test_failing_task_when_running_inline_is_named_too():
    balanced(cpu_count=1)
    with pytest.raises(WfaTaskError) as error:
        parallel_map(fail_at, range(10))
    assert error.value.task_index == 7
    stats = get_load_balancer_stats()
    assert (stats["successful_tasks"], stats["failed_tasks"]) == (7, 1)


def test_tasks_not_yet_started_are_cancelled_after_a_failure():
    started = []
    second_running = threading.Event()

    def task(i):
        started.append(i)
        if i == 1:
            second_running.set()
        if i == 0:
            assert second_running.wait(timeout=30)
            raise RuntimeError("first task fails")
        return i

    threads_before = set(threading.enumerate())
    with pytest.raises(WfaTaskError):
        parallel_map(task, range(1000), max_workers=2, batch_size=1)
    _join_threads_started_since(threads_before)  # then nothing more can start: the count is final
    assert len(started) < 100


def test_dying_worker_process_raises_and_the_next_call_works():
    balanced(cpu_count=2)
    with pytest.raises(WfaWorkerDiedError, match="worker process died"):
        parallel_map(exit_at, range(10), executor_type="process")
    assert get_load_balancer_stats()["failed_tasks"] == 1
    assert parallel_map(square, range(10), executor_type="process") == [x * x for x in range(10)]


def test_keyboard_interrupt_stops_worker_processes_and_the_next_call_works():
    with pytest.raises(KeyboardInterrupt):
        parallel_map(interrupt_parent, range(4), executor_type="process", max_workers=2,
                     batch_size=1)
    assert parallel_map(square, range(4), executor_type="process") == [0, 1, 4, 9]


def test_keyboard_interrupt_between_results_cancels_pending_thread_tasks():
    started = []

    def task(i):
        started.append(i)
        return i

    def interrupt(done, total):
        if done == 3:
            raise KeyboardInterrupt

    threads_before = set(threading.enumerate())
    with pytest.raises(KeyboardInterrupt):
        parallel_map(task, range(5000), max_workers=2, batch_size=1, progress=interrupt)
    _join_threads_started_since(threads_before)
    assert len(started) < 1000
    assert parallel_map(square, range(4)) == [0, 1, 4, 9]


# ----------------------------------------------------------------------------------------------
# Nested calls
# ----------------------------------------------------------------------------------------------
def test_nested_calls_do_not_oversubscribe():
    balancer = balanced(cpu_count=4)
    inner_threads = {}

    def outer(i):
        outer_thread = threading.get_ident()
        inner = parallel_map(lambda _: threading.get_ident(), range(8))
        inner_threads[i] = (outer_thread, set(inner))
        return i

    assert parallel_map(outer, range(4), batch_size=1) == [0, 1, 2, 3]
    inner_decisions = [d for d in balancer.recent_decisions(100)
                       if d["inputs"]["nested_share"] is not None]
    assert len(inner_decisions) == 4
    assert all(d["workers"] == 1 for d in inner_decisions)
    # One worker each: the inner tasks ran in the outer task's own thread.
    assert all(threads == {outer_thread} for outer_thread, threads in inner_threads.values())


def test_nested_calls_share_the_cores_left_by_a_small_outer_call():
    balancer = balanced(cpu_count=8)
    parallel_map(lambda _: parallel_map(square, range(16)), range(2), batch_size=1)
    inner = [d for d in balancer.recent_decisions(100) if d["inputs"]["nested_share"]]
    assert [d["workers"] for d in inner] == [4, 4]  # 8 cores / 2 outer tasks


def test_joblib_code_inside_a_task_is_limited_to_the_task_share():
    balanced(cpu_count=4)

    def outer(_):
        return joblib.Parallel()(joblib.delayed(threading.get_ident)() for _ in range(8))

    for idents in parallel_map(outer, range(4), batch_size=1):
        assert len(set(idents)) == 1


# ----------------------------------------------------------------------------------------------
# The joblib backend
# ----------------------------------------------------------------------------------------------
def test_backend_asks_the_balancer_at_every_call_and_records_every_task():
    balancer = balanced(cpu_count=4)
    with joblib.parallel_config(backend="wfa-balanced"):
        first = joblib.Parallel()(joblib.delayed(square)(i) for i in range(20))
        second = joblib.Parallel(n_jobs=2)(joblib.delayed(square)(i) for i in range(10))
    assert first == [i * i for i in range(20)]
    assert second == [i * i for i in range(10)]
    stats = balancer.get_statistics()
    assert stats["total_calls"] == 2
    assert stats["total_tasks"] == 30
    assert [d["workers"] for d in balancer.recent_decisions()] == [4, 2]


def test_backend_raises_the_task_exception_unchanged():
    with joblib.parallel_config(backend="wfa-balanced", n_jobs=2):
        with pytest.raises(ValueError, match="bad input 7"):
            joblib.Parallel()(joblib.delayed(fail_at)(i) for i in range(20))


def test_backend_prefer_processes_runs_in_worker_processes():
    with joblib.parallel_config(backend="wfa-balanced", n_jobs=2):
        pids = joblib.Parallel(prefer="processes")(joblib.delayed(worker_pid)(i) for i in range(4))
    assert os.getpid() not in pids


def test_backend_rejects_n_jobs_zero_with_the_valid_values():
    with joblib.parallel_config(backend="wfa-balanced"):
        with pytest.raises(WfaConfigError, match="-1 .* as many as the load balancer allows"):
            joblib.Parallel(n_jobs=0)(joblib.delayed(square)(i) for i in range(3))


def test_loky_keeps_its_worker_pool_when_the_number_of_workers_changes():
    from joblib.externals.loky import reusable_executor

    balanced(cpu_count=4)
    parallel_map(square, range(8), executor_type="process")
    executor = reusable_executor._executor
    assert executor._max_workers == 4
    parallel_map(square, range(2), executor_type="process")  # uses 2 of the 4 workers
    assert executor._max_workers == 4
    parallel_map(square, range(8), executor_type="process", max_workers=3)
    parallel_map(square, range(8), executor_type="process", max_workers=2)
    assert reusable_executor._executor is executor  # resized in place, never restarted


# ----------------------------------------------------------------------------------------------
# ExecutorManager
# ----------------------------------------------------------------------------------------------
def test_manager_is_one_instance_even_when_created_from_many_threads():
    barrier = threading.Barrier(8)
    instances = []

    def create():
        barrier.wait()
        instances.append(ExecutorManager())

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(instance is get_executor_manager() for instance in instances)


def test_named_pools_are_reused_listed_and_shut_down():
    manager = get_executor_manager()
    with manager.get_executor("test-io", "thread", max_workers=3) as first:
        assert first.submit(square, 4).result() == 16
        assert manager.list_executors()["test-io"] == {
            "executor_type": "thread", "max_workers": 3, "users": 1, "reuse": True,
        }
    with get_executor("test-io", "thread", max_workers=3) as second:
        assert second is first
    with manager.get_executor("test-once", "process", max_workers=1, reuse=False) as once:
        assert once.submit(square, 5).result() == 25
    assert "test-once" not in manager.list_executors()
    manager.shutdown_all()
    assert manager.list_executors() == {}


def test_named_pool_in_use_cannot_change_its_settings():
    manager = get_executor_manager()
    with manager.get_executor("test-busy", "thread", max_workers=2):
        with pytest.raises(WfaConfigError, match="in use"):
            with manager.get_executor("test-busy", "thread", max_workers=4):
                pass
    manager.shutdown_all()


def test_named_pool_size_comes_from_the_balancer_when_enabled():
    balanced(cpu_count=6)
    manager = get_executor_manager()
    with manager.get_executor("test-balanced") as pool:
        assert pool._max_workers == 6
    manager.shutdown_all()


def test_named_pool_rejects_unknown_types():
    with pytest.raises(WfaConfigError, match="expected one of"):
        with get_executor("test-bad", "fiber"):
            pass


def _join_threads_started_since(threads_before):
    """Wait for the worker threads of a finished call to exit (they may still be winding down)."""
    for thread in threading.enumerate():
        if thread not in threads_before:
            thread.join(timeout=30)


def test_worker_counts_are_checked_alike_everywhere():
    """numpy integers count as integers, bools do not, in every entry point."""
    import numpy as np

    from wfa_notebook.execution import imap_ordered
    from wfa_notebook.load_balancer import DynamicLoadBalancer

    assert parallel_map(square, range(3), max_workers=np.int64(2)) == [0, 1, 4]
    assert list(imap_ordered(square, range(3), max_workers=np.int64(2))) == [0, 1, 4]
    assert DynamicLoadBalancer(max_workers=np.int64(2)).max_workers == 2
    for call in (lambda: parallel_map(square, [1], max_workers=True),
                 lambda: list(imap_ordered(square, [1], max_workers=True)),
                 lambda: DynamicLoadBalancer(max_workers=True)):
        with pytest.raises(WfaConfigError, match="max_workers=True must be an integer >= 1"):
            call()
