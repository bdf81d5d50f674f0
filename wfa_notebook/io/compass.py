"""Reader of CAEN CoMPASS CSV lists with waveforms.

CoMPASS saves ``;``-separated rows under a header line such as
``BOARD;CHANNEL;TIMETAG;ENERGY;ENERGYSHORT;FLAGS;PROBE_CODE;SAMPLES`` (older versions have no
PROBE_CODE column); the waveform samples follow as further ``;``-separated values.  TIMETAG is
in picoseconds: it is converted to int64 ns here, once, by rounding to the nearest ns.  Files
are either one per channel (``DataR_CH0@DT5730_...CSV``) or one for all channels; when CoMPASS
splits a long run, the continuation files (``..._1.CSV``) have no header line.

Conventions of this reader
--------------------------
* Global channel: ``BOARD x channels_per_board + CHANNEL`` (just CHANNEL with one board).
* Record time: TIMETAG, the trigger time; the first sample is placed at that time.
* Sample period: from ``dt_ns``, else from the board model in the file name (``@DT5730`` ->
  2 ns); otherwise the reader asks for ``dt_ns``: CoMPASS CSV files do not record it.
* ENERGY, ENERGYSHORT and FLAGS are not part of raw records; :meth:`CompassReader.read_table`
  returns them.
"""
from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from wfa_notebook import dtypes
from wfa_notebook.errors import WfaConfigError, WfaFormatError
from wfa_notebook.io.chunking import DEFAULT_CHUNK_MIN_GAP_NS, merge_sorted_streams, rechunk_in_gaps
from wfa_notebook.io.common import TruncatedFileWarning, files_fingerprint, mapped_bytes

__all__ = ["COMPASS_COLUMNS", "BOARD_SAMPLE_PERIOD_NS", "CompassReader", "read_compass", "iter_compass"]

#: Header of a CoMPASS 2 list with waveforms (older versions lack PROBE_CODE).
COMPASS_COLUMNS = ("BOARD", "CHANNEL", "TIMETAG", "ENERGY", "ENERGYSHORT", "FLAGS", "PROBE_CODE", "SAMPLES")

#: Sample period (ns) by board model, as found after '@' in CoMPASS file names.
BOARD_SAMPLE_PERIOD_NS = {
    "5730": 2.0, "2730": 2.0, "1730": 2.0, "2740": 8.0, "2745": 8.0,
    "5725": 4.0, "1725": 4.0, "5720": 4.0, "1720": 4.0,
    "5751": 1.0, "1751": 1.0, "5724": 10.0, "1724": 10.0, "5781": 10.0, "1782": 10.0,
    "5790": 4.0,
}
# rows parsed at a time: ~1e5 rows of a few hundred samples is tens of MB of text
_ROWS_PER_BLOCK = 50_000
_HEADER_RE = re.compile(rb"^\s*BOARD\s*;", re.IGNORECASE)


class CompassReader:
    """Read CoMPASS CSV files (one file, or every ``*.CSV`` / ``*.csv`` of a folder).

    Parameters
    ----------
    path
        A CSV file or a folder of them.
    dt_ns
        Sample period, ns; default from the board model in the file name.
    channels_per_board
        Used to number channels of several boards globally.
    output_dtype
        Sample type of the records (default int16; CoMPASS samples are ADC counts).
    rows_per_block
        Rows parsed at a time when iterating.

    Attributes
    ----------
    files : list of Path
    record_length : int
    dt_ns : float
    columns : tuple of str
        Column names before SAMPLES.
    """

    def __init__(
        self,
        path: str | Path,
        dt_ns: float | None = None,
        *,
        channels_per_board: int = 16,
        output_dtype: str | np.dtype | type = np.int16,
        rows_per_block: int = _ROWS_PER_BLOCK,
    ):
        self.path = Path(path)
        if not self.path.exists():
            msg = f"CoMPASS path {self.path} does not exist; give a CSV file or a folder of them."
            raise WfaConfigError(msg)
        if self.path.is_dir():
            self.files = sorted(p for p in self.path.iterdir() if p.is_file() and p.suffix.lower() == ".csv")
            if not self.files:
                msg = f"No CoMPASS .CSV files in {self.path}."
                raise WfaFormatError(msg)
        else:
            self.files = [self.path]
        self.channels_per_board = int(channels_per_board)
        self.output_dtype = np.dtype(output_dtype)
        self.rows_per_block = max(int(rows_per_block), 1)
        self.columns, self.record_length = self._inspect(self.files[0])
        if dt_ns is not None:
            self.dt_ns, self.dt_source = float(dt_ns), "argument dt_ns"
        else:
            model = _board_model(self.files)
            if model is None:
                msg = (f"CoMPASS {self.path}: cannot tell the sample period (no known board model "
                       "after '@' in the file names, and CoMPASS CSV does not record it). Pass "
                       "dt_ns=..., e.g. 2.0 for a DT5730, 4.0 for a DT5725.")
                raise WfaConfigError(msg)
            self.dt_ns, self.dt_source = BOARD_SAMPLE_PERIOD_NS[model], f"board model {model} in the file name"

    # --- layout ------------------------------------------------------------------------------
    def _inspect(self, path: Path) -> tuple[tuple[str, ...], int]:
        with open(path, "rb") as f:
            head = f.read(1 << 20)
        first_line = head.split(b"\n", 1)[0]
        if b"\x00" in head[:4096]:
            msg = f"{path}: byte offset 0: binary content; not a CoMPASS CSV file."
            raise WfaFormatError(msg)
        if _HEADER_RE.match(first_line):
            names = tuple(c.strip().upper() for c in first_line.decode("ascii", "replace").strip().split(";"))
            if "SAMPLES" not in names or "TIMETAG" not in names or "CHANNEL" not in names:
                msg = (f"{path}: byte offset 0: header {first_line[:120]!r} has no SAMPLES (or no "
                       "TIMETAG/CHANNEL) column: save the list with waveforms in CoMPASS.")
                raise WfaFormatError(msg)
            columns = names[: names.index("SAMPLES")]
            body = head[len(first_line) + 1 :]
        else:
            columns = COMPASS_COLUMNS[:-1]
            body = head
            if not re.match(rb"^\s*\d+;\d+;\d+", first_line):
                msg = (f"{path}: byte offset 0: expected the CoMPASS header "
                       f"'{';'.join(COMPASS_COLUMNS)}' or a data row; got {first_line[:80]!r}.")
                raise WfaFormatError(msg)
        row = body.split(b"\n", 1)[0].strip()
        if not row:
            return columns, 0
        n_fields = row.count(b";") + 1
        record_length = n_fields - len(columns)
        if record_length <= 0:
            msg = f"{path}: first data row has no samples; save the list with waveforms in CoMPASS."
            raise WfaFormatError(msg)
        return columns, record_length

    @property
    def dtype(self) -> np.dtype:
        """Dtype of the raw records this reader returns."""
        return dtypes.raw_record_dtype(max(self.record_length, 1), self.output_dtype)

    def info(self) -> dict[str, Any]:
        """Resolved layout and metadata."""
        return {
            "path": str(self.path),
            "files": [p.name for p in self.files],
            "columns": list(self.columns),
            "record_length": self.record_length,
            "dt_ns": self.dt_ns,
            "dt_source": self.dt_source,
            "polarity": None,
        }

    def fingerprint(self) -> str:
        """Changes when any input file changes (sizes and modification times)."""
        return files_fingerprint(self.files)

    # --- reading -------------------------------------------------------------------------------
    def read(self) -> np.ndarray:
        """All records, sorted by time then channel (the files need not be time-ordered)."""
        blocks = [b for p in self.files for b in self._iter_file(p, require_sorted=False)]
        if not blocks:
            return np.zeros(0, self.dtype)
        records = np.concatenate(blocks)
        return records[np.lexsort((records["channel"], records["time"]))]

    def read_table(self) -> dict[str, np.ndarray]:
        """The list columns other than the samples (TIMETAG already in ns, as ``time``)."""
        parts = [t for p in self.files for t in self._iter_file(p, table=True, require_sorted=False)]
        keys = parts[0].keys() if parts else ()
        out = {k: np.concatenate([p[k] for p in parts]) for k in keys}
        if out:
            order = np.argsort(out["time"], kind="stable")
            out = {k: v[order] for k, v in out.items()}
        return out

    def iter_chunks(
        self, chunk_duration_ns: float | None = None, min_gap_ns: int = DEFAULT_CHUNK_MIN_GAP_NS
    ) -> Iterator[tuple[int, int, np.ndarray]]:
        """Yield ``(start_ns, end_ns, records)`` chunks cut in gaps of ``min_gap_ns`` or more, from 0 ns."""
        merged = merge_sorted_streams([self._iter_file(p) for p in self.files], self.dtype)
        yield from rechunk_in_gaps(merged, chunk_duration_ns, start_ns=0, source=str(self.path), min_gap_ns=min_gap_ns)

    def _iter_file(self, path: Path, table: bool = False, require_sorted: bool = True) -> Iterator[Any]:
        with mapped_bytes(path) as data:
            yield from self._iter_mapped(path, data, table, require_sorted)

    def _iter_mapped(self, path: Path, data, table: bool, require_sorted: bool) -> Iterator[Any]:
        if _HEADER_RE.match(data[:200]):
            body_offset = data.find(b"\n") + 1 if b"\n" in data else len(data)
        else:
            body_offset = 0
        line_starts = _line_starts(data, body_offset)
        n_lines = len(line_starts) - 1
        previous_last = np.iinfo(np.int64).min
        for first in range(0, n_lines, self.rows_per_block):
            last = min(first + self.rows_per_block, n_lines)
            chunk = data[line_starts[first] : line_starts[last]]
            parsed = self._parse_rows(path, chunk, line_starts[first], is_last=last == n_lines)
            if parsed is None:
                continue
            times, channels, samples, extra = parsed
            order = np.argsort(times, kind="stable")
            if require_sorted and len(times) and times[order[0]] < previous_last:
                msg = (f"{path}: rows from byte offset {line_starts[first]} go back in time "
                       f"({int(times[order[0]])} ns after {previous_last} ns). Sort the list by "
                       "time in CoMPASS, or read it whole with read_compass().")
                raise WfaFormatError(msg)
            if len(times):
                previous_last = int(times[order[-1]])
            if table:
                yield {"time": times[order], "channel": channels[order], **{k: v[order] for k, v in extra.items()}}
                continue
            out = np.zeros(len(times), self.dtype)
            out["time"] = times[order]
            out["length"] = self.record_length
            out["dt"] = self.dt_ns
            out["channel"] = channels[order]
            out["event_number"] = np.arange(first, first + len(times))[order]
            out["data"] = samples[order]
            yield out

    def _parse_rows(self, path: Path, chunk: bytes, offset: int, is_last: bool):
        lines = chunk.split(b"\n")
        if lines and not lines[-1].strip():
            lines.pop()
        lines = [ln for ln in lines if ln.strip()]
        if not lines:
            return None
        n_meta = len(self.columns)
        n_fields = n_meta + self.record_length
        counts = np.fromiter((ln.count(b";") + 1 for ln in lines), dtype=np.int64, count=len(lines))
        bad = np.flatnonzero(counts != n_fields)
        if len(bad):
            k = int(bad[0])
            line_offset = offset + sum(len(ln) + 1 for ln in lines[:k])
            if is_last and k == len(lines) - 1 and counts[k] < n_fields:
                msg = (f"{path}: truncated last row at byte offset {line_offset}: {counts[k]} of "
                       f"{n_fields} fields; the incomplete row was dropped.")
                warnings.warn(msg, TruncatedFileWarning, stacklevel=5)
                lines = lines[:-1]
                if not lines:
                    return None
            else:
                msg = (f"{path}: row at byte offset {line_offset} has {counts[k]} fields, expected "
                       f"{n_fields} ({n_meta} columns + {self.record_length} samples). Mixed record "
                       "lengths or a corrupt file.")
                raise WfaFormatError(msg)
        cells = np.array(b";".join(lines).replace(b"\r", b"").split(b";")).reshape(len(lines), n_fields)
        col = {name: k for k, name in enumerate(self.columns)}
        try:
            timetag_ps = cells[:, col["TIMETAG"]].astype(np.int64)
            board = cells[:, col["BOARD"]].astype(np.int64) if "BOARD" in col else np.zeros(len(lines), np.int64)
            channel = cells[:, col["CHANNEL"]].astype(np.int64)
            samples = cells[:, n_meta:].astype(np.float64)
        except ValueError as exc:
            msg = f"{path}: rows from byte offset {offset}: a value is not a number ({exc}); not a CoMPASS list?"
            raise WfaFormatError(msg) from None
        if self.output_dtype.kind in "iu":
            info = np.iinfo(self.output_dtype)
            if samples.size and (samples.min() < info.min or samples.max() > info.max):
                msg = (f"{path}: samples from byte offset {offset} span {samples.min()}..{samples.max()}, "
                       f"outside {self.output_dtype}; pass output_dtype='uint16' or 'float32'.")
                raise WfaFormatError(msg)
        # picoseconds to ns, rounded to nearest, in integer arithmetic (exact for any tag)
        times = (timetag_ps + 500) // 1000
        extra = {}
        for name in ("ENERGY", "ENERGYSHORT"):
            if name in col:
                extra[name.lower()] = cells[:, col[name]].astype(np.float64)
        if "FLAGS" in col:
            extra["flags"] = np.array([int(v, 0) for v in cells[:, col["FLAGS"]]], dtype=np.int64)
        global_channel = (board * self.channels_per_board + channel).astype(np.int16)
        return times, global_channel, samples.astype(self.output_dtype), extra


def _line_starts(data: bytes, body_offset: int) -> np.ndarray:
    """Byte offsets where each line of the body starts, plus the end of the data."""
    raw = np.frombuffer(data, dtype=np.uint8)
    newlines = np.flatnonzero(raw[body_offset:] == 10) + body_offset + 1
    starts = np.concatenate(([body_offset], newlines))
    if starts[-1] != len(data):
        starts = np.concatenate((starts, [len(data)]))
    return starts


def _board_model(files: list[Path]) -> str | None:
    for path in files:
        m = re.search(r"@[A-Za-z]*(\d{4})", path.name)
        if m and m.group(1) in BOARD_SAMPLE_PERIOD_NS:
            return m.group(1)
    return None


def read_compass(path: str | Path, dt_ns: float | None = None, **kwargs: Any) -> np.ndarray:
    """Read CoMPASS CSV files into raw records sorted by time (see :class:`CompassReader`)."""
    return CompassReader(path, dt_ns, **kwargs).read()


def iter_compass(
    path: str | Path, dt_ns: float | None = None, chunk_duration_ns: float | None = None, **kwargs: Any
) -> Iterator[tuple[int, int, np.ndarray]]:
    """Yield ``(start_ns, end_ns, records)`` chunks of CoMPASS files."""
    yield from CompassReader(path, dt_ns, **kwargs).iter_chunks(chunk_duration_ns)
