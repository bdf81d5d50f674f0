"""The load-balancing policy, as pure functions: what a user of a shared machine would see."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wfa_notebook.load_balancer.policy import (
    HYSTERESIS_CORES,
    CallInputs,
    CapacityInputs,
    PolicyConfig,
    choose_workers,
    external_demand,
    plan_capacity,
)

GiB = 2**30
MiB = 2**20


def config(min_workers=1, max_workers=64, cpu_threshold=0.8, memory_threshold=0.85):
    return PolicyConfig(min_workers, max_workers, cpu_threshold, memory_threshold)


def capacity(cfg=None, **inputs):
    inputs.setdefault("cpu_count", 64)
    inputs.setdefault("external_busy_cores", 0.0)
    return plan_capacity(cfg or config(), CapacityInputs(**inputs))


@pytest.mark.parametrize(
    ("cpu_count", "threshold", "external", "expected"),
    [
        (64, 0.8, 0.0, 51),  # idle: all allowed workers at once, no ramp
        (64, 1.0, 0.0, 64),
        (64, 0.8, 20.0, 31),  # 51.2 - 20
        (64, 0.8, 60.0, 1),  # busier than the threshold: min_workers
        (2, 0.8, 0.0, 2),  # 1.6 rounds to 2 on a laptop
        (2, 0.8, 0.5, 1),
        (8, 0.5, 1.0, 3),
    ],
)
def test_first_check_uses_the_free_cores_at_once(cpu_count, threshold, external, expected):
    cfg = config(max_workers=cpu_count, cpu_threshold=threshold)
    plan = capacity(cfg, cpu_count=cpu_count, external_busy_cores=external)
    assert plan.workers == expected
    assert "first check" in plan.reason


def test_own_process_tree_is_not_external_load():
    # 64 cores fully busy, 51 of them with our own workers: only 13 are someone else's.
    external, _ = external_demand(64.0, 51.0, 64, 64)
    assert external == pytest.approx(13.0)
    plan = capacity(external_busy_cores=external, previous_workers=51)
    assert plan.workers >= 38  # it does not shrink to nothing because it is busy itself


def test_saturated_machine_infers_what_others_want():
    # The kernel shares 64 cores between our 51 workers and 20 external threads.
    share = 64 / 71
    external, note = external_demand(64.0, 51 * share, 64, 64, running_workers=51)
    assert external == pytest.approx(20.0)
    assert "saturated" in note


def test_external_load_counts_only_on_the_cores_we_may_use():
    # 8 of 64 cores usable (affinity): 32 busy cores elsewhere weigh 4 on ours.
    external, _ = external_demand(32.0, 0.0, 64, 8)
    assert external == pytest.approx(4.0)


@pytest.mark.parametrize(
    ("previous", "external", "expected"),
    [
        (41, 10.6, 41),  # target 40.6: within the band, kept
        (41, 10.0, 41),  # target 41.2: kept
        (41, 9.5, 42),  # target 41.7 rounds to 42: grows at once
        (41, 11.1, 41),  # target 40.1: 0.9 core below, kept
        (41, 11.5, 40),  # target 39.7: 1.3 cores below, shrinks
        (41, 30.0, 21),
    ],
)
def test_hysteresis_band(previous, external, expected):
    plan = capacity(external_busy_cores=external, previous_workers=previous)
    assert plan.workers == expected


def test_jitter_never_resizes_the_pool():
    workers = None
    sizes = []
    for external in [10.2, 10.6, 10.3, 10.7, 10.4, 10.5, 10.2, 10.8, 10.3] * 3:
        workers = capacity(external_busy_cores=external, previous_workers=workers).workers
        sizes.append(workers)
    assert len(set(sizes[1:])) == 1


def test_waiting_tasks_get_more_threads_than_cores_up_to_max_workers():
    cfg = config(max_workers=32)
    io = capacity(cfg, cpu_count=8, cpu_fraction=0.1, concurrent_task_cores=0.4)
    cpu = capacity(cfg, cpu_count=8, cpu_fraction=0.95, concurrent_task_cores=7.6)
    assert cpu.workers == 6  # 0.8 x 8
    assert io.workers == 32  # 6.4 free cores / 0.1 core per task = 64, capped at max_workers
    assert "wait" in io.reason


def test_threads_taking_turns_on_the_gil_do_not_get_extra_threads():
    plan = capacity(
        config(max_workers=32), cpu_count=8, cpu_fraction=0.25, concurrent_task_cores=1.0,
    )
    assert plan.workers == 6
    assert "GIL" in plan.reason


def test_processes_that_wait_may_also_exceed_the_cores():
    plan = capacity(
        config(max_workers=32), cpu_count=8, cpu_fraction=0.25, concurrent_task_cores=1.0,
        executor_type="process",
    )
    assert plan.workers == 26  # 6.4 / 0.25


def test_dedicated_cluster_uses_all_threads():
    plan = capacity(config(max_workers=100), cpu_count=96, shared=False, external_busy_cores=None)
    assert plan.workers == 96
    assert "cluster" in plan.reason


def test_without_cpu_measurements_the_basic_strategy_uses_the_threshold():
    plan = capacity(config(max_workers=16), cpu_count=16, external_busy_cores=None)
    assert plan.workers == 13  # 0.8 x 16
    assert "unknown" in plan.reason


@pytest.mark.parametrize(
    ("call", "expected", "words"),
    [
        (CallInputs(n_tasks=3), 3, "only 3 tasks"),
        (CallInputs(n_tasks=0), 1, "only 0 tasks"),
        (CallInputs(call_max_workers=4), 4, "max_workers=4"),
        (CallInputs(nested_share=1), 1, "inside a parallel task"),
        (CallInputs(nested_share=5, workers_in_use=40), 5, "inside a parallel task"),
        (CallInputs(workers_in_use=30), 21, "busy with other calls"),
        (
            CallInputs(available_memory_bytes=10 * GiB, task_memory_bytes=2 * GiB,
                       task_memory_source="estimated_task_size"),
            4,  # 10 GiB x 0.85 / 2 GiB
            "memory",
        ),
        (
            CallInputs(available_memory_bytes=1 * GiB, task_memory_bytes=4 * GiB,
                       task_memory_source="measured on earlier tasks"),
            1,  # one task always runs
            "memory",
        ),
        (CallInputs(available_memory_bytes=64 * GiB, task_memory_bytes=10 * MiB), 51, ""),
    ],
)
def test_each_call_applies_its_own_limits(call, expected, words):
    decision = choose_workers(config(), capacity(), call)
    assert decision.workers == expected
    assert decision.capacity == 51
    assert words in decision.reason
    assert decision.inputs["cpu_count"] == 64


def test_few_tasks_use_part_of_a_reusable_pool_without_shrinking_it():
    decision = choose_workers(config(), capacity(), CallInputs(n_tasks=3))
    assert (decision.workers, decision.pool_workers) == (3, 51)
    memory = CallInputs(n_tasks=3, available_memory_bytes=2 * GiB, task_memory_bytes=1 * GiB)
    assert choose_workers(config(), capacity(), memory).pool_workers == 1


def test_memory_cap_beats_min_workers():
    cfg = config(min_workers=4)
    call = CallInputs(available_memory_bytes=2 * GiB, task_memory_bytes=1 * GiB)
    assert choose_workers(cfg, capacity(cfg), call).workers == 1


def test_decision_as_dict_has_workers_reason_and_inputs():
    decision = choose_workers(config(), capacity(), CallInputs(n_tasks=10))
    as_dict = decision.as_dict()
    assert as_dict["workers"] == 10
    assert isinstance(as_dict["reason"], str) and as_dict["reason"]
    assert as_dict["inputs"]["n_tasks"] == 10


loads = st.lists(st.floats(min_value=0.0, max_value=70.0), min_size=1, max_size=40)


@settings(max_examples=200, deadline=None)
@given(loads=loads, threshold=st.sampled_from([0.5, 0.8, 1.0]))
def test_after_every_check_workers_are_within_one_core_of_the_free_cores(loads, threshold):
    cfg = config(cpu_threshold=threshold)
    workers = None
    for external in loads:
        plan = capacity(cfg, external_busy_cores=external, previous_workers=workers)
        workers = plan.workers
        free = threshold * 64 - external
        assert cfg.min_workers <= workers <= cfg.max_workers
        if cfg.min_workers <= free <= cfg.max_workers:
            assert abs(workers - free) <= HYSTERESIS_CORES


@settings(max_examples=100, deadline=None)
@given(
    level=st.floats(min_value=0.0, max_value=50.0),
    noise=st.lists(st.floats(min_value=-0.25, max_value=0.25), min_size=2, max_size=30),
)
def test_noise_below_half_a_core_resizes_at_most_once(level, noise):
    workers = None
    sizes = []
    for delta in noise:
        workers = capacity(external_busy_cores=max(0.0, level + delta),
                           previous_workers=workers).workers
        sizes.append(workers)
    changes = sum(a != b for a, b in zip(sizes, sizes[1:]))
    assert changes <= 1
