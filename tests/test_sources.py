"""Source plugins through a Context, and the gap-only chunking they rely on."""
from __future__ import annotations

import os
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wfa_notebook import dtypes
from wfa_notebook.context import Context
from wfa_notebook.datasets import synthetic_run
from wfa_notebook.io import TruncatedFileWarning, merge_sorted_streams, rechunk_in_gaps, write_compass, write_wavedump
from wfa_notebook.plugins.sources import CompassSource, SyntheticSource, WaveDumpSource

SMALL = {"synthetic_duration_ns": 4_000_000, "synthetic_n_channels": 4, "synthetic_pulse_rate_hz": 10_000.0}


def _context(tmp_path, plugin, config):
    return Context(storage_dir=tmp_path / "cache", register=[plugin], config=config, max_workers=1)


def _chunks(ctx, run_id="run0"):
    return list(ctx.get_iter(run_id, "raw_records", progress=False))


def _assert_continuous_gap_cut(chunks):
    for a, b in zip(chunks[:-1], chunks[1:]):
        assert a.end == b.start
    for c in chunks:
        if len(c.data):
            assert c.data["time"].min() >= c.start and dtypes.endtime(c.data).max() <= c.end


def test_synthetic_source_delivers_the_synthetic_run(tmp_path):
    ctx = _context(tmp_path, SyntheticSource, {**SMALL, "chunk_duration_ns": 300_000})
    chunks = _chunks(ctx)
    _assert_continuous_gap_cut(chunks)
    records = np.concatenate([c.data for c in chunks])
    expected = synthetic_run(seed=zlib.crc32(b"run0"), n_channels=4, duration_ns=4_000_000, pulse_rate_hz=10_000.0)
    assert np.array_equal(records, expected.records())
    assert chunks[0].start == 0 and chunks[-1].end == 4_000_000


def test_synthetic_chunk_length_does_not_change_the_cache_key_or_content(tmp_path):
    a = _context(tmp_path, SyntheticSource, {**SMALL, "chunk_duration_ns": 200_000})
    b = a.new_context(config={"chunk_duration_ns": 1_000_000})
    assert a.key_for("run0", "raw_records") == b.key_for("run0", "raw_records")
    c = _context(tmp_path / "other", SyntheticSource, {**SMALL, "chunk_duration_ns": 1_000_000})
    assert np.array_equal(a.get_array("run0", "raw_records", progress=False),
                          c.get_array("run0", "raw_records", progress=False))


def test_synthetic_runs_differ_by_run_id_and_seed_is_respected(tmp_path):
    ctx = _context(tmp_path, SyntheticSource, SMALL)
    one, two = ctx.get_array("one", "raw_records", progress=False), ctx.get_array("two", "raw_records", progress=False)
    assert len(one) != len(two) or not np.array_equal(one["data"], two["data"])
    seeded = _context(tmp_path / "s", SyntheticSource, {**SMALL, "synthetic_seed": 7})
    assert np.array_equal(seeded.get_array("one", "raw_records", progress=False),
                          seeded.get_array("two", "raw_records", progress=False))


def test_synthetic_source_options_carry_help(tmp_path):
    for name, option in SyntheticSource.options().items():
        assert option.help, name
    ctx = _context(tmp_path, SyntheticSource, {**SMALL, "polarity": "positive",
                                               "synthetic_sample_dtype": "float32"})
    records = ctx.get_array("run0", "raw_records", progress=False)
    assert records.dtype["data"].base == np.float32


@pytest.mark.parametrize("binary", [True, False])
def test_wavedump_source_reads_synthetic_files(tmp_path, binary):
    run = synthetic_run(seed=1, n_channels=3, duration_ns=3_000_000, pulse_rate_hz=10_000.0, n_samples=50)
    write_wavedump(run, tmp_path / "run0", binary=binary)
    ctx = _context(tmp_path, WaveDumpSource, {"wavedump_path": str(tmp_path / "{run_id}"), "chunk_duration_ns": 200_000})
    chunks = _chunks(ctx)
    _assert_continuous_gap_cut(chunks)
    records = np.concatenate([c.data for c in chunks])
    written = run.records()
    assert len(records) == len(written)
    assert np.array_equal(records["data"].astype(int), written["data"].astype(int))
    assert np.all(np.abs(records["time"] - written["time"]) <= 8)


def test_wavedump_source_fingerprint_follows_the_files(tmp_path):
    run = synthetic_run(seed=1, n_channels=2, duration_ns=1_000_000, pulse_rate_hz=10_000.0, n_samples=50)
    write_wavedump(run, tmp_path / "data")

    class CachedWaveDumpSource(WaveDumpSource):
        save = True  # file sources are not cached by default; this one is, to watch its key

    ctx = _context(tmp_path, CachedWaveDumpSource, {"wavedump_path": str(tmp_path / "data")})
    before = ctx.key_for("run0", "raw_records")
    ctx.make("run0", "raw_records", progress=False)
    assert ctx.is_stored("run0", "raw_records")
    path = tmp_path / "data" / "wave_0.dat"
    path.write_bytes(path.read_bytes()[: 2 * (24 + 100)])
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    assert ctx.key_for("run0", "raw_records") != before
    assert not ctx.is_stored("run0", "raw_records")


def _real_single_events() -> Path:
    env = os.environ.get("WFA_SHARED_DATA")
    base = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"
    for candidate in (base / "wavedump_dt5742", base):
        if (candidate / "single_events").is_dir():
            return candidate
    return base / "wavedump_dt5742"


@pytest.mark.skipif(not (_real_single_events() / "test_run_1").is_dir(), reason="real DT5742 files absent")
def test_real_dt5742_run_through_a_context(tmp_path):
    ctx = _context(tmp_path, WaveDumpSource, {"wavedump_path": str(_real_single_events() / "test_run_1" / "binary")})
    with pytest.warns(TruncatedFileWarning):
        records = ctx.get_array("run0", "raw_records", progress=False)
    assert len(records) == 16
    assert records["dt"][0] == pytest.approx(1.0 / 0.75)
    assert WaveDumpSource.options()["wavedump_path"].help


def test_compass_source_reads_synthetic_files(tmp_path):
    run = synthetic_run(seed=2, n_channels=3, duration_ns=2_000_000, pulse_rate_hz=10_000.0, n_samples=30, dt_ns=2.0)
    write_compass(run, tmp_path / "csv", per_channel=True)
    ctx = _context(tmp_path, CompassSource, {"compass_path": str(tmp_path / "csv"), "chunk_duration_ns": 150_000})
    chunks = _chunks(ctx)
    _assert_continuous_gap_cut(chunks)
    records = np.concatenate([c.data for c in chunks])
    written = run.records()
    for name in ("time", "channel", "data"):
        assert np.array_equal(records[name], written[name])
    before = ctx.key_for("run0", "raw_records")
    csv = sorted((tmp_path / "csv").iterdir())[0]
    csv.write_text(csv.read_text() + csv.read_text().splitlines()[-1] + "\n")  # one more row
    os.utime(csv, ns=(csv.stat().st_atime_ns, csv.stat().st_mtime_ns + 10**9))
    assert ctx.key_for("run0", "raw_records") != before, "a changed input file gives a new lineage"


# --- gap-only chunking --------------------------------------------------------------------------

def _random_stream(rng, n, channel, dtype):
    records = np.zeros(n, dtype)
    records["time"] = np.sort(rng.integers(0, 100_000, n))
    records["length"] = rng.integers(1, 20, n)
    records["dt"] = 10.0
    records["channel"] = channel
    return records


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_streams=st.integers(1, 4),
    block=st.integers(1, 30),
    durations=st.lists(st.one_of(st.none(), st.integers(1, 50_000)), min_size=2, max_size=2),
)
def test_merged_chunks_are_continuous_sorted_and_independent_of_chunk_length(seed, n_streams, block, durations):
    rng = np.random.default_rng(seed)
    dtype = dtypes.raw_record_dtype(2)
    streams = [_random_stream(rng, int(rng.integers(0, 60)), ch, dtype) for ch in range(n_streams)]
    contents = []
    for duration in durations:
        blocks = [iter([s[i : i + block] for i in range(0, len(s), block)]) for s in streams]
        chunks = list(rechunk_in_gaps(merge_sorted_streams(blocks, dtype), duration, start_ns=0))
        for (_, end, _), (start, _, _) in zip(chunks[:-1], chunks[1:]):
            assert end == start
        for start, end, records in chunks:
            assert start <= end
            assert np.all(np.diff(records["time"]) >= 0)
            if len(records):
                assert records["time"].min() >= start and dtypes.endtime(records).max() <= end
        merged = np.concatenate([c[2] for c in chunks]) if chunks else np.zeros(0, dtype)
        contents.append(merged)
    everything = np.concatenate(streams)
    expected = everything[np.lexsort((everything["channel"], everything["time"]))]
    for merged in contents:
        assert np.array_equal(merged, expected)
