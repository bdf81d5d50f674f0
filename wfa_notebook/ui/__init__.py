"""Notebook panels, each a thin ipywidgets skin over a plain model.

- :class:`Dashboard` (over :class:`LoadBalancerMetrics`): the load balancer at work, live;
  :func:`balancer_status` and :func:`statistics_table` for a one-off look.
- :class:`ThresholdExplorer` (over :class:`ThresholdExplorerModel`): hit-finding options as
  sliders beside the waveform they act on.

``import wfa_notebook.ui`` needs neither ipywidgets nor IPython: every name is loaded on first
use, and a panel whose packages are missing says how to install them when it is asked for.
"""
from __future__ import annotations

from importlib import import_module
from typing import Any

from ..errors import WfaDependencyError

__all__ = [
    # live load-balancer dashboard (ipywidgets)
    "Dashboard",
    "show_dashboard",
    "show_statistics",
    "run_watched",
    "plot_task_durations",
    "plot_worker_timeline",
    # its plain model (no widgets)
    "LoadBalancerMetrics",
    "MetricsSnapshot",
    "RunSummary",
    "WorkerTimeline",
    "ensure_load_balancing",
    # one-shot views of a load balancer (no widgets)
    "balancer_status",
    "statistics_table",
    "duration_histogram",
    "DurationHistogram",
    # threshold explorer (ipywidgets) and its plain model
    "ThresholdExplorer",
    "ThresholdExplorerModel",
]

_LAZY = {
    "Dashboard": ".dashboard",
    "show_dashboard": ".dashboard",
    "show_statistics": ".dashboard",
    "run_watched": ".dashboard",
    "plot_task_durations": ".dashboard",
    "plot_worker_timeline": ".dashboard",
    "LoadBalancerMetrics": ".metrics",
    "MetricsSnapshot": ".metrics",
    "RunSummary": ".metrics",
    "WorkerTimeline": ".metrics",
    "ensure_load_balancing": ".metrics",
    "DurationHistogram": ".statistics",
    "balancer_status": ".statistics",
    "statistics_table": ".statistics",
    "duration_histogram": ".statistics",
    "ThresholdExplorer": ".explorer",
    "ThresholdExplorerModel": ".explorer_model",
}

# Optional packages a panel may need, and how to get them.
_INSTALL_HINTS = {
    "ipywidgets": "pip install ipywidgets (and use JupyterLab >= 4 or Notebook >= 7)",
    "IPython": "pip install ipython",
    "matplotlib": "pip install matplotlib",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        msg = f"module 'wfa_notebook.ui' has no attribute {name!r}"
        raise AttributeError(msg)
    try:
        module = import_module(_LAZY[name], __name__)
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").split(".")[0]
        if missing not in _INSTALL_HINTS:
            raise
        msg = (
            f"wfa_notebook.ui.{name} needs {missing}, which is not installed: "
            f"{_INSTALL_HINTS[missing]}."
        )
        raise WfaDependencyError(msg) from exc
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
