"""The IPython magics, in a real InteractiveShell."""
from __future__ import annotations

import inspect
import sys
import types

import pytest

pytest.importorskip("IPython")
pytest.importorskip("ipywidgets")

from IPython.core.error import UsageError  # noqa: E402
from IPython.testing import globalipapp  # noqa: E402

from wfa_notebook.execution import (  # noqa: E402
    disable_global_load_balancing,
    enable_global_load_balancing,
    get_executor_manager,
)
from wfa_notebook.load_balancer import DynamicLoadBalancer, FakeProbe  # noqa: E402

MAGICS = {"line": ["wfa_balance", "wfa_dashboard", "wfa_stats", "wfa_explore"],
          "cell": ["wfa_parallel"]}


@pytest.fixture
def ip():
    globalipapp.start_ipython()  # once per test session; later calls return None
    shell = globalipapp.get_ipython()
    disable_global_load_balancing()
    shell.extension_manager.load_extension("wfa_notebook")
    yield shell
    shell.extension_manager.unload_extension("wfa_notebook")
    disable_global_load_balancing()
    from wfa_notebook.ui import dashboard

    if dashboard._shown is not None:  # stop the thread of %wfa_dashboard
        dashboard._shown.stop()


def square(x):
    return x * x


def test_load_ext_registers_every_magic_and_unload_removes_them(ip):
    for kind, names in MAGICS.items():
        for name in names:
            assert ip.find_magic(name, kind) is not None, name
    ip.extension_manager.unload_extension("wfa_notebook")
    for kind, names in MAGICS.items():
        for name in names:
            assert ip.find_magic(name, kind) is None, name
    ip.extension_manager.load_extension("wfa_notebook")  # the fixture unloads it again


def test_wfa_balance_turns_the_global_balancer_on_and_off_with_a_status_line(ip, capsys):
    manager = get_executor_manager()
    ip.run_line_magic("wfa_balance", "")
    assert capsys.readouterr().out.startswith("Load balancing is off")

    ip.run_line_magic("wfa_balance", "on --min 2 --max 3 --cpu 0.5 --mem 0.7 --interval 2")
    balancer = manager.active_balancer()
    assert (balancer.min_workers, balancer.max_workers) == (2, 3)
    assert (balancer.cpu_threshold, balancer.memory_threshold, balancer.check_interval) == (
        0.5, 0.7, 2.0)
    assert "Load balancing on" in capsys.readouterr().out

    ip.run_line_magic("wfa_balance", "")
    assert "min 2, max 3 workers" in capsys.readouterr().out
    ip.run_line_magic("wfa_balance", "off")
    assert manager.active_balancer() is None
    assert "off" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("maybe", "invalid choice"),
        ("on --min x", "invalid int value"),
        ("on --cpu 1.5", "cpu_threshold=1.5"),
        ("on --min 4 --max 2", "min_workers=4 is larger than max_workers=2"),
        ("off --max 4", "--max only go with `on`"),
        ("on --unknown 3", "unrecognized arguments"),
        ("on 'unclosed", "quotation"),
    ],
)
def test_wfa_balance_bad_arguments_raise_usage_error_with_the_usage(ip, line, message):
    with pytest.raises(UsageError) as error:
        ip.run_line_magic("wfa_balance", line)
    assert message in str(error.value)
    assert "usage: %wfa_balance [on [--min N]" in str(error.value)
    assert get_executor_manager().active_balancer() is None


def test_wfa_stats_shows_a_table_and_the_duration_histogram(ip, capsys, monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda *objects, **kw: shown.extend(objects))
    enable_global_load_balancing(max_workers=2, probe=FakeProbe(cpu_count=2), cpu_threshold=1.0)
    ip.user_ns["square"] = square
    ip.run_cell("from wfa_notebook.execution import parallel_map\n_ = parallel_map(square, range(20))")
    ip.run_line_magic("wfa_stats", "")
    table, image = shown
    rows = {row["statistic"]: row["value"] for row in table}
    assert rows["tasks done"] == 20
    assert image.data.startswith(b"\x89PNG")


def test_wfa_stats_of_a_balancer_in_the_notebook_and_of_a_missing_name(ip, monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda *objects, **kw: shown.extend(objects))
    balancer = DynamicLoadBalancer(probe=FakeProbe())
    balancer.record_task_completion(0.25)
    ip.user_ns["my_balancer"] = balancer
    ip.run_line_magic("wfa_stats", "my_balancer")
    assert {row["statistic"]: row["value"] for row in shown[0]}["tasks done"] == 1
    with pytest.raises(UsageError, match="no variable named 'nothing_here'"):
        ip.run_line_magic("wfa_stats", "nothing_here")
    ip.user_ns["not_a_balancer"] = 3
    with pytest.raises(UsageError, match="Cannot watch a int"):
        ip.run_line_magic("wfa_stats", "not_a_balancer")


def test_wfa_dashboard_shows_a_live_dashboard_replacing_the_previous_one(ip, monkeypatch):
    from wfa_notebook.ui import Dashboard, dashboard

    shown = []
    monkeypatch.setattr("IPython.display.display", lambda *objects, **kw: shown.extend(objects))
    enable_global_load_balancing(max_workers=2, probe=FakeProbe(cpu_count=2), cpu_threshold=1.0)
    assert ip.run_line_magic("wfa_dashboard", "") is None
    first = shown[-1]
    assert isinstance(first, Dashboard) and first.live and dashboard._shown is first
    ip.run_line_magic("wfa_dashboard", "")
    second = shown[-1]
    assert second is not first and second.live and not first.live
    with pytest.raises(UsageError, match="unrecognized arguments"):
        ip.run_line_magic("wfa_dashboard", "a b")


def test_wfa_parallel_runs_the_cell_and_prints_a_summary(ip, capsys, monkeypatch):
    monkeypatch.setattr("IPython.display.display", lambda *objects, **kw: None)
    ip.user_ns["square"] = square
    ip.run_cell_magic(
        "wfa_parallel", "--workers 2",
        "from wfa_notebook.execution import parallel_map\nresults = parallel_map(square, range(50))",
    )
    assert ip.user_ns["results"] == [x * x for x in range(50)]
    out = capsys.readouterr().out
    assert "wfa_parallel: 50 tasks (0 failed) in " in out and "tasks/s" in out
    assert get_executor_manager().active_balancer() is None  # the temporary balancer is gone


def test_wfa_parallel_summary_counts_failures_and_keeps_the_traceback(ip, capsys, monkeypatch):
    monkeypatch.setattr("IPython.display.display", lambda *objects, **kw: None)
    enable_global_load_balancing(max_workers=2, probe=FakeProbe(cpu_count=2), cpu_threshold=1.0)
    ip.run_cell_magic(
        "wfa_parallel", "",
        "from wfa_notebook.execution import parallel_map\n"
        "parallel_map(lambda x: 1 / (x - 3), range(6), max_workers=1)",
    )
    captured = capsys.readouterr()
    assert "WfaTaskError" in captured.out + captured.err
    assert "(1 failed)" in captured.out
    assert get_executor_manager().active_balancer() is not None  # the user's balancer stays


def test_wfa_parallel_bad_arguments(ip):
    with pytest.raises(UsageError, match="invalid int value") as error:
        ip.run_cell_magic("wfa_parallel", "--workers many", "pass")
    assert "usage: %%wfa_parallel [--workers N]" in str(error.value)
    enable_global_load_balancing(max_workers=4, probe=FakeProbe(cpu_count=4))
    with pytest.raises(UsageError, match="--max 2"):
        ip.run_cell_magic("wfa_parallel", "--workers 2", "pass")


def test_wfa_explore_opens_the_explorer_on_a_context_of_the_notebook(ip, monkeypatch):
    opened = []

    class RecordingExplorer:
        def __init__(self, context, run_id, channel=None, display=True):
            opened.append((context, run_id, channel, display))

    fake = types.ModuleType("wfa_notebook.ui.explorer")
    fake.ThresholdExplorer = RecordingExplorer
    monkeypatch.setitem(sys.modules, "wfa_notebook.ui.explorer", fake)
    context = object()
    ip.user_ns["ctx"] = context
    assert ip.run_line_magic("wfa_explore", "ctx run_7 --channel 2") is None
    ip.run_line_magic("wfa_explore", "ctx run_8")
    assert opened == [(context, "run_7", 2, True), (context, "run_8", None, True)]
    # the fake stands in for the real explorer: the call the magic makes must fit the real one
    from wfa_notebook.ui.explorer import ThresholdExplorer

    inspect.signature(ThresholdExplorer).bind(context, "run_7", channel=2, display=True)
    with pytest.raises(UsageError, match="no variable named 'missing'"):
        ip.run_line_magic("wfa_explore", "missing run_7")
    with pytest.raises(UsageError, match="required: RUN_ID") as error:
        ip.run_line_magic("wfa_explore", "ctx")
    assert "usage: %wfa_explore [--channel C] CONTEXT RUN_ID" in str(error.value)
