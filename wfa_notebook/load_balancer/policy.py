"""The load-balancing policy as two pure functions: no clock, no psutil, no state.

:func:`plan_capacity` runs at each check (every ``check_interval`` seconds) and decides how many
workers the machine can take: the CPU budget is ``cpu_threshold x cores`` minus the load of
*other* programs (the toolkit's own process tree is never counted as load), divided by the cores
one task really uses (tasks that mostly wait on I/O use a fraction of a core). Hysteresis keeps
the pool size unless the budget moved by a worthwhile amount.

:func:`choose_workers` runs on every call and applies the limits of that call: number of tasks,
memory per task, the caller's ``max_workers``, workers already busy with other calls of this
process, and the share of an enclosing parallel task (nested calls never oversubscribe).

Every decision carries its reason in words and the numbers it used.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = [
    "PolicyConfig",
    "CapacityInputs",
    "Capacity",
    "CallInputs",
    "Decision",
    "plan_capacity",
    "choose_workers",
    "cores_per_worker",
    "external_demand",
    "SATURATED_FRACTION",
    "HYSTERESIS_CORES",
    "CPU_BOUND_FRACTION",
    "MIN_CORES_PER_WORKER",
    "GIL_SATURATED_CORES",
]

#: The pool shrinks only when the budget falls more than this many cores below the current
#: worker count (it grows as soon as the rounded budget is larger). Resizing a pool is not free:
#: ``benchmarks/bench_execution.py`` (section 0, loky, 2-core machine shared with other jobs)
#: measured shrink 2->1 at 250-490 ms, grow 1->2 at 12-20 ms and a full restart at 670-780 ms.
#: The budget measured on a busy workstation jitters by a few tenths of a core between checks,
#: so a one-core band does not resize on noise (section 3: 12 resizes for 6 load changes over
#: 109 checks) while staying within one core of the budget after every check. Checks are at
#: least ``check_interval`` (5 s) apart, bounding resize cost to < 10 % even when load swings.
HYSTERESIS_CORES = 1.0

#: Tasks using at least this much CPU time per wall-clock second are treated as CPU-bound
#: (one worker per core); below it they count as waiting (I/O) and may share cores.
CPU_BOUND_FRACTION = 0.7

#: A waiting task is still charged this much of a core, so at most 20 workers share one
#: free core; ``max_workers`` caps the total anyway.
MIN_CORES_PER_WORKER = 0.05

#: A machine whose busy cores reach this fraction of all its cores is saturated: the kernel
#: then shares the cores among all runnable threads, so other programs are *measured* using
#: less than they want (by the share our own workers got).
SATURATED_FRACTION = 0.97

#: Thread workers whose summed CPU use is close to one core are probably taking turns on the
#: GIL rather than waiting on I/O; more threads would not help them.
GIL_SATURATED_CORES = 0.8


@dataclass(frozen=True)
class PolicyConfig:
    """The balancer's settings (validated by :class:`DynamicLoadBalancer`)."""

    min_workers: int
    max_workers: int
    cpu_threshold: float
    memory_threshold: float


@dataclass(frozen=True)
class CapacityInputs:
    """What :func:`plan_capacity` needs from one check."""

    cpu_count: int
    external_busy_cores: float | None
    shared: bool = True
    cpu_fraction: float | None = None
    concurrent_task_cores: float | None = None
    executor_type: str = "thread"
    previous_workers: int | None = None
    external_note: str = ""


@dataclass(frozen=True)
class Capacity:
    """Result of a check: the number of workers the machine can take now."""

    workers: int
    target: float
    budget_cores: float
    cores_per_worker: float
    reason: str
    inputs: CapacityInputs


@dataclass(frozen=True)
class CallInputs:
    """The limits of one call."""

    n_tasks: int | None = None
    call_max_workers: int | None = None
    workers_in_use: int = 0
    nested_share: int | None = None
    available_memory_bytes: int | None = None
    task_memory_bytes: float | None = None
    task_memory_source: str = ""


@dataclass(frozen=True)
class Decision:
    """Workers chosen for one call, why, and from which numbers.

    Attributes
    ----------
    workers : int
        Tasks to run at once in this call.
    capacity : int
        Workers the machine can take at the latest check.
    reason : str
        The decision in words.
    inputs : dict
        The numbers it used.
    pool_workers : int
        Size of a reusable worker pool for this call: ``workers`` before the limit by the
        number of tasks. A call with few tasks uses only some workers of the pool instead of
        shrinking it (a loky pool takes 0.25-0.5 s to shrink).
    """

    workers: int
    capacity: int
    reason: str
    inputs: dict[str, Any] = field(default_factory=dict)
    pool_workers: int = 0

    def __post_init__(self) -> None:
        if self.pool_workers < self.workers:
            object.__setattr__(self, "pool_workers", self.workers)

    def as_dict(self) -> dict[str, Any]:
        """Plain dict, as shown in ``get_statistics()["last_decision"]``."""
        return {
            "workers": self.workers,
            "capacity": self.capacity,
            "reason": self.reason,
            "inputs": dict(self.inputs),
        }


def _workers(n: int) -> str:
    return f"{n} worker{'s' if n != 1 else ''}"


def _round_half_up(value: float) -> int:
    return int(math.floor(value + 0.5))


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


def cores_per_worker(
    cpu_fraction: float | None,
    concurrent_task_cores: float | None,
    executor_type: str,
) -> tuple[float, str]:
    """Share of a core one worker uses, and why.

    Parameters
    ----------
    cpu_fraction : float or None
        CPU seconds per wall-clock second of recent tasks (None when unknown).
    concurrent_task_cores : float or None
        ``cpu_fraction`` times the number of workers those tasks ran with: the cores all
        concurrent tasks used together.
    executor_type : str
        ``"thread"``, ``"process"`` or ``"dask"``.
    """
    if cpu_fraction is None or cpu_fraction >= CPU_BOUND_FRACTION or executor_type == "dask":
        return 1.0, ""
    if (
        executor_type == "thread"
        and concurrent_task_cores is not None
        and concurrent_task_cores >= GIL_SATURATED_CORES
    ):
        why = (
            f"threads together used {concurrent_task_cores:.2f} cores, as when they take turns "
            "on the GIL, so they are not given extra threads"
        )
        return 1.0, why
    share = max(cpu_fraction, MIN_CORES_PER_WORKER)
    why = (
        f"tasks used {cpu_fraction:.2f} CPU s per wall s (they mostly wait), "
        f"so {1.0 / share:.1f} workers share one free core"
    )
    return share, why


def external_demand(
    system_busy_cores: float | None,
    own_busy_cores: float | None,
    machine_cpu_count: int,
    cpu_count: int,
    running_workers: int | None = None,
) -> tuple[float | None, str]:
    """Cores other programs want on the cores we may use, and a note when it was inferred.

    ``system - own`` is what other programs *got*. On a saturated machine the kernel shares
    the cores among all runnable threads: if our ``running_workers`` CPU-bound workers got
    ``own / running_workers`` of a core each, the others got the same share of what they
    want, so their demand is ``(system - own) / share``. When only part of the machine is
    usable (CPU affinity, container quota) the load is taken as spread evenly over all cores.

    Parameters
    ----------
    system_busy_cores, own_busy_cores : float or None
        Measured busy cores of the machine, and of our process tree.
    machine_cpu_count, cpu_count : int
        Cores of the machine, and cores we may use.
    running_workers : int, optional
        Our CPU-bound workers that were running during the measurement, if known.
    """
    if system_busy_cores is None:
        return None, ""
    own = own_busy_cores or 0.0
    external = max(0.0, system_busy_cores - own)
    note = ""
    if (
        running_workers
        and own > 0.0
        and system_busy_cores >= SATURATED_FRACTION * machine_cpu_count
    ):
        share = own / running_workers
        if share < 1.0:
            measured = external
            external /= share
            note = (
                f"machine saturated: our {running_workers} workers got {share:.2f} of a core "
                f"each, so other programs want {external:.1f} cores, not the {measured:.1f} "
                "they got"
            )
    if machine_cpu_count > cpu_count:
        external *= cpu_count / machine_cpu_count
    return external, note


def plan_capacity(config: PolicyConfig, inputs: CapacityInputs) -> Capacity:
    """Workers the machine can take at this check.

    Parameters
    ----------
    config : PolicyConfig
        Balancer settings.
    inputs : CapacityInputs
        Measurements of this check and the previous decision.

    Returns
    -------
    Capacity
        Within ``[min_workers, max_workers]``.
    """
    cores = inputs.cpu_count
    threshold = config.cpu_threshold
    if not inputs.shared:
        budget = float(cores)
        basis = f"{cores} dedicated cluster worker threads"
    elif inputs.external_busy_cores is None:
        budget = threshold * cores
        basis = (
            f"CPU use unknown: cpu_threshold {threshold:.2f} x {cores} cores = {budget:.1f} cores"
        )
    else:
        external = inputs.external_busy_cores
        budget = threshold * cores - external
        basis = (
            f"cpu_threshold {threshold:.2f} x {cores} cores - {external:.1f} cores used by other "
            f"programs = {budget:.1f} cores free"
        )
        if inputs.external_note:
            basis += f" ({inputs.external_note})"
    per_worker, why = cores_per_worker(
        inputs.cpu_fraction, inputs.concurrent_task_cores, inputs.executor_type
    )
    target = max(budget, 0.0) / per_worker
    proposed = _clamp(_round_half_up(target), config.min_workers, config.max_workers)
    basis = f"{basis}; {why}" if why else basis

    previous = inputs.previous_workers
    if previous is None:
        workers, verdict = proposed, f"first check: {_workers(proposed)}"
    else:
        previous = _clamp(previous, config.min_workers, config.max_workers)
        shrink_cores = (previous - target) * per_worker
        if proposed > previous:
            workers, verdict = proposed, f"grew {previous} -> {_workers(proposed)}"
        elif proposed < previous and shrink_cores > HYSTERESIS_CORES:
            workers, verdict = proposed, f"shrank {previous} -> {_workers(proposed)}"
        elif proposed == previous:
            workers, verdict = previous, f"kept {_workers(previous)}"
        else:
            workers = previous
            verdict = (
                f"kept {_workers(previous)}: target {target:.1f} is within the "
                f"{HYSTERESIS_CORES:g}-core hysteresis band"
            )
    if workers == config.max_workers and target > config.max_workers:
        verdict += f" (max_workers={config.max_workers})"
    elif workers == config.min_workers and target < config.min_workers:
        verdict += f" (min_workers={config.min_workers})"
    return Capacity(
        workers=workers,
        target=target,
        budget_cores=budget,
        cores_per_worker=per_worker,
        reason=f"{basis} -> {verdict}",
        inputs=inputs,
    )


def choose_workers(config: PolicyConfig, capacity: Capacity, call: CallInputs) -> Decision:
    """Workers for one call: the capacity, limited by what this call allows.

    Parameters
    ----------
    config : PolicyConfig
        Balancer settings.
    capacity : Capacity
        Result of the latest check.
    call : CallInputs
        Limits of this call.

    Returns
    -------
    Decision
        ``workers >= 1``.
    """
    workers = capacity.workers
    limits: list[str] = []
    if call.nested_share is not None:
        if call.nested_share < workers:
            workers = call.nested_share
            limits.append(
                f"called from inside a parallel task, whose share is {_workers(call.nested_share)}"
            )
    elif call.workers_in_use > 0:
        free = max(config.min_workers, capacity.workers - call.workers_in_use)
        if free < workers:
            workers = free
            limits.append(f"{call.workers_in_use} workers busy with other calls of this process")
    if call.call_max_workers is not None and call.call_max_workers < workers:
        workers = call.call_max_workers
        limits.append(f"max_workers={call.call_max_workers} for this call")
    if call.task_memory_bytes and call.available_memory_bytes is not None:
        allowed_bytes = call.available_memory_bytes * config.memory_threshold
        memory_cap = max(1, int(allowed_bytes // call.task_memory_bytes))
        if memory_cap < workers:
            workers = memory_cap
            limits.append(
                f"memory: {call.available_memory_bytes / 2**30:.2f} GiB available x "
                f"{config.memory_threshold:.2f} / {call.task_memory_bytes / 2**20:.1f} MiB per "
                f"task ({call.task_memory_source}) allows {memory_cap}"
            )
    pool_workers = max(1, workers)
    if call.n_tasks is not None and call.n_tasks < workers:
        workers = max(1, call.n_tasks)
        limits.append(f"only {call.n_tasks} task{'s' if call.n_tasks != 1 else ''}")
    workers = max(1, workers)
    reason = capacity.reason
    if limits:
        reason += "; limited to " + str(workers) + " by " + "; ".join(limits)
    inputs: dict[str, Any] = {
        "cpu_count": capacity.inputs.cpu_count,
        "external_busy_cores": capacity.inputs.external_busy_cores,
        "shared_machine": capacity.inputs.shared,
        "budget_cores": capacity.budget_cores,
        "cores_per_worker": capacity.cores_per_worker,
        "cpu_fraction": capacity.inputs.cpu_fraction,
        "executor_type": capacity.inputs.executor_type,
    }
    inputs.update({key: value for key, value in asdict(call).items()})
    return Decision(
        workers=workers,
        capacity=capacity.workers,
        reason=reason,
        inputs=inputs,
        pool_workers=pool_workers,
    )
