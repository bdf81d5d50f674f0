from __future__ import annotations

import numpy as np
import pytest

from wfa_notebook.context import Context
from wfa_notebook.errors import WfaConfigError, WfaPluginError
from wfa_notebook.plugins import Option, Plugin, SourcePlugin, StreamingPlugin
from toy_plugins import PulseSource, Scaled, pulse_dtype


def plugin(name="Bad", base=Plugin, **attrs):
    ns = {"provides": "out", "depends_on": ("pulses",), "dtype": pulse_dtype, "__version__": "0.1"}
    ns.update(attrs)
    if "compute" not in ns and base is Plugin:
        ns["compute"] = lambda self, pulses: pulses
    return type(name, (base,), ns)


BAD_DECLARATIONS = [
    ("provides missing", dict(provides=""), "'provides'"),
    ("provides with slash", dict(provides="a/b"), "'provides'"),
    ("depends_on a string", dict(depends_on="pulses"), r"write \('pulses',\)"),
    ("depends_on twice", dict(depends_on=("pulses", "pulses")), "each data type once"),
    ("depends on itself", dict(depends_on=("out",), compute=lambda self, out: out), "its own data type"),
    ("no dtype", dict(dtype=None), "infer_dtype"),
    ("dtype without time", dict(dtype=np.dtype([("t", np.int64)])), "'time' field"),
    ("time not int64", dict(dtype=np.dtype([("time", np.float64)])), "int64"),
    ("version not str", {"__version__": 1}, "__version__"),
    ("compute args wrong", dict(compute=lambda self, records: records), r"Expected \['pulses'\]"),
    ("no compute", dict(compute=Plugin.compute), "compute"),
    ("empty depends_on", dict(depends_on=()), "SourcePlugin"),
]


@pytest.mark.parametrize("case,attrs,message", BAD_DECLARATIONS, ids=[c[0] for c in BAD_DECLARATIONS])
def test_bad_declarations_are_refused_at_register_naming_the_class(case, attrs, message):
    bad = plugin("MyBadPlugin", **attrs)
    with pytest.raises(WfaPluginError, match=message) as info:
        Context(storage_dir="unused").register(bad)
    assert "MyBadPlugin" in str(info.value)


def test_source_and_streaming_declarations_are_checked():
    no_iter = type("NoIter", (SourcePlugin,), {"provides": "x", "dtype": pulse_dtype})
    with pytest.raises(WfaPluginError, match="NoIter.*iter_chunks"):
        Context(storage_dir="unused").register(no_iter)
    no_chunk = type("NoChunk", (StreamingPlugin,), {"provides": "x", "depends_on": ("pulses",), "dtype": pulse_dtype})
    with pytest.raises(WfaPluginError, match="NoChunk.*compute_chunk"):
        Context(storage_dir="unused").register(no_chunk)
    with pytest.raises(WfaPluginError, match="Plugin subclasses"):
        Context(storage_dir="unused").register("hits")


def test_options_are_validated_with_plugin_and_option_named(tmp_path):
    ctx = Context(tmp_path, register=[PulseSource, Scaled])
    with pytest.raises(WfaConfigError, match=r"Scaled option 'factor': expected float, got str"):
        ctx.get_array("run1", "scaled", config={"factor": "two"})
    with pytest.raises(WfaConfigError, match="Did you mean 'factor'"):
        ctx.set_config({"factr": 3})
    with pytest.raises(WfaConfigError, match="plugin Scaled"):
        ctx.set_config({"scaled": {"n_rows": 3}})
    assert ctx.config == {}  # a refused update leaves the config as it was


def test_required_option_must_be_configured(tmp_path):
    class NeedsPath(SourcePlugin):
        provides = "pulses"
        dtype = pulse_dtype
        path = Option(type=str, help="Input file")

        def iter_chunks(self):
            yield from ()

    ctx = Context(tmp_path, register=[NeedsPath])
    with pytest.raises(WfaConfigError, match="NeedsPath.path has no default"):
        ctx.get_array("run1", "pulses")


def test_plugin_delivering_another_dtype_is_named(tmp_path):
    class Liar(Plugin):
        provides = "liar"
        depends_on = ("pulses",)
        dtype = pulse_dtype
        __version__ = "0.1"

        def compute(self, pulses):
            return pulses[["time", "value"]]

    ctx = Context(tmp_path, register=[PulseSource, Liar], max_workers=1)
    with pytest.raises(WfaPluginError, match="Liar delivered the wrong dtype.*Promised.*Delivered"):
        ctx.get_array("run1", "liar")


def test_plugin_rows_outside_chunk_are_refused(tmp_path):
    class Shifter(Plugin):
        provides = "shifted"
        depends_on = ("pulses",)
        dtype = pulse_dtype
        __version__ = "0.1"

        def compute(self, pulses):
            out = pulses.copy()
            out["time"] += 10**9
            return out

    ctx = Context(tmp_path, register=[PulseSource, Shifter], max_workers=1)
    with pytest.raises(WfaPluginError, match="Shifter.*Promised"):
        ctx.get_array("run1", "shifted")
    assert not ctx.is_stored("run1", "shifted")
