"""Figures of the parallel-execution layer; prints, asserts nothing (not a timed test).

Sections
--------
0. Pool resize cost of loky (the source of the balancer's hysteresis constant).
1. Overhead of balanced ``parallel_map`` vs plain ``joblib.Parallel(n_jobs=2)`` on 10,000
   trivial tasks (threads and processes). Target ratio <= 1.1.
2. Speed-up of a CPU-bound task set (a nogil numba kernel in threads; pure Python in
   processes) with 2 workers vs 1. Target >= 1.8x.
3. A simulated 64-core machine whose external load comes and goes: workers chosen vs free
   cores after each check. Target: within one core after each check.
4. The same machine under the earlier package's policy (start at min_workers, +-1 per check,
   system-wide CPU including its own workers) for comparison.

Run: ``.venv/bin/python benchmarks/bench_execution.py`` (``--quick`` for fewer repeats).
"""
from __future__ import annotations

import argparse
import statistics
import time

import numba
import numpy as np
from joblib import Parallel, delayed

from wfa_notebook.execution import (
    disable_global_load_balancing,
    enable_global_load_balancing,
    get_load_balancer_stats,
    parallel_map,
)
from wfa_notebook.load_balancer import DynamicLoadBalancer, FakeProbe, SystemProbe
from wfa_notebook.load_balancer.probe import usable_cpu_count


def _median_times(runs, repeats: int) -> list[float]:
    """Median wall time of each run; runs are interleaved so load changes hit all alike."""
    times: list[list[float]] = [[] for _ in runs]
    for _ in range(repeats):
        for run, run_times in zip(runs, times):
            start = time.perf_counter()
            run()
            run_times.append(time.perf_counter() - start)
    return [statistics.median(run_times) for run_times in times]


def _trivial(x):
    return x + 1


# ----------------------------------------------------------------------------------------------
# 0. Pool resize cost
# ----------------------------------------------------------------------------------------------
def _noop():
    return None


def bench_resize(repeats: int) -> None:
    from joblib.externals.loky import get_reusable_executor

    print(f"0. loky pool resize cost (median of {repeats}): time until a task ran on the new pool")
    executor = get_reusable_executor(max_workers=2, env={"OMP_NUM_THREADS": "1"})
    executor.submit(_noop).result()
    shrink, grow, restart = [], [], []
    for i in range(repeats):
        start = time.perf_counter()
        executor = get_reusable_executor(max_workers=1, env={"OMP_NUM_THREADS": "1"})
        executor.submit(_noop).result()
        shrink.append(time.perf_counter() - start)
        start = time.perf_counter()
        executor = get_reusable_executor(max_workers=2, env={"OMP_NUM_THREADS": "1"})
        executor.submit(_noop).result()
        grow.append(time.perf_counter() - start)
        # Changed worker environment: loky cannot reuse and restarts all workers.
        start = time.perf_counter()
        executor = get_reusable_executor(max_workers=2, env={"OMP_NUM_THREADS": str(2 + i % 2)})
        executor.submit(_noop).result()
        restart.append(time.perf_counter() - start)
    executor.shutdown(wait=True)
    print(f"   shrink 2->1: {statistics.median(shrink) * 1e3:7.1f} ms")
    print(f"   grow   1->2: {statistics.median(grow) * 1e3:7.1f} ms")
    print(f"   restart    : {statistics.median(restart) * 1e3:7.1f} ms (worker environment "
          "changed)")
    print()


# ----------------------------------------------------------------------------------------------
# 1. Overhead on trivial tasks
# ----------------------------------------------------------------------------------------------
def bench_overhead(repeats: int, n_tasks: int = 10_000) -> None:
    print(f"1. overhead on {n_tasks:,} trivial tasks, 2 workers (median of {repeats})")
    items = list(range(n_tasks))
    # The balancer is consulted, samples the machine and records every task; min=max=2 makes
    # it choose the same 2 workers as the plain runs so only the overhead differs.
    enable_global_load_balancing(min_workers=2, max_workers=2)
    for executor_type, joblib_backend in (("thread", "threading"), ("process", "loky")):
        def plain():
            Parallel(n_jobs=2, backend=joblib_backend)(delayed(_trivial)(x) for x in items)

        def balanced():
            parallel_map(_trivial, items, executor_type=executor_type)

        plain()
        balanced()  # warm-up: workers started, first probe window paid
        t_plain, t_balanced = _median_times((plain, balanced), repeats)
        print(
            f"   {executor_type:7s}: joblib.Parallel(n_jobs=2, backend={joblib_backend!r}) "
            f"{t_plain * 1e3:7.1f} ms | balanced parallel_map {t_balanced * 1e3:7.1f} ms | "
            f"ratio {t_balanced / t_plain:.2f} (target <= 1.1)"
        )
    stats = get_load_balancer_stats()
    print(f"   balancer recorded {stats['total_tasks']:,} tasks in {stats['total_calls']} calls")
    disable_global_load_balancing()
    print()


# ----------------------------------------------------------------------------------------------
# 2. CPU-bound speed-up
# ----------------------------------------------------------------------------------------------
@numba.njit(nogil=True, cache=True)
def _integrate(n_steps: int) -> float:
    total = 0.0
    for i in range(n_steps):
        x = (i + 0.5) / n_steps
        total += 4.0 / (1.0 + x * x)
    return total / n_steps


def _pure_python(n_steps: int) -> float:
    total = 0.0
    for i in range(n_steps):
        x = (i + 0.5) / n_steps
        total += 4.0 / (1.0 + x * x)
    return total / n_steps


def bench_speedup(repeats: int) -> None:
    print(f"2. CPU-bound speed-up, 2 workers vs 1 (median of {repeats}); usable cores: "
          f"{usable_cpu_count()}")
    probe = SystemProbe()  # to report how busy other programs kept the machine meanwhile
    _integrate(10)
    cases = (
        ("thread", _integrate, 5_000_000, 32),  # ~10 ms per task, releases the GIL
        ("process", _pure_python, 200_000, 32),  # ~20 ms per task, pure Python
    )
    for executor_type, func, n_steps, n_tasks in cases:
        items = [n_steps] * n_tasks
        parallel_map(func, items[:4], executor_type=executor_type, max_workers=2)  # warm-up
        one, two = _median_times(
            (
                lambda: parallel_map(func, items, executor_type=executor_type, max_workers=1),
                lambda: parallel_map(func, items, executor_type=executor_type, max_workers=2),
            ),
            repeats,
        )
        print(
            f"   {executor_type:7s} ({func.__name__}, {n_tasks} tasks): 1 worker "
            f"{one * 1e3:7.1f} ms | 2 workers {two * 1e3:7.1f} ms | speed-up {one / two:.2f}x "
            "(target >= 1.8x)"
        )
    snapshot = probe.sample()
    print(f"   meanwhile other programs used {snapshot.external_busy_cores:.2f} of the "
          f"{snapshot.cpu_count} cores on average (a speed-up of 2 needs both cores free)")
    print()


# ----------------------------------------------------------------------------------------------
# 3./4. Simulated 64-core machine
# ----------------------------------------------------------------------------------------------
CORES = 64
CHECK_S = 5.0
THRESHOLD = 0.8

#: (start s, external busy cores) - a colleague's jobs arriving and leaving.
SCHEDULE = ((0, 0.0), (60, 20.0), (150, 44.0), (240, 8.0), (330, 30.0), (420, 0.0))
DURATION_S = 540


def _external(t: float, rng: np.random.Generator) -> float:
    level = [cores for start, cores in SCHEDULE if start <= t][-1]
    # Measured load jitters by a few tenths of a core between checks.
    return max(0.0, level + rng.normal(0.0, 0.3)) if level else abs(rng.normal(0.0, 0.1))


def _free(external: float) -> float:
    return THRESHOLD * CORES - external


def simulate_new(rng: np.random.Generator, contention: bool) -> list[tuple[float, float, int]]:
    """(time, external, workers) after each check, with this package's balancer."""
    state = {"external": 0.0, "workers": 0}
    probe = FakeProbe(
        cpu_count=CORES,
        external_busy_cores=lambda: state["external"],
        own_busy_cores=lambda: state["workers"],  # our CPU-bound workers keep their cores busy
        contention=contention,
    )
    balancer = DynamicLoadBalancer(min_workers=1, cpu_threshold=THRESHOLD, check_interval=CHECK_S,
                                   probe=probe)
    rows = []
    t = 0.0
    while t <= DURATION_S:
        state["external"] = _external(t, rng)
        state["workers"] = balancer.get_optimal_workers(n_tasks=10_000)
        rows.append((t, state["external"], state["workers"]))
        # Until the next check the workers finish CPU-bound tasks of one second each.
        done = [1.0] * state["workers"] * int(CHECK_S)
        balancer.record_tasks(done, cpu_seconds=float(len(done)), executor_type="thread",
                              workers=state["workers"])
        probe.advance(CHECK_S)
        t += CHECK_S
    return rows


def simulate_old(rng: np.random.Generator) -> list[tuple[float, float, int]]:
    """The earlier package: start at min_workers, +-1 per check from system-wide CPU %."""
    workers, rows, t = 1, [], 0.0
    memory_fraction = 0.3
    while t <= DURATION_S:
        external = _external(t, rng)
        system = min(1.0, (external + workers) / CORES)  # its own workers included
        if system > THRESHOLD or memory_fraction > 0.85:
            workers = max(1, workers - 1)
        elif system < 0.5 * THRESHOLD and memory_fraction < 0.7 * 0.85:
            workers = min(CORES, workers + 1)
        rows.append((t, external, workers))
        t += CHECK_S
    return rows


def _summary(name: str, rows: list[tuple[float, float, int]]) -> None:
    errors = [workers - _free(external) for _, external, workers in rows]
    within = sum(abs(e) <= 1.0 for e in errors)
    resizes = sum(1 for a, b in zip(rows, rows[1:]) if a[2] != b[2])
    print(
        f"   {name}: within one core of the free cores after {within}/{len(rows)} checks; "
        f"median |error| {statistics.median(abs(e) for e in errors):.1f} cores, "
        f"max {max(abs(e) for e in errors):.1f}; {resizes} resizes"
    )


def bench_simulation() -> None:
    print(f"3./4. simulated {CORES}-core machine, cpu_threshold {THRESHOLD}, check every "
          f"{CHECK_S:g} s; free cores = {THRESHOLD} x {CORES} - external load")
    rng_seed = 2024
    new = simulate_new(np.random.default_rng(rng_seed), contention=False)
    new_contended = simulate_new(np.random.default_rng(rng_seed), contention=True)
    old = simulate_old(np.random.default_rng(rng_seed))
    print("   time s | external | free | workers: this package, exact load | cores shared by the "
          "kernel | earlier package")
    for (t, external, w_new), (_, _, w_cont), (_, _, w_old) in zip(new, new_contended, old):
        if t % 15 == 0:
            print(f"   {t:6.0f} | {external:8.1f} | {_free(external):4.1f} | {w_new:33d} | "
                  f"{w_cont:25d} | {w_old:15d}")
    _summary("this package, exact load measured  ", new)
    _summary("this package, cores shared (kernel)", new_contended)
    _summary("earlier package                    ", old)
    print("   (cores shared: when demand exceeds the cores the kernel shares them, so the load "
          "of other programs is measured low; the balancer infers their demand from the share "
          "its own workers got)")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--only", type=int, choices=range(5), help="run one section")
    args = parser.parse_args()
    repeats = 3 if args.quick else 7
    sections = (bench_resize, bench_overhead, bench_speedup, None, None)
    if args.only in (3, 4):
        bench_simulation()
        return
    if args.only is not None:
        sections[args.only](repeats)
        return
    bench_resize(repeats)
    bench_overhead(repeats)
    bench_speedup(repeats)
    bench_simulation()


if __name__ == "__main__":
    main()
