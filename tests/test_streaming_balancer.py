"""StreamingPlugin with its own load balancer (the seed's streaming integration)."""
from __future__ import annotations

import numpy as np

from wfa_notebook.context import Context
from wfa_notebook.plugins import StreamingPlugin
from toy_plugins import PulseSource, pulse_dtype


class Balanced(StreamingPlugin):
    provides = "balanced"
    depends_on = ("pulses",)
    dtype = pulse_dtype
    __version__ = "0.1.0"
    use_load_balancer = True
    load_balancer_config = {"min_workers": 1, "max_workers": 2, "cpu_threshold": 0.75}

    def compute_chunk(self, chunk, context, run_id, **kwargs):
        out = chunk.data.copy()
        out["value"] = np.sqrt(np.abs(out["value"]))
        return out


def test_balancing_is_off_by_default():
    class Plain(StreamingPlugin):
        def compute_chunk(self, chunk, context, run_id, **kwargs):
            return chunk

    assert Plain.use_load_balancer is False
    assert Plain().get_load_balancer_stats() is None


def test_plugin_balancer_counts_every_chunk_and_keeps_order(tmp_path):
    plugin = Balanced()
    before = plugin.get_load_balancer_stats()["total_tasks"]
    ctx = Context(tmp_path, register=[PulseSource, Balanced], config={"n_rows": 400, "chunk_rows": 20})
    out = ctx.get_array("run1", "balanced")
    pulses = ctx.get_array("run1", "pulses")
    np.testing.assert_array_equal(out["time"], pulses["time"])
    np.testing.assert_allclose(out["value"], np.sqrt(np.abs(pulses["value"])))
    stats = plugin.get_load_balancer_stats()
    assert stats["total_tasks"] - before == 20, "one task per chunk, not per call"
    assert stats["failed_tasks"] == 0
    assert 1 <= stats["current_workers"] <= 2
    assert stats["max_workers"] == 2


def test_seed_usage_outside_a_context():
    """The seed's example: a plugin with a balancer config, chunks processed in parallel."""

    class MyStreamingPlugin(StreamingPlugin):
        use_load_balancer = True
        load_balancer_config = {"min_workers": 2, "max_workers": 8, "cpu_threshold": 0.75}

        def compute_chunk(self, chunk, context, run_id, **kwargs):
            return chunk * 2

    plugin = MyStreamingPlugin()
    assert plugin.get_load_balancer_stats()["total_tasks"] == 0
    results = list(plugin._compute_parallel(range(20), context=None, run_id="run1"))
    assert results == [2 * i for i in range(20)]
    assert plugin.get_load_balancer_stats()["total_tasks"] == 20
