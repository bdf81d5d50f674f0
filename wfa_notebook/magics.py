"""IPython magics: ``%load_ext wfa_notebook`` in a notebook, then

- ``%wfa_balance on [--min N] [--max N] [--cpu F] [--mem F] [--interval S]``,
  ``%wfa_balance off``, ``%wfa_balance`` (status line)
- ``%wfa_dashboard [BALANCER]``: the live load-balancer dashboard
- ``%wfa_stats [BALANCER]``: the balancer's statistics table and task-duration histogram
- ``%%wfa_parallel [--workers N]``: run the cell with the dashboard attached, then a summary
- ``%wfa_explore CONTEXT RUN_ID [--channel C]``: the threshold explorer

The magics only parse their arguments and call public functions of
:mod:`wfa_notebook.execution` and :mod:`wfa_notebook.ui`; everything they do can be done from
Python the same way. ``%unload_ext wfa_notebook`` removes them again.
"""
from __future__ import annotations

import argparse
import shlex
from typing import Any, NoReturn

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class

from .errors import WfaConfigError

__all__ = ["WfaMagics", "load_ipython_extension", "unload_ipython_extension"]


class _Parser(argparse.ArgumentParser):
    """argparse that raises IPython's UsageError, with the usage text, instead of exiting."""

    def __init__(self, prog: str, description: str, usage: str | None = None) -> None:
        super().__init__(prog=prog, description=description, usage=usage, add_help=False,
                         formatter_class=argparse.RawDescriptionHelpFormatter)

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}\n\n{self.format_help()}")

    def parse(self, line: str) -> argparse.Namespace:
        try:
            words = shlex.split(line)
        except ValueError as exc:  # an unclosed quote
            self.error(str(exc))
        return self.parse_args(words)


def _balance_parser() -> _Parser:
    parser = _Parser(
        "%wfa_balance",
        "Turn the global load balancer on or off, or show its status (no argument).",
        usage="%(prog)s [on [--min N] [--max N] [--cpu F] [--mem F] [--interval S] | off]",
    )
    parser.add_argument("state", nargs="?", choices=("on", "off"),
                        help="on: enable (again, with fresh statistics); off: disable")
    parser.add_argument("--min", type=int, dest="min_workers", metavar="N",
                        help="fewest workers planned (default 1)")
    parser.add_argument("--max", type=int, dest="max_workers", metavar="N",
                        help="most workers planned (default: all usable cores)")
    parser.add_argument("--cpu", type=float, dest="cpu_threshold", metavar="F",
                        help="fraction of all cores the machine may be kept busy with, (0, 1] "
                             "(default 0.8)")
    parser.add_argument("--mem", type=float, dest="memory_threshold", metavar="F",
                        help="fraction of the available memory tasks may use, (0, 1] "
                             "(default 0.85)")
    parser.add_argument("--interval", type=float, dest="check_interval", metavar="S",
                        help="seconds between measurements of the machine (default 5)")
    return parser


def _source_parser(prog: str, description: str) -> _Parser:
    parser = _Parser(prog, description)
    parser.add_argument("balancer", nargs="?", metavar="BALANCER",
                        help="name of a DynamicLoadBalancer or StreamingPlugin in the notebook "
                             "(default: the global load balancer)")
    return parser


def _parallel_parser() -> _Parser:
    parser = _Parser(
        "%%wfa_parallel",
        "Run the cell with the load-balancer dashboard attached; print a summary at its end.\n"
        "Without global load balancing the cell runs under a temporary balancer.",
    )
    parser.add_argument("--workers", type=int, metavar="N",
                        help="at most N workers (only while global load balancing is off)")
    return parser


def _explore_parser() -> _Parser:
    parser = _Parser("%wfa_explore", "Open the threshold explorer on a run of a Context.")
    parser.add_argument("context", metavar="CONTEXT", help="name of a Context in the notebook")
    parser.add_argument("run_id", metavar="RUN_ID", help="the run to look at")
    parser.add_argument("--channel", type=int, metavar="C", help="channel shown first")
    return parser


_BALANCE = _balance_parser()
_DASHBOARD = _source_parser("%wfa_dashboard", "Show the live load-balancer dashboard.")
_STATS = _source_parser(
    "%wfa_stats", "Show the load balancer's statistics: a table and the task-duration histogram."
)
_PARALLEL = _parallel_parser()
_EXPLORE = _explore_parser()


@magics_class
class WfaMagics(Magics):
    """The wfa_notebook magics (registered by ``%load_ext wfa_notebook``)."""

    def _variable(self, parser: _Parser, name: str) -> Any:
        try:
            return self.shell.user_ns[name]
        except KeyError:
            parser.error(f"no variable named {name!r} in the notebook; define it first.")

    @line_magic
    def wfa_balance(self, line: str = "") -> None:
        args = _BALANCE.parse(line)
        settings = {key: value for key, value in vars(args).items()
                    if key != "state" and value is not None}
        from .execution import disable_global_load_balancing, enable_global_load_balancing
        from .ui.statistics import balancer_status

        if args.state != "on" and settings:
            options = ", ".join(f"--{_OPTION_NAMES[key]}" for key in settings)
            _BALANCE.error(f"{options} only go with `on`.")
        if args.state == "on":
            try:
                enable_global_load_balancing(**settings)
            except WfaConfigError as exc:
                _BALANCE.error(str(exc))
        elif args.state == "off":
            disable_global_load_balancing()
        print(balancer_status())

    @line_magic
    def wfa_dashboard(self, line: str = "") -> None:
        from .ui.dashboard import show_dashboard

        self._show(_DASHBOARD, line, show_dashboard)

    @line_magic
    def wfa_stats(self, line: str = "") -> None:
        from .ui.dashboard import show_statistics

        self._show(_STATS, line, show_statistics)

    def _show(self, parser: Any, line: str, show: Any) -> None:
        """Parse ``[BALANCER]`` and call ``show`` with that balancer (None: the global one)."""
        args = parser.parse(line)
        source = self._variable(parser, args.balancer) if args.balancer else None
        try:
            show(source)
        except WfaConfigError as exc:
            parser.error(str(exc))

    @cell_magic
    def wfa_parallel(self, line: str, cell: str) -> None:
        args = _PARALLEL.parse(line)
        from .ui.dashboard import run_watched

        try:
            summary = run_watched(lambda: self.shell.run_cell(cell), workers=args.workers)
        except WfaConfigError as exc:
            _PARALLEL.error(str(exc))
        print(f"wfa_parallel: {summary}")

    @line_magic
    def wfa_explore(self, line: str = "") -> None:
        args = _EXPLORE.parse(line)
        context = self._variable(_EXPLORE, args.context)
        from .ui.explorer import ThresholdExplorer

        ThresholdExplorer(context, args.run_id, channel=args.channel, display=True)


_OPTION_NAMES = {
    "min_workers": "min",
    "max_workers": "max",
    "cpu_threshold": "cpu",
    "memory_threshold": "mem",
    "check_interval": "interval",
}

# `%wfa_balance?` shows the usage.
for _magic, _parser in (("wfa_balance", _BALANCE), ("wfa_dashboard", _DASHBOARD), ("wfa_stats", _STATS),
                        ("wfa_parallel", _PARALLEL), ("wfa_explore", _EXPLORE)):
    getattr(WfaMagics, _magic).__doc__ = _parser.format_help()
del _magic, _parser


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics (``%load_ext wfa_notebook``)."""
    ipython.register_magics(WfaMagics)


def unload_ipython_extension(ipython: Any) -> None:
    """Remove the magics again (``%unload_ext wfa_notebook``)."""
    manager = ipython.magics_manager
    for kind, names in WfaMagics.magics.items():
        for name in names:
            manager.magics[kind].pop(name, None)
    manager.registry.pop(WfaMagics.__name__, None)
