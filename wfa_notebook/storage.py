"""On-disk cache: one folder per (run_id, data_type, lineage hash), chunk files in .npy.

Layout: ``<storage_dir>/<run_id>/<data_type>-<hash>/`` holding ``chunk_000000.npy`` ... and one
``metadata.json`` written once, after the last chunk. A folder is built under a temporary name
and renamed into place in one step, so readers never see a partial cache, and of two processes
writing the same key one wins whole. Every chunk carries a CRC32 checked on load; a damaged cache
is reported, moved aside and recomputed, never returned. Nothing is ever unpickled.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import time
import uuid
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .chunk import Chunk
from .errors import WfaCacheCorruptError, WfaStorageError
from .names import validate_name

__all__ = ["DataKey", "Storage", "CacheWriter", "dtype_to_json", "dtype_from_json"]

METADATA = "metadata.json"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class DataKey:
    """Identifies one cached result: run, data type and the hash of its full lineage."""

    run_id: str
    data_type: str
    lineage_hash: str

    def __str__(self) -> str:
        return f"{self.run_id}-{self.data_type}-{self.lineage_hash}"

    @property
    def folder_name(self) -> str:
        return f"{self.data_type}-{self.lineage_hash}"


def dtype_to_json(dtype: np.dtype) -> Any:
    return np.lib.format.dtype_to_descr(np.dtype(dtype))


def _tuplify(descr: Any) -> Any:
    if isinstance(descr, list):
        return [_tuplify_field(f) for f in descr]
    return descr


def _tuplify_field(field: Any) -> Any:
    if isinstance(field, list):
        out = []
        for i, part in enumerate(field):
            if i == 0 and isinstance(part, list):
                out.append(tuple(part))  # (title, name)
            elif i == 1 and isinstance(part, list):
                out.append(_tuplify(part))  # nested structured type
            elif i == 2 and isinstance(part, list):
                out.append(tuple(part))  # sub-array shape
            else:
                out.append(part)
        return tuple(out)
    return field


def dtype_from_json(descr: Any) -> np.dtype:
    return np.lib.format.descr_to_dtype(_tuplify(descr))


class Storage:
    """The cache below ``root``."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).expanduser().resolve()

    def __repr__(self) -> str:
        return f"Storage({str(self.root)!r})"

    def folder(self, key: DataKey) -> Path:
        validate_name("run_id", key.run_id)
        validate_name("data type", key.data_type)
        return self.root / key.run_id / key.folder_name

    def is_stored(self, key: DataKey) -> bool:
        """True when a complete cache for ``key`` exists (checksums are verified on load)."""
        return (self.folder(key) / METADATA).is_file()

    def metadata(self, key: DataKey) -> dict[str, Any]:
        path = self.folder(key) / METADATA
        try:
            meta = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            msg = f"Cache metadata {path} cannot be read ({exc}); it will be recomputed."
            raise WfaCacheCorruptError(msg) from exc
        if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
            msg = f"Cache metadata {path} has an unknown format; it will be recomputed."
            raise WfaCacheCorruptError(msg)
        return meta

    def iter_chunks(
        self, key: DataKey, time_range: tuple[int, int] | None = None
    ) -> Iterator[Chunk]:
        """Yield the stored chunks of ``key`` (only those overlapping ``time_range``), verified."""
        folder = self.folder(key)
        meta = self.metadata(key)
        dtype = dtype_from_json(meta["dtype"])
        for entry in meta["chunks"]:
            if time_range is not None and (entry["end"] <= time_range[0] or entry["start"] >= time_range[1]):
                continue
            data = _read_verified(folder / entry["file"], entry, dtype)
            yield Chunk(data, entry["start"], entry["end"], key.run_id, key.data_type)

    def verify(self, key: DataKey) -> None:
        """Read every chunk of ``key`` once, raising WfaCacheCorruptError on the first bad one."""
        for _ in self.iter_chunks(key):
            pass

    def discard(self, key: DataKey, reason: str) -> None:
        """Move a damaged cache aside (then delete it) with a warning naming it and why."""
        folder = self.folder(key)
        if not folder.exists():
            return
        warnings.warn(f"Cache {folder} is damaged ({reason}); it is deleted and recomputed.",
                      RuntimeWarning, stacklevel=3)
        trash = folder.with_name(f".trash-{folder.name}-{uuid.uuid4().hex[:8]}")
        try:
            os.rename(folder, trash)
        except OSError:
            return  # another process moved it first
        shutil.rmtree(trash, ignore_errors=True)

    def writer(self, key: DataKey, dtype: np.dtype, lineage: dict[str, Any]) -> CacheWriter:
        return CacheWriter(self, key, dtype, lineage)


def _read_verified(path: Path, entry: dict[str, Any], dtype: np.dtype) -> np.ndarray:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        msg = f"Cache chunk {path} cannot be read ({exc})."
        raise WfaCacheCorruptError(msg) from exc
    if len(raw) != entry["file_bytes"]:
        msg = f"Cache chunk {path} is truncated: {len(raw)} bytes on disk, {entry['file_bytes']} written."
        raise WfaCacheCorruptError(msg)
    if zlib.crc32(raw) != entry["crc32"]:
        msg = f"Cache chunk {path} fails its checksum (the file was modified or damaged)."
        raise WfaCacheCorruptError(msg)
    try:
        data = np.load(io.BytesIO(raw), allow_pickle=False)
    except ValueError as exc:
        msg = f"Cache chunk {path} is not a valid .npy file ({exc})."
        raise WfaCacheCorruptError(msg) from exc
    if data.dtype != dtype or len(data) != entry["n_rows"]:
        msg = f"Cache chunk {path} holds {len(data)} rows of {data.dtype}; metadata promised {entry['n_rows']} of {dtype}."
        raise WfaCacheCorruptError(msg)
    return data


class _ChecksummingWriter:
    """A file wrapper that keeps the CRC32 and size of what goes through it, so a chunk is
    checksummed while it is written instead of being serialised into memory first."""

    def __init__(self, file: Any):
        self.file = file
        self.crc32 = 0
        self.size = 0

    def write(self, data: bytes) -> int:
        self.crc32 = zlib.crc32(data, self.crc32)
        self.size += len(data)
        return self.file.write(data)


class CacheWriter:
    """Writes the chunks of one key into a temporary folder; :meth:`commit` renames it into place.

    If the writer is not committed (an error or an interrupt stopped the stream), :meth:`abort`
    deletes the temporary folder: a partial result is never visible as a cache.
    """

    def __init__(self, storage: Storage, key: DataKey, dtype: np.dtype, lineage: dict[str, Any]):
        self.storage, self.key, self.dtype, self.lineage = storage, key, np.dtype(dtype), lineage
        self.final = storage.folder(key)
        self.final.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.final.with_name(f".tmp-{self.final.name}-{uuid.uuid4().hex[:12]}")
        self.tmp.mkdir()
        self.entries: list[dict[str, Any]] = []
        self.started = time.time()
        self.done = False

    def write(self, chunk: Chunk) -> None:
        if chunk.data.dtype != self.dtype:
            msg = f"Cache {self.key}: chunk dtype {chunk.data.dtype} differs from {self.dtype}."
            raise WfaStorageError(msg)
        name = f"chunk_{len(self.entries):06d}.npy"
        with open(self.tmp / name, "wb") as f:
            out = _ChecksummingWriter(f)
            np.save(out, chunk.data, allow_pickle=False)
        self.entries.append({
            "file": name, "start": chunk.start, "end": chunk.end, "n_rows": len(chunk.data),
            "file_bytes": out.size, "crc32": out.crc32,
        })

    def commit(self) -> bool:
        """Write the metadata and move the folder into place. False if another writer won."""
        meta = {
            "format_version": FORMAT_VERSION,
            "run_id": self.key.run_id,
            "data_type": self.key.data_type,
            "lineage_hash": self.key.lineage_hash,
            "lineage": self.lineage,
            "dtype": dtype_to_json(self.dtype),
            "chunks": self.entries,
            "n_rows": sum(e["n_rows"] for e in self.entries),
            "nbytes": sum(e["n_rows"] for e in self.entries) * self.dtype.itemsize,
            "start": self.entries[0]["start"] if self.entries else None,
            "end": self.entries[-1]["end"] if self.entries else None,
            "write_seconds": time.time() - self.started,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        with open(self.tmp / METADATA, "w") as f:
            json.dump(meta, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        self.done = True
        try:
            os.rename(self.tmp, self.final)
        except OSError:
            # The same key was completed by another process meanwhile: keep theirs, drop ours.
            shutil.rmtree(self.tmp, ignore_errors=True)
            return False
        return True

    def abort(self) -> None:
        if not self.done:
            self.done = True
            shutil.rmtree(self.tmp, ignore_errors=True)
