"""imap_ordered: lazy, ordered, bounded look-ahead, cancellation, balancer records."""
from __future__ import annotations

import os
import threading

import pytest

from wfa_notebook.errors import WfaConfigError, WfaTaskError, WfaWorkerDiedError
from wfa_notebook.execution import (
    enable_global_load_balancing,
    get_executor_manager,
    imap_ordered,
)
from wfa_notebook.load_balancer import DynamicLoadBalancer, FakeProbe


pytestmark = pytest.mark.usefixtures("plain_execution")


def square(x):
    return x * x


def fail_at_five(x):
    if x == 5:
        raise KeyError("chunk 5 is corrupt")
    return x


def exit_at_two(x):
    if x == 2:
        os._exit(1)
    return x


class CountingSource:
    """An input stream that counts how far it has been read."""

    def __init__(self, n):
        self.n = n
        self.read = 0

    def __iter__(self):
        for i in range(self.n):
            self.read += 1
            yield i


def test_results_come_in_input_order_even_when_later_items_finish_first():
    later_done = threading.Event()

    def work(i):
        if i == 0:
            assert later_done.wait(timeout=30)
        if i == 3:
            later_done.set()
        return i

    assert list(imap_ordered(work, range(8), max_workers=4)) == list(range(8))


@pytest.mark.parametrize("executor_type", ["thread", "process"])
def test_matches_a_plain_map(executor_type):
    result = list(imap_ordered(square, CountingSource(50), max_workers=2,
                               executor_type=executor_type))
    assert result == [x * x for x in range(50)]


def test_input_is_read_lazily_with_bounded_look_ahead():
    source = CountingSource(1000)
    stream = imap_ordered(square, source, max_workers=2, prefetch=4)
    assert source.read == 0  # nothing happens before the first result is asked for
    assert next(stream) == 0
    assert source.read <= 5
    assert [next(stream) for _ in range(10)] == [x * x for x in range(1, 11)]
    assert source.read <= 15
    stream.close()


def test_max_workers_one_runs_inline_without_threads():
    threads = set()

    def work(x):
        threads.add(threading.get_ident())
        return x

    before = threading.active_count()
    assert list(imap_ordered(work, iter(range(10)), max_workers=1)) == list(range(10))
    assert threads == {threading.get_ident()}
    assert threading.active_count() == before


def test_failure_names_the_item_chains_the_error_and_stops_reading():
    source = CountingSource(10_000)
    results = []
    with pytest.raises(WfaTaskError) as error:
        for value in imap_ordered(fail_at_five, source, max_workers=2):
            results.append(value)
    assert results == [0, 1, 2, 3, 4]  # everything before the failure was delivered
    assert error.value.task_index == 5
    assert isinstance(error.value.__cause__, KeyError)
    assert source.read < 100


def test_failure_in_a_worker_process_carries_the_remote_traceback():
    with pytest.raises(WfaTaskError) as error:
        list(imap_ordered(fail_at_five, range(20), executor_type="process", max_workers=2))
    assert error.value.task_index == 5
    cause = error.value.__cause__
    assert isinstance(cause, KeyError)
    assert "fail_at_five" in str(cause.__cause__)


def test_closing_early_cancels_pending_items():
    started = []
    release = threading.Event()

    def work(i):
        started.append(i)
        if i >= 2:
            assert release.wait(timeout=30)
        return i

    stream = imap_ordered(work, range(1000), max_workers=2, prefetch=6)
    assert [next(stream), next(stream)] == [0, 1]
    stream.close()
    release.set()
    # running items finish in the background: wait for the pool's threads, then count
    for thread in threading.enumerate():
        if thread.name.startswith("wfa-imap"):
            thread.join(timeout=30)
    # 2 delivered + at most the 2 running at close; without cancelling, all 8 submitted would run
    assert len(started) <= 4


def test_records_every_item_and_the_stream_length_in_the_given_balancer():
    balancer = DynamicLoadBalancer(probe=FakeProbe(cpu_count=4), cpu_threshold=1.0)
    assert list(imap_ordered(square, iter(range(30)), balancer=balancer)) == [
        x * x for x in range(30)
    ]
    stats = balancer.get_statistics()
    assert stats["total_tasks"] == 30
    assert stats["total_calls"] == 1
    assert balancer.expected_stream_length() == 30
    # A stream of unknown length is sized from the streams seen, not from their number.
    list(imap_ordered(square, iter(range(3)), balancer=balancer))
    list(imap_ordered(square, iter(range(3)), balancer=balancer))
    assert balancer.expected_stream_length() == 3
    first, second, third = balancer.recent_decisions()
    assert first["inputs"]["n_tasks"] is None
    assert second["inputs"]["n_tasks"] == 30
    assert third["inputs"]["n_tasks"] == 16  # median of 30 and 3


def test_uses_the_global_balancer_when_enabled():
    enable_global_load_balancing(probe=FakeProbe(cpu_count=3), cpu_threshold=1.0)
    list(imap_ordered(square, range(12)))
    balancer = get_executor_manager().load_balancer
    assert balancer.get_statistics()["total_tasks"] == 12
    assert balancer.recent_decisions()[-1]["workers"] == 3


def test_failures_are_counted_in_the_balancer():
    balancer = DynamicLoadBalancer(probe=FakeProbe(cpu_count=2), cpu_threshold=1.0)
    with pytest.raises(WfaTaskError):
        list(imap_ordered(fail_at_five, range(10), balancer=balancer))
    assert balancer.get_statistics()["failed_tasks"] == 1


def test_dying_worker_process_raises_and_the_next_stream_works():
    with pytest.raises(WfaWorkerDiedError):
        list(imap_ordered(exit_at_two, range(10), executor_type="process", max_workers=2))
    assert list(imap_ordered(square, range(5), executor_type="process", max_workers=2)) == [
        0, 1, 4, 9, 16,
    ]
    get_executor_manager().shutdown_all()


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"max_workers": 0}, "max_workers=0"),
        ({"prefetch": 0}, "prefetch=0"),
        ({"executor_type": "fiber"}, "expected one of"),
        ({"balancer": {"min_workers": 2}}, "DynamicLoadBalancer"),
    ],
)
def test_invalid_arguments_raise_at_the_call_not_at_the_first_item(kwargs, words):
    with pytest.raises(WfaConfigError, match=words):
        imap_ordered(square, range(3), **kwargs)


def test_nested_stream_inside_a_parallel_task_runs_inline():
    from wfa_notebook.execution import parallel_map

    balancer = enable_global_load_balancing(probe=FakeProbe(cpu_count=2), cpu_threshold=1.0)

    def outer(i):
        return sum(imap_ordered(square, range(4)))

    assert parallel_map(outer, range(2), batch_size=1) == [14, 14]
    nested = [d for d in balancer.recent_decisions(50) if d["inputs"]["nested_share"]]
    assert [d["workers"] for d in nested] == [1, 1]


def test_long_stream_follows_the_load_at_each_check():
    probe = FakeProbe(cpu_count=8)
    balancer = DynamicLoadBalancer(probe=probe, cpu_threshold=1.0, check_interval=5.0)
    stream = imap_ordered(square, iter(range(100)), balancer=balancer)
    assert next(stream) == 0
    probe.external_busy_cores = 6.0  # someone else starts six busy processes
    probe.advance(5.0)
    assert list(stream) == [x * x for x in range(1, 100)]
    workers = [decision["workers"] for decision in balancer.recent_decisions()]
    assert (workers[0], workers[-1]) == (8, 2)
    assert balancer.get_statistics()["total_calls"] == 1  # re-checks are not new calls
