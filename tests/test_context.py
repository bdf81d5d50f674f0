from __future__ import annotations

import importlib
import importlib.util
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wfa_notebook.context import Context
from wfa_notebook.errors import WfaConfigError, WfaDependencyError, WfaPluginError
from wfa_notebook.plugins import Plugin
from toy_plugins import NeighbourCount, PulseSource, Scaled, Summed, make_pulses


@pytest.fixture
def ctx(tmp_path):
    PulseSource.calls = 0
    return Context(tmp_path / "cache", register=[PulseSource, Scaled, Summed, NeighbourCount], max_workers=1)


def test_chain_output_matches_direct_computation(ctx):
    scaled = ctx.get_array("run1", "scaled")
    rows = make_pulses(200)
    np.testing.assert_array_equal(scaled["time"], rows["time"])
    np.testing.assert_allclose(scaled["value"], 2 * rows["value"])
    summed = ctx.get_array("run1", "summed")
    np.testing.assert_allclose(summed["value"], 3 * rows["value"])


def test_global_and_per_plugin_config(ctx):
    rows = make_pulses(200)
    ctx.set_config({"factor": 5.0})
    np.testing.assert_allclose(ctx.get_array("run1", "scaled")["value"], 5 * rows["value"])
    ctx.set_config({"scaled": {"factor": 7}})  # per plugin wins over global, ints accepted for floats
    np.testing.assert_allclose(ctx.get_array("run1", "scaled")["value"], 7 * rows["value"])
    np.testing.assert_allclose(ctx.get_array("run1", "scaled", config={"scaled": {"factor": 1.0}})["value"], rows["value"])


def test_cache_hit_and_miss_on_option_change(ctx):
    ctx.get_array("run1", "scaled")
    assert PulseSource.calls == 1
    assert ctx.is_stored("run1", "scaled")
    again = ctx.get_array("run1", "scaled")
    assert PulseSource.calls == 1, "a cached result must be loaded, not recomputed"
    assert ctx.last_run.loaded == ["scaled"] and ctx.last_run.computed == []
    changed = ctx.new_context(config={"factor": 3.0})
    assert not changed.is_stored("run1", "scaled")
    assert changed.key_for("run1", "scaled") != ctx.key_for("run1", "scaled")
    assert changed.key_for("run1", "pulses") == ctx.key_for("run1", "pulses")
    np.testing.assert_allclose(changed.get_array("run1", "scaled")["value"], 1.5 * again["value"])
    assert changed.last_run.computed == ["scaled"], "pulses was cached and must be reused"


def test_max_workers_is_checked(ctx):
    with pytest.raises(WfaConfigError, match="max_workers must be None or an int >= 1"):
        ctx.new_context(max_workers=0)


def test_untracked_option_does_not_change_the_key(ctx):
    key = ctx.key_for("run1", "scaled")
    assert ctx.new_context(config={"chunk_rows": 7}).key_for("run1", "scaled") == key
    assert ctx.new_context(config={"n_rows": 7}).key_for("run1", "scaled") != key


def _load_plugin_module(tmp_path, name, body):
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(body))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Offset


PLUGIN_SOURCE = """
from wfa_notebook.plugins import Plugin
from toy_plugins import pulse_dtype

class Offset(Plugin):
    provides = "offset"
    depends_on = ("pulses",)
    dtype = pulse_dtype
    __version__ = "0.1.0"

    def compute(self, pulses):
        out = pulses.copy()
        out["value"] += {offset}
        return out
"""


def test_editing_plugin_source_without_version_bump_invalidates_cache(ctx, tmp_path):
    first = _load_plugin_module(tmp_path, "plugin_v1", PLUGIN_SOURCE.format(offset=1))
    edited = _load_plugin_module(tmp_path, "plugin_v2", PLUGIN_SOURCE.format(offset=2))
    ctx.register(first)
    a = ctx.get_array("run1", "offset")
    ctx.register(edited)  # same class name, same version, other code
    assert not ctx.is_stored("run1", "offset")
    b = ctx.get_array("run1", "offset")
    np.testing.assert_allclose(b["value"] - a["value"], 1.0)


def test_lineage_names_everything_that_decides_the_result(ctx):
    lineage = ctx.lineage("run1", "summed")
    assert lineage["plugin"] == "Summed" and lineage["version"] == "0.1.0"
    scaled = lineage["depends_on"]["scaled"]
    assert scaled["options"] == {"factor": 2.0}
    assert scaled["depends_on"]["pulses"]["options"] == {"n_rows": 200, "seed": 0}
    assert len(scaled["code"]) == 16


@pytest.mark.parametrize("chunk_rows", [1, 7, 50, 200])
def test_results_do_not_depend_on_chunking(tmp_path, chunk_rows):
    reference = Context(tmp_path / "a", register=[PulseSource, Scaled, NeighbourCount], config={"chunk_rows": 200})
    other = Context(tmp_path / "b", register=[PulseSource, Scaled, NeighbourCount], config={"chunk_rows": chunk_rows})
    for target in ("scaled", "neighbours"):
        np.testing.assert_array_equal(other.get_array("run1", target), reference.get_array("run1", target))
    assert other.last_run.chunks["pulses"] == -(-200 // chunk_rows)


def test_halo_matters(tmp_path):
    """Without a halo, neighbour counts near chunk edges would be wrong: the test above can fail."""
    class NoHalo(NeighbourCount):
        provides = "neighbours_nohalo"
        halo_ns = 0

        def compute_chunk(self, chunk, context, run_id, **kwargs):
            t = chunk.data["time"]
            out = chunk.data.copy()
            out["value"] = np.searchsorted(t, t + 300, side="right") - np.searchsorted(t, t - 300) - 1
            return out

    whole = Context(tmp_path / "a", register=[PulseSource, NoHalo], config={"chunk_rows": 200})
    cut = Context(tmp_path / "b", register=[PulseSource, NoHalo], config={"chunk_rows": 7})
    assert not np.array_equal(cut.get_array("run1", "neighbours_nohalo"), whole.get_array("run1", "neighbours_nohalo"))


def test_time_range_and_multiple_targets(ctx):
    rows = make_pulses(200)
    t0, t1 = int(rows["time"][30]), int(rows["time"][90])
    part = ctx.get_array("run1", "scaled", time_range=(t0, t1))
    np.testing.assert_array_equal(part["time"], rows["time"][30:90])
    both = ctx.get_array("run1", ["scaled", "summed"])  # same rows, fields of both
    assert len(both) == 200
    np.testing.assert_allclose(both["value"], 2 * rows["value"])  # the first target's field wins
    with pytest.raises(WfaConfigError, match="end > start"):
        ctx.get_array("run1", "scaled", time_range=(5, 5))
    after_run = (int(rows["time"][-1]) + 10**6, int(rows["time"][-1]) + 2 * 10**6)
    nothing = ctx.get_array("run1", ["scaled", "summed"], time_range=after_run)
    assert len(nothing) == 0 and nothing.dtype == both.dtype


def test_get_iter_streams_chunks_in_time_order(ctx):
    chunks = list(ctx.get_iter("run1", "scaled"))
    assert len(chunks) == 4
    assert all(a.end == b.start for a, b in zip(chunks[:-1], chunks[1:]))


def test_get_df(ctx):
    pd = pytest.importorskip("pandas")
    df = ctx.get_df("run1", "scaled")
    assert isinstance(df, pd.DataFrame) and list(df.columns) == ["time", "length", "dt", "value"]


def test_get_df_without_pandas_says_what_to_install(ctx, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_pandas(name, *args, **kwargs):
        if name == "pandas":
            raise ImportError("no pandas")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pandas)
    with pytest.raises(WfaDependencyError, match="pip install pandas"):
        ctx.get_df("run1", "scaled")


@pytest.mark.parametrize("run_id", ["../evil", "a/b", "", ".hidden", "x" * 200, "a\\b", 5])
def test_bad_run_id_is_refused(ctx, run_id):
    with pytest.raises(WfaConfigError, match="Invalid run_id"):
        ctx.get_array(run_id, "scaled")


def test_missing_provider_and_cycles_are_explained(ctx):
    with pytest.raises(WfaPluginError, match="No plugin provides 'peaks'"):
        ctx.get_array("run1", "peaks")

    class A(Plugin):
        provides, depends_on, dtype = "a", ("b",), PulseSource.dtype

        def compute(self, b):
            return b

    class B(Plugin):
        provides, depends_on, dtype = "b", ("a",), PulseSource.dtype

        def compute(self, a):
            return a

    ctx.register(A, B)
    with pytest.raises(WfaPluginError, match="cycle: a -> b -> a"):
        ctx.get_array("run1", "a")


def test_failing_plugin_leaves_no_cache_and_next_call_works(ctx):
    class Fragile(Plugin):
        provides = "fragile"
        depends_on = ("pulses",)
        dtype = PulseSource.dtype
        __version__ = "0.1"
        seen = 0

        def compute(self, pulses):
            type(self).seen += 1
            if type(self).seen == 3:
                raise RuntimeError("detector on fire")
            return pulses

    ctx.register(Fragile)
    with pytest.raises(RuntimeError, match="detector on fire"):
        ctx.get_array("run1", "fragile")
    assert not ctx.is_stored("run1", "fragile")
    assert not list(ctx.storage.root.rglob(".tmp-*")), "a partial result must not stay on disk"
    assert len(ctx.get_array("run1", "fragile")) == 200
    assert ctx.is_stored("run1", "fragile")


def test_introspection(ctx):
    table = ctx.show_config("summed")
    assert {(r["data_type"], r["option"]) for r in table} == {
        ("pulses", "n_rows"), ("pulses", "seed"), ("pulses", "chunk_rows"), ("scaled", "factor")}
    assert "Multiplier of value" in str(table) and "<table>" in table._repr_html_()
    assert [r["field"] for r in ctx.data_info("scaled")] == ["time", "length", "dt", "value"]
    tree = ctx.dependency_tree("summed")
    assert tree.splitlines()[0].startswith("summed  (Summed") and "        pulses" in tree


def test_parallel_context_gives_the_same_result(tmp_path):
    serial = Context(tmp_path / "a", register=[PulseSource, Scaled, NeighbourCount], max_workers=1, config={"chunk_rows": 9})
    parallel = Context(tmp_path / "b", register=[PulseSource, Scaled, NeighbourCount], max_workers=2, config={"chunk_rows": 9})
    for target in ("scaled", "neighbours"):
        np.testing.assert_array_equal(parallel.get_array("run1", target), serial.get_array("run1", target))


KERNEL_SOURCE = """
def shift(values):
    return values + {offset}
"""

USER_PLUGIN = """
from wfa_notebook.plugins import Plugin
from toy_plugins import pulse_dtype
import user_kernel


class Shifted(Plugin):
    provides = "shifted"
    depends_on = ("pulses",)
    dtype = pulse_dtype
    __version__ = "0.1.0"
    code_dependencies = (user_kernel,)

    def compute(self, pulses):
        out = pulses.copy()
        out["value"] = user_kernel.shift(out["value"])
        return out
"""


def test_editing_a_listed_kernel_module_invalidates_the_cache(ctx, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "user_plugin.py").write_text(USER_PLUGIN)
    keys = []
    for offset in (1, 5):  # the plugin's source stays the same; only its kernel changes
        (tmp_path / "user_kernel.py").write_text(KERNEL_SOURCE.format(offset=offset))
        monkeypatch.delitem(sys.modules, "user_kernel", raising=False)
        monkeypatch.delitem(sys.modules, "user_plugin", raising=False)
        module = importlib.import_module("user_plugin")
        ctx.register(module.Shifted)
        keys.append(ctx.key_for("run1", "shifted"))
        assert ctx.get_array("run1", "shifted")["value"][0] == make_pulses(200)["value"][0] + offset
    assert keys[0] != keys[1]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chunk_rows=st.integers(1, 120), halo_ns=st.integers(0, 2_000), seed=st.integers(0, 3))
def test_halo_results_never_depend_on_chunking(tmp_path_factory, chunk_rows, halo_ns, seed):
    class Window(NeighbourCount):
        provides = "window"

    Window.halo_ns = halo_ns
    storage = tmp_path_factory.mktemp("halo")
    config = {"seed": seed, "n_rows": 150}
    whole = Context(storage / "a", register=[PulseSource, Window], max_workers=1, config={**config, "chunk_rows": 150})
    cut = Context(storage / "b", register=[PulseSource, Window], max_workers=1, config={**config, "chunk_rows": chunk_rows})
    np.testing.assert_array_equal(cut.get_array("run1", "window"), whole.get_array("run1", "window"))
