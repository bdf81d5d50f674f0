"""CoMPASS CSV reader: synthetic round trips, picosecond conversion, bad files."""
from __future__ import annotations

import numpy as np
import pytest

from wfa_notebook.datasets import synthetic_run
from wfa_notebook.errors import WfaConfigError, WfaFormatError
from wfa_notebook.io import CompassReader, TruncatedFileWarning, iter_compass, read_compass, write_compass

HEADER = "BOARD;CHANNEL;TIMETAG;ENERGY;ENERGYSHORT;FLAGS;PROBE_CODE;SAMPLES\n"


def _run(**kwargs):
    base = dict(seed=3, n_channels=3, duration_ns=2_000_000, pulse_rate_hz=20_000.0, n_samples=40, dt_ns=2.0)
    base.update(kwargs)
    return synthetic_run(**base)


@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("probe_code", [True, False])
def test_round_trip_is_exact(tmp_path, per_channel, probe_code):
    run = _run()
    write_compass(run, tmp_path, per_channel=per_channel, probe_code=probe_code)
    reader = CompassReader(tmp_path)
    back = reader.read()
    written = run.records()
    assert reader.dt_ns == 2.0 and "DT5730" in reader.dt_source.replace("model ", "model DT")
    assert np.array_equal(back["time"], written["time"])  # ns -> ps -> ns is exact
    assert np.array_equal(back["channel"], written["channel"])
    assert np.array_equal(back["data"], written["data"])
    assert np.all(back["dt"] == 2.0) and np.all(back["length"] == 40)


def test_timetag_picoseconds_become_ns_rounded(tmp_path):
    path = tmp_path / "list.csv"
    path.write_text(HEADER + "0;1;1499;10;5;0x4000;1;100;101\n0;1;1500;10;5;0x4000;1;100;102\n"
                    "1;2;123456789012345;10;5;0x4000;1;7;8\n")
    records = read_compass(path, dt_ns=4.0)
    assert records["time"].tolist() == [1, 2, 123456789012]
    assert records["channel"].tolist() == [1, 1, 18]  # board 1, channel 2 -> 16 + 2
    table = CompassReader(path, dt_ns=4.0).read_table()
    assert table["flags"].tolist() == [0x4000] * 3 and table["energy"].tolist() == [10.0] * 3


def test_sample_period_must_be_known(tmp_path):
    path = tmp_path / "list.csv"
    path.write_text(HEADER + "0;0;1000;1;1;0x0;1;1;2\n")
    with pytest.raises(WfaConfigError, match="dt_ns"):
        CompassReader(path)


def test_unsorted_list_reads_whole_but_not_as_a_stream(tmp_path):
    path = tmp_path / "list.csv"
    path.write_text(HEADER + "0;0;3000000;1;1;0x0;1;3;3\n0;0;1000000;1;1;0x0;1;1;1\n0;0;2000000;1;1;0x0;1;2;2\n")
    assert read_compass(path, dt_ns=2.0)["time"].tolist() == [1000, 2000, 3000]
    # within one block rows are sorted; across blocks they must not go back in time
    with pytest.raises(WfaFormatError, match="back in time"):
        list(iter_compass(path, dt_ns=2.0, rows_per_block=1))


def test_continuation_file_without_header(tmp_path):
    (tmp_path / "DataR_CH0@DT5725_r.CSV").write_text(HEADER + "0;0;1000000;1;1;0x0;1;5;6\n")
    (tmp_path / "DataR_CH0@DT5725_r_1.CSV").write_text("0;0;2000000;1;1;0x0;1;7;8\n")
    records = read_compass(tmp_path)
    assert records["time"].tolist() == [1000, 2000] and records["dt"][0] == 4.0


def test_truncated_last_row_is_dropped_with_a_warning(tmp_path):
    path = tmp_path / "list.csv"
    text = HEADER + "0;0;1000;1;1;0x0;1;5;6;7\n0;0;2000;1;1;0x0;1;5;6"
    path.write_text(text)
    with pytest.warns(TruncatedFileWarning, match=rf"list\.csv: truncated last row at byte offset {len(HEADER) + 25}"):
        records = read_compass(path, dt_ns=2.0)
    assert len(records) == 1


def test_corrupt_rows_are_refused(tmp_path):
    path = tmp_path / "list.csv"
    path.write_text(HEADER + "0;0;1000;1;1;0x0;1;5;6;7\n0;0;2000;1;1;0x0;1;5\n0;0;3000;1;1;0x0;1;5;6;7\n")
    with pytest.raises(WfaFormatError, match=r"list\.csv: row at byte offset \d+ has 8 fields, expected 10"):
        read_compass(path, dt_ns=2.0)
    path.write_text(HEADER + "0;0;1000;1;1;0x0;1;5;x;7\n")
    with pytest.raises(WfaFormatError, match="not a number"):
        read_compass(path, dt_ns=2.0)


def test_foreign_files_are_refused(tmp_path):
    path = tmp_path / "list.csv"
    path.write_text("time,channel,value\n1,2,3\n")
    with pytest.raises(WfaFormatError, match="byte offset 0"):
        read_compass(path, dt_ns=2.0)
    path.write_text("BOARD;CHANNEL;TIMETAG;ENERGY;ENERGYSHORT;FLAGS\n0;0;1;2;3;0x0\n")
    with pytest.raises(WfaFormatError, match="SAMPLES"):
        read_compass(path, dt_ns=2.0)


def test_chunks_are_continuous_and_complete(tmp_path):
    run = _run()
    write_compass(run, tmp_path, per_channel=True)
    chunks = list(iter_compass(tmp_path, chunk_duration_ns=100_000, rows_per_block=13))
    streamed, written = np.concatenate([c[2] for c in chunks]), run.records()
    # CoMPASS has no event counter: event_number is the row index in its file
    for name in ("time", "channel", "data"):
        assert np.array_equal(streamed[name], written[name])
    for (_, end, _), (start, _, _) in zip(chunks[:-1], chunks[1:]):
        assert end == start
