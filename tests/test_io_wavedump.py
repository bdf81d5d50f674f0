"""WaveDump reader: real DT5742 files, synthetic round trips through every format, bad files."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from wfa_notebook.datasets import synthetic_run
from wfa_notebook.errors import WfaConfigError, WfaFormatError
from wfa_notebook.io import (
    TruncatedFileWarning,
    WaveDumpReader,
    iter_wavedump,
    parse_wavedump_config,
    read_wavedump,
    write_wavedump,
)


def _shared_dt5742() -> Path:
    env = os.environ.get("WFA_SHARED_DATA")
    candidates = [Path(env), Path(env) / "wavedump_dt5742"] if env else []
    candidates.append(Path(__file__).resolve().parents[2] / "shared" / "data" / "wavedump_dt5742")
    for c in candidates:
        if (c / "single_events").is_dir():
            return c
    return candidates[-1]


DT5742 = _shared_dt5742()
needs_real_data = pytest.mark.skipif(not DT5742.is_dir(), reason=f"real DT5742 files not found at {DT5742}")


# --- real DT5742 files --------------------------------------------------------------------------

@needs_real_data
def test_real_single_events_load_as_16_channels_plus_fast_triggers():
    reader = WaveDumpReader(DT5742 / "single_events")
    records = reader.read()
    assert len(records) == 18
    assert sorted(records["channel"]) == list(range(18))  # TR_0_0 -> 16, TR_0_1 -> 17
    assert records.dtype["data"].shape == (1024,) and records.dtype["data"].base == np.float32
    assert np.all(records["length"] == 1024)
    assert np.all(records["event_number"] == 52)
    assert len(np.unique(records["time"])) == 1  # one event: every channel triggered together
    info = reader.info()
    assert info["board_id"] == 31 and info["header_bytes"] == 24 and info["sample_dtype"] == "float32"
    # the float samples are ADC counts of a 12-bit DRS4 board, not garbage
    assert 2000 < np.median(records["data"]) < 4500


@needs_real_data
def test_real_single_events_take_the_sample_period_from_a_given_config():
    config = DT5742 / "test_run_1" / "meta" / "config.txt"
    records = read_wavedump(DT5742 / "single_events", config=config)
    assert records["dt"][0] == pytest.approx(1.0 / 0.75)


@needs_real_data
def test_real_run_keeps_the_whole_event_and_reports_each_truncated_tail():
    folder = DT5742 / "test_run_1" / "binary"
    with pytest.warns(TruncatedFileWarning) as caught:
        reader = WaveDumpReader(folder)
        records = reader.read()
    messages = [str(w.message) for w in caught]
    assert len(messages) == 16
    assert any("wave_0.dat" in m and "byte offset 4120" in m for m in messages)
    assert len(records) == 16 and sorted(records["channel"]) == list(range(16))
    assert np.all(records["event_number"] == 2620)
    # config found in ../meta: DRS4_FREQUENCY 3 -> 750 MS/s, positive pulses
    assert records["dt"][0] == pytest.approx(1.333333, rel=1e-6)
    assert reader.polarity == "positive" and reader.record_length == 1024
    assert reader.info()["config_path"].endswith("config.txt")


# --- synthetic round trips ----------------------------------------------------------------------

def _small_run(**kwargs):
    base = dict(seed=11, n_channels=3, duration_ns=3_000_000, pulse_rate_hz=15_000.0, n_samples=64)
    base.update(kwargs)
    return synthetic_run(**base)


def _by_channel_then_event(records):
    return records[np.lexsort((records["event_number"], records["channel"]))]


FORMATS = [
    pytest.param(dict(binary=True, header=True), id="binary-header"),
    pytest.param(dict(binary=True, header=False), id="binary-noheader"),
    pytest.param(dict(binary=False, header=True), id="ascii-header"),
    pytest.param(dict(binary=False, header=False), id="ascii-noheader"),
]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("sample", ["uint16", "float32"])
def test_synthetic_round_trip(tmp_path, fmt, sample):
    if sample == "float32":
        run = _small_run(sample_dtype=np.float32, dt_ns=1.0 / 0.75, polarity="positive")
    else:
        run = _small_run()
    written = run.records()
    write_wavedump(run, tmp_path, **fmt)
    reader = WaveDumpReader(tmp_path)
    back = reader.read()
    assert len(back) == len(written)
    assert reader.info()["sample_dtype"] == sample
    assert reader.polarity == run.config.polarity
    assert back["dt"][0] == pytest.approx(run.config.dt_ns)  # uint16: default 4 ns; float32: DRS4 code
    # without headers there are no time tags: records come back per channel in file order,
    # numbered 0, 1, ... which sorts them the same way
    a, b = _by_channel_then_event(written), _by_channel_then_event(back)
    assert np.array_equal(a["channel"], b["channel"])
    np.testing.assert_allclose(a["data"].astype(np.float64), b["data"].astype(np.float64), atol=1e-6)
    if fmt["header"]:
        assert np.array_equal(a["event_number"], b["event_number"])
        # times equal within one trigger-time-tag tick
        assert np.all(np.abs(b["time"] - a["time"]) <= reader.ttt_tick_ns)
        assert np.all(np.diff(back["time"]) >= 0)


def test_x742_32_byte_header_is_recognised(tmp_path):
    run = _small_run(sample_dtype=np.float32, dt_ns=0.2, n_samples=1024, n_channels=2, duration_ns=200_000,
                     pulse_rate_hz=50_000.0)
    write_wavedump(run, tmp_path, header_words=8, write_config=False)
    reader = WaveDumpReader(tmp_path)
    assert reader.header_words == 8 and reader.record_length == 1024
    np.testing.assert_array_equal(_by_channel_then_event(reader.read())["data"],
                                  _by_channel_then_event(run.records())["data"])


def test_time_tag_roll_over_is_unwrapped_into_monotonic_ns(tmp_path):
    run = _small_run(n_channels=1, duration_ns=4_000_000, pulse_rate_hz=40_000.0)
    written = run.records()
    # a 16-bit tag of 8 ns rolls over every 524 us: several times in this run
    write_wavedump(run, tmp_path, ttt_bits=16)
    back = read_wavedump(tmp_path, ttt_bits=16)
    assert np.all(np.diff(back["time"]) > 0)
    assert np.all(np.abs(back["time"] - written["time"]) <= 8)


def test_roll_over_flag_bit_is_ignored(tmp_path):
    run = _small_run(n_channels=1)
    write_wavedump(run, tmp_path)
    path = tmp_path / "wave_0.dat"
    raw = np.fromfile(path, dtype="<u4")
    words_per_event = 6 + 64 // 2
    raw[5 + words_per_event :: words_per_event] |= np.uint32(1 << 31)  # flag set from event 1 on
    raw.tofile(path)
    back = read_wavedump(tmp_path)
    assert np.all(np.abs(back["time"] - run.records()["time"]) <= 8)


def test_headerless_files_need_a_record_length(tmp_path):
    write_wavedump(_small_run(), tmp_path, header=False, write_config=False)
    with pytest.raises(WfaFormatError, match="record_length"):
        WaveDumpReader(tmp_path, header=False)
    records = read_wavedump(tmp_path, header=False, record_length=64, dt_ns=4.0)
    assert records.dtype["data"].shape == (64,)


@pytest.mark.parametrize("fmt", FORMATS)
def test_chunked_reading_gives_the_same_records(tmp_path, fmt):
    run = _small_run()
    write_wavedump(run, tmp_path, **fmt)
    whole = read_wavedump(tmp_path)
    for chunk_duration in (None, 50_000, 1e9):
        chunks = list(iter_wavedump(tmp_path, chunk_duration_ns=chunk_duration, events_per_block=3))
        assert np.array_equal(np.concatenate([c[2] for c in chunks]), whole)
        for (_, end, _), (start, _, _) in zip(chunks[:-1], chunks[1:]):
            assert end == start


# --- bad input ----------------------------------------------------------------------------------

def test_truncated_synthetic_file_drops_the_tail_with_a_warning(tmp_path):
    run = _small_run(n_channels=1)
    write_wavedump(run, tmp_path)
    path = tmp_path / "wave_0.dat"
    data = path.read_bytes()
    event_size = 24 + 64 * 2
    path.write_bytes(data[:-50])
    n = len(data) // event_size
    with pytest.warns(TruncatedFileWarning, match=rf"wave_0\.dat.*byte offset {(n - 1) * event_size}"):
        records = read_wavedump(tmp_path)
    assert len(records) == n - 1


def test_truncated_ascii_event_is_dropped_with_a_warning(tmp_path):
    write_wavedump(_small_run(n_channels=1), tmp_path, binary=False)
    path = tmp_path / "wave_0.txt"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-10]) + "\n")
    n_events = sum(line.startswith("Record Length") for line in lines)
    with pytest.warns(TruncatedFileWarning, match=r"wave_0\.txt.*byte offset \d+"):
        records = read_wavedump(tmp_path)
    assert len(records) == n_events - 1


def test_truncated_headerless_ascii_reports_the_offset_of_the_incomplete_event(tmp_path):
    write_wavedump(_small_run(n_channels=1), tmp_path, binary=False, header=False)
    path = tmp_path / "wave_0.txt"
    lines = path.read_text().splitlines()
    n_events = len(lines) // 64
    kept = lines[: (n_events - 1) * 64 + 5]
    path.write_text("\n".join(kept) + "\n")
    offset = sum(len(line) + 1 for line in lines[: (n_events - 1) * 64])
    with pytest.warns(TruncatedFileWarning, match=rf"wave_0\.txt: truncated last event at byte offset {offset}: 5 of 64"):
        records = read_wavedump(tmp_path, events_per_block=2)
    assert len(records) == n_events - 1


def test_inconsistent_event_size_names_file_and_offset(tmp_path):
    write_wavedump(_small_run(n_channels=1), tmp_path)
    path = tmp_path / "wave_0.dat"
    raw = np.fromfile(path, dtype="<u4")
    raw[2 * (6 + 32)] = 999  # EVENT_SIZE of event 2
    raw.tofile(path)
    with pytest.raises(WfaFormatError, match=r"wave_0\.dat: event 2 at byte offset 304: EVENT_SIZE 999"):
        read_wavedump(tmp_path)


def test_foreign_file_is_refused(tmp_path):
    (tmp_path / "wave_0.dat").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    with pytest.raises(WfaFormatError, match=r"wave_0\.dat: byte offset 0"):
        read_wavedump(tmp_path)


def test_wrong_sample_type_is_refused(tmp_path):
    write_wavedump(_small_run(), tmp_path)
    with pytest.raises(WfaFormatError, match="EVENT_SIZE"):
        read_wavedump(tmp_path, sample_dtype="float32")
    # a config promising another record length than the files hold
    with pytest.raises(WfaFormatError, match="RECORD_LENGTH 1024"):
        read_wavedump(tmp_path, config={"RECORD_LENGTH": 1024})


def test_non_numeric_ascii_sample_is_refused(tmp_path):
    write_wavedump(_small_run(n_channels=1), tmp_path, binary=False)
    path = tmp_path / "wave_0.txt"
    text = path.read_text().splitlines()
    text[20] = "garbage"
    path.write_text("\n".join(text) + "\n")
    with pytest.raises(WfaFormatError, match=r"wave_0\.txt"):
        read_wavedump(tmp_path)


def test_missing_folder_and_empty_folder(tmp_path):
    with pytest.raises(WfaConfigError, match="does not exist"):
        WaveDumpReader(tmp_path / "nope")
    with pytest.raises(WfaFormatError, match="No WaveDump files"):
        WaveDumpReader(tmp_path)


# --- config file --------------------------------------------------------------------------------

def test_config_parsing(tmp_path):
    path = tmp_path / "config.txt"
    path.write_text(
        "[COMMON]\nRECORD_LENGTH  520 # comment\nPULSE_POLARITY NEGATIVE\nDRS4_FREQUENCY 1\n"
        "@OFF\nRECORD_LENGTH 4\n@ON\nOUTPUT_FILE_FORMAT ASCII\nOUTPUT_FILE_HEADER NO\n[0]\nDC_OFFSET 30\n"
    )
    config = parse_wavedump_config(path)
    assert config.record_length == 520 and config.polarity == "negative"
    assert config.dt_ns == pytest.approx(0.4) and config.binary is False and config.header is False
    assert config.dc_offsets["0"] == "30"
    path.write_text("[COMMON]\nDRS4_FREQUENCY 9\n")
    with pytest.raises(WfaFormatError, match="line 2: DRS4_FREQUENCY"):
        parse_wavedump_config(path)
