"""Dynamic load balancing: how many workers to run, from the machine's free CPU and memory.

>>> from wfa_notebook.load_balancer import DynamicLoadBalancer
>>> balancer = DynamicLoadBalancer(min_workers=2, max_workers=8)   # doctest: +SKIP
>>> balancer.get_optimal_workers(n_tasks=100)                      # doctest: +SKIP

The policy (:mod:`~wfa_notebook.load_balancer.policy`) is pure; measurements come from an
injectable probe (:mod:`~wfa_notebook.load_balancer.probe`), so behaviour on machines of any
size and load can be tested with :class:`FakeProbe`.
"""
from __future__ import annotations

# The balancer
from .balancer import EXECUTOR_TYPES, DynamicLoadBalancer

# Policy
from .policy import Capacity, CapacityInputs, CallInputs, Decision, PolicyConfig
from .policy import choose_workers, plan_capacity

# Probes
from .probe import BasicProbe, FakeProbe, ResourceProbe, ResourceSnapshot, SystemProbe
from .probe import default_probe, usable_cpu_count

# Statistics
from .stats import TaskHistory

__all__ = [
    # balancer
    "DynamicLoadBalancer",
    "EXECUTOR_TYPES",
    # policy
    "PolicyConfig",
    "CapacityInputs",
    "Capacity",
    "CallInputs",
    "Decision",
    "plan_capacity",
    "choose_workers",
    # probes
    "ResourceProbe",
    "ResourceSnapshot",
    "SystemProbe",
    "BasicProbe",
    "FakeProbe",
    "default_probe",
    "usable_cpu_count",
    # statistics
    "TaskHistory",
]
