"""default_context on every kind of source, and the truth matching the demo reports."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from wfa_notebook import default_context, synthetic_run
from wfa_notebook.datasets import pulses_found
from wfa_notebook.errors import WfaConfigError
from wfa_notebook.io import TruncatedFileWarning, write_compass, write_wavedump

SMALL = {"synthetic_n_channels": 4, "synthetic_duration_ns": 20_000_000, "synthetic_seed": 7}


def shared_data() -> Path:
    env = os.environ.get("WFA_SHARED_DATA")
    return (Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data") / "wavedump_dt5742"


@pytest.mark.parametrize("polarity", ["negative", "positive"])
def test_one_polarity_key_sets_generation_and_processing(tmp_path, polarity):
    ctx = default_context(tmp_path, config={**SMALL, "polarity": polarity}, max_workers=1)
    hits = ctx.get_array("run", "hits")
    truth = synthetic_run(seed=7, n_channels=4, duration_ns=20_000_000, polarity=polarity).truth()
    assert pulses_found(truth, hits).mean() >= 0.99
    assert (hits["height_adc"] > 0).all()


def test_unknown_sources_are_explained(tmp_path):
    with pytest.raises(WfaConfigError, match="neither 'synthetic' nor an existing"):
        default_context(tmp_path, source=tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(WfaConfigError, match="no WaveDump files"):
        default_context(tmp_path, source=tmp_path / "empty")


def test_wavedump_and_compass_files_give_the_synthetic_hits(tmp_path):
    run = synthetic_run(seed=3, n_channels=3, duration_ns=5_000_000)
    write_wavedump(run, tmp_path / "wavedump")
    write_compass(run, tmp_path / "compass")
    reference = default_context(tmp_path / "c0", config={"synthetic_seed": 3, "synthetic_n_channels": 3,
                                                         "synthetic_duration_ns": 5_000_000}, max_workers=1)
    expected = reference.get_array("run", "hits")
    for source in ("wavedump", "compass"):
        ctx = default_context(tmp_path / f"c_{source}", source=tmp_path / source, max_workers=1)
        hits = ctx.get_array("run", "hits")
        assert len(hits) == len(expected), source
        np.testing.assert_array_equal(hits["channel"], expected["channel"])
        np.testing.assert_allclose(hits["area_adc_ns"], expected["area_adc_ns"], rtol=1e-5)


@pytest.mark.skipif(not (shared_data() / "test_run_1").is_dir(), reason="real DT5742 files absent")
def test_real_dt5742_run_goes_through_the_whole_chain(tmp_path):
    ctx = default_context(tmp_path, source=shared_data() / "test_run_1" / "binary", max_workers=1)
    assert "polarity" not in ctx.config
    # the records plugin asks the source: PULSE_POLARITY of the WaveDump config
    assert ctx.configured_plugin("run1", "records").resolved_polarity() == "positive"
    with pytest.warns(TruncatedFileWarning, match=r"wave_\d+\.dat.*4120"):
        raw = ctx.get_array("run1", "raw_records")
    assert len(raw) == 16 and sorted(raw["channel"]) == list(range(16))
    np.testing.assert_allclose(raw["dt"], 1e9 / 750e6)  # DRS4_FREQUENCY 3 = 750 MS/s
    with pytest.warns(TruncatedFileWarning):
        events = ctx.get_array("run1", "event_basics")
    assert events.dtype.names[0] == "time"


@pytest.mark.parametrize("polarity", ["negative", "positive"])
def test_records_follow_the_wavedump_config_polarity_in_any_context(tmp_path, polarity):
    """Not only default_context: a plain Context with the WaveDump source gets it right too."""
    from wfa_notebook import Context
    from wfa_notebook.plugins.sources import WaveDumpSource
    from wfa_notebook.plugins.waveform import Hits, Records

    run = synthetic_run(seed=4, n_channels=2, duration_ns=5_000_000, polarity=polarity)
    write_wavedump(run, tmp_path / "data")  # writes config.txt with PULSE_POLARITY
    ctx = Context(tmp_path / "cache", register=[WaveDumpSource, Records, Hits], max_workers=1,
                  config={"wavedump_path": str(tmp_path / "data")})
    hits = ctx.get_array("run", "hits")
    assert pulses_found(run.truth(), hits).mean() >= 0.99
