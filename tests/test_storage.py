from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from wfa_notebook.chunk import Chunk
from wfa_notebook.context import Context
from wfa_notebook.errors import WfaCacheCorruptError
from wfa_notebook.storage import DataKey, Storage, dtype_from_json, dtype_to_json
from wfa_notebook.dtypes import hit_dtype, raw_record_dtype
from toy_plugins import PulseSource, Scaled, make_pulses


@pytest.fixture
def ctx(tmp_path):
    PulseSource.calls = 0
    return Context(tmp_path / "cache", register=[PulseSource, Scaled], max_workers=1)


def chunk_files(ctx, target):
    return sorted(ctx.storage_path("run1", target).glob("chunk_*.npy"))


def test_cache_layout_is_npy_plus_one_metadata_file(ctx):
    ctx.get_array("run1", "scaled")
    folder = ctx.storage_path("run1", "scaled")
    key = ctx.key_for("run1", "scaled")
    assert folder == ctx.storage.root / "run1" / f"scaled-{key.lineage_hash}"
    assert sorted(p.name for p in folder.iterdir()) == [
        "chunk_000000.npy", "chunk_000001.npy", "chunk_000002.npy", "chunk_000003.npy", "metadata.json"]
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["n_rows"] == 200 and meta["lineage"] == ctx.lineage("run1", "scaled")
    for path in chunk_files(ctx, "scaled"):  # plain .npy, loadable without pickle
        assert np.load(path, allow_pickle=False).dtype.names == ("time", "length", "dt", "value")


@pytest.mark.parametrize("damage", ["truncate", "flip_byte", "delete", "bad_metadata"])
def test_damaged_cache_is_reported_and_recomputed_never_returned(ctx, damage):
    good = ctx.get_array("run1", "scaled")
    target = chunk_files(ctx, "scaled")[2]
    if damage == "truncate":
        target.write_bytes(target.read_bytes()[:-17])
    elif damage == "flip_byte":
        raw = bytearray(target.read_bytes())
        raw[-5] ^= 0x01  # one bit of one value: only a checksum notices
        target.write_bytes(bytes(raw))
    elif damage == "delete":
        target.unlink()
    else:
        (target.parent / "metadata.json").write_text("{not json")
    with pytest.warns(RuntimeWarning, match=r"Cache .*scaled-.* is damaged"):
        again = ctx.get_array("run1", "scaled")
    np.testing.assert_array_equal(again, good)
    assert ctx.is_stored("run1", "scaled")
    assert ctx.last_run.computed == ["scaled"], "the damaged data type is recomputed from its cached input"
    np.testing.assert_array_equal(ctx.get_array("run1", "scaled"), good)  # repaired cache is valid


@pytest.mark.parametrize("first_row", [0, 60])
def test_damage_found_midway_through_get_iter_does_not_repeat_chunks(ctx, first_row):
    good = ctx.get_array("run1", "scaled")
    time_range = (int(good["time"][first_row]), int(good["time"][-1]) + 1)
    target = chunk_files(ctx, "scaled")[2]
    target.write_bytes(target.read_bytes()[:-3])
    with pytest.warns(RuntimeWarning, match="damaged"):
        chunks = list(ctx.get_iter("run1", "scaled", time_range=time_range))
    assert all(a.end == b.start for a, b in zip(chunks[:-1], chunks[1:]))
    np.testing.assert_array_equal(np.concatenate([c.data for c in chunks]), good[first_row:])


def test_second_writer_of_the_same_key_loses_whole(tmp_path):
    storage = Storage(tmp_path)
    key = DataKey("run1", "pulses", "abc")
    rows = make_pulses(10)
    end = int(rows["time"][-1]) + 10
    first = storage.writer(key, rows.dtype, {"who": 1})
    second = storage.writer(key, rows.dtype, {"who": 2})
    first.write(Chunk(rows, 0, end, "run1", "pulses"))
    second.write(Chunk(rows[:5], 0, int(rows["time"][5]), "run1", "pulses"))
    assert first.commit() is True
    assert second.commit() is False
    second.abort()
    assert storage.metadata(key)["lineage"] == {"who": 1}
    assert [len(c) for c in storage.iter_chunks(key)] == [10]
    assert sorted(p.name for p in (tmp_path / "run1").iterdir()) == ["pulses-abc"]


WRITER_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from wfa_notebook.context import Context
from toy_plugins import PulseSource, Scaled
ctx = Context({cache!r}, register=[PulseSource, Scaled], max_workers=1, config={{"n_rows": 200000, "chunk_rows": 2000}})
print(len(ctx.get_array("run1", "scaled")))
"""


def test_two_processes_computing_the_same_key_leave_one_valid_cache(tmp_path):
    cache = tmp_path / "cache"
    script = WRITER_SCRIPT.format(tests=str(Path(__file__).parent), cache=str(cache))
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert outputs == ["200000", "200000"]
    ctx = Context(cache, register=[PulseSource, Scaled], max_workers=1, config={"n_rows": 200000, "chunk_rows": 2000})
    assert ctx.is_stored("run1", "scaled")
    ctx.storage.verify(ctx.key_for("run1", "scaled"))
    run_dir = cache / "run1"
    assert not [p for p in run_dir.iterdir() if p.name.startswith(".")], "no temporary folders left"
    assert len(list(run_dir.glob("scaled-*"))) == 1


@pytest.mark.parametrize("dtype", [hit_dtype, raw_record_dtype(16, np.float32), np.dtype([("time", "<i8"), ("xy", "<f4", (2, 3))])])
def test_dtypes_roundtrip_through_metadata_json(dtype):
    assert dtype_from_json(json.loads(json.dumps(dtype_to_json(dtype)))) == dtype


def test_metadata_of_unknown_format_is_not_trusted(tmp_path):
    storage = Storage(tmp_path)
    key = DataKey("run1", "pulses", "abc")
    folder = storage.folder(key)
    folder.mkdir(parents=True)
    (folder / "metadata.json").write_text(json.dumps({"format_version": 99}))
    with pytest.raises(WfaCacheCorruptError, match="unknown format"):
        list(storage.iter_chunks(key))
