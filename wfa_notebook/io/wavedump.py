"""Reader of CAEN WaveDump output: binary or ASCII, with or without event headers.

WaveDump writes one file per channel: ``wave_N.dat`` (binary) or ``wave_N.txt`` (ASCII), and on
x742 boards also the fast-trigger inputs ``TR_a_b``.  Each event is an optional header followed
by the samples of one record:

* binary header: six little-endian uint32 words EVENT_SIZE (bytes, header included), BOARD_ID,
  PATTERN, CHANNEL, EVENT_COUNTER, TRIGGER_TIME_TAG; recent WaveDump versions add two words on
  x742 boards (DC offset, DRS4 start index cell), 32 bytes in all;
* ASCII header: lines ``Record Length: 1024``, ``BoardID: 31``, ``Channel: 0``, ``Event Number:
  0``, ``Pattern: 0x0000``, ``Trigger Time Stamp: 94754268``, ``DC offset (DAC): 0x1000`` (and
  on some versions ``Start Index Cell``), then one sample per line;
* samples: uint16 ADC counts on most boards, float32 on x742 (DRS4) boards, uint8 on 8-bit ones.

Conventions of this reader
--------------------------
* Global channel: ``N`` of ``wave_N``; the CHANNEL word is only used for other file names (x742
  boards write 0-7 in both groups).  Fast-trigger file ``TR_a_b`` carries the trigger input of
  group ``2a + b`` and gets channel ``n_normal + 2a + b`` where ``n_normal`` is 16 (32 when a
  ``wave_N`` with N >= 16 is present): on a DT5742, TR_0_0 is channel 16 and TR_0_1 channel 17.
* Time: the trigger time tag, unwrapped (see :class:`~wfa_notebook.io.common.TimeTagUnwrapper`)
  and converted to int64 ns since the start of the acquisition; the record's first sample is
  placed at that time.  Tick: 8.533 ns (117.1875 MHz, 30-bit group tag) on x742 boards, 8 ns
  (31 bits plus a roll-over flag) on the others; x724 boards count 10 ns and x740 boards 16 ns:
  pass ``ttt_tick_ns`` for them.
* Without event headers there is no time tag: event ``i`` of every file is placed at
  ``i x record duration`` (channels of one event share a time).
* A truncated last event is dropped with a :class:`TruncatedFileWarning` naming the file and
  the byte offset; an inconsistent header, a wrong sample type or a foreign file raises
  :class:`~wfa_notebook.errors.WfaFormatError` naming the file and byte offset.
"""
from __future__ import annotations

import dataclasses
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from wfa_notebook import dtypes
from wfa_notebook.errors import WfaConfigError, WfaFormatError
from wfa_notebook.io.chunking import DEFAULT_CHUNK_MIN_GAP_NS, merge_sorted_streams, rechunk_in_gaps
from wfa_notebook.io.common import TimeTagUnwrapper, TruncatedFileWarning, files_fingerprint, mapped_bytes
from wfa_notebook.io.wavedump_config import WaveDumpConfig, find_wavedump_config, parse_wavedump_config

__all__ = [
    "TTT_TICK_NS",
    "WaveDumpFile",
    "WaveDumpReader",
    "read_wavedump",
    "iter_wavedump",
    "wavedump_channel_from_name",
]

#: Trigger-time-tag tick (ns) and counter width (bits) per board family.
TTT_TICK_NS = {
    "x742": (1000.0 / 117.1875, 30),
    "x724": (10.0, 31),
    "x740": (16.0, 31),
    "default": (8.0, 31),
}

# x742 boards only support these record lengths; used to tell float32 from uint16 samples
# when neither the config nor the caller says.
_X742_RECORD_LENGTHS = (1024, 520, 256, 136)
_HEADER_WORDS = {6: 24, 8: 32}
_NAME = re.compile(r"^(?:wave_?(?P<ch>\d+)|TR_(?P<tr_a>\d)_(?P<tr_b>\d))\.(?P<ext>dat|txt)$", re.IGNORECASE)
# events read per block: ~4-16 MB of samples, large enough for numpy, small enough for caches
_EVENTS_PER_BLOCK = 8192


def wavedump_channel_from_name(name: str, n_normal: int = 16) -> int | None:
    """Global channel number from a WaveDump file name (None if the name says nothing)."""
    m = _NAME.match(name)
    if not m:
        return None
    if m.group("ch") is not None:
        return int(m.group("ch"))
    return n_normal + 2 * int(m.group("tr_a")) + int(m.group("tr_b"))


@dataclasses.dataclass(frozen=True)
class WaveDumpFile:
    """One channel file and how it is laid out."""

    path: Path
    channel: int
    fast_trigger: bool


class WaveDumpReader:
    """Read a WaveDump folder or file; layout decided from the config, headers and arguments.

    Parameters
    ----------
    path
        A folder of ``wave_N.dat`` / ``wave_N.txt`` (and ``TR_a_b``) files, or one file.
    config
        ``None``: look for the WaveDump config in the folder and in ``../meta/``; a path or a
        dict of WaveDump settings; ``False``: use none.
    record_length
        Samples per record; needed for files without headers when no config gives it.
    sample_dtype
        Sample type in the file (``"uint16"``, ``"float32"``, ``"uint8"``); default: decided
        from EVENT_SIZE, the record length and the config.
    header
        Whether events have headers; default: config, else detected.
    file_format
        ``"binary"`` or ``"ascii"``; default: file extension (.dat / .txt).
    dt_ns
        Sample period in ns; default: DRS4_FREQUENCY of the config on x742 boards, else 0.2 ns
        (DRS4 at 5 GS/s, WaveDump's default) for float32 data and 4 ns for other boards.
    polarity
        ``"positive"`` / ``"negative"``; default: PULSE_POLARITY of the config (else None).
    ttt_tick_ns, ttt_bits
        Trigger-time-tag tick and counter width; default by board family (see module doc).
    channel
        Global channel for a single file whose name does not give it (default: CHANNEL word).
    output_dtype
        Sample type of the returned records; default the file's type.
    events_per_block
        Events read at a time when iterating.

    Attributes
    ----------
    files : list of WaveDumpFile
    record_length, sample_dtype, header, file_format, dt_ns, polarity, board_id,
    ttt_tick_ns, ttt_bits, config
        The resolved layout (see :meth:`info`).
    """

    def __init__(
        self,
        path: str | Path,
        config: str | Path | dict | bool | None = None,
        *,
        record_length: int | None = None,
        sample_dtype: str | np.dtype | type | None = None,
        header: bool | None = None,
        file_format: str | None = None,
        dt_ns: float | None = None,
        polarity: str | None = None,
        ttt_tick_ns: float | None = None,
        ttt_bits: int | None = None,
        channel: int | None = None,
        output_dtype: str | np.dtype | type | None = None,
        events_per_block: int = _EVENTS_PER_BLOCK,
    ):
        self.path = Path(path)
        if not self.path.exists():
            msg = f"WaveDump path {self.path} does not exist; give a folder of wave_N files or one file."
            raise WfaConfigError(msg)
        self.config = self._load_config(config)
        self.files = self._find_files(channel)
        self.events_per_block = max(int(events_per_block), 1)
        cfg = self.config
        self.file_format = self._resolve_format(file_format)
        self.header = header if header is not None else (cfg.header if cfg else None)
        self.record_length = record_length if record_length is not None else (cfg.record_length if cfg else None)
        self.sample_dtype = np.dtype(sample_dtype) if sample_dtype is not None else None
        if self.sample_dtype is not None and self.sample_dtype not in (np.dtype(np.uint16), np.dtype(np.float32), np.dtype(np.uint8), np.dtype(np.int16)):
            msg = f"WaveDump: sample_dtype must be uint16, float32, uint8 or int16; got {self.sample_dtype}."
            raise WfaConfigError(msg)
        self.header_words = 6
        self.board_id: int | None = None
        self._detect_layout()
        x742 = self.sample_dtype == np.dtype(np.float32)
        family = "x742" if x742 else "default"
        default_tick, default_bits = TTT_TICK_NS[family]
        self.ttt_tick_ns = float(ttt_tick_ns) if ttt_tick_ns is not None else default_tick
        self.ttt_bits = int(ttt_bits) if ttt_bits is not None else default_bits
        if dt_ns is not None:
            self.dt_ns, self.dt_source = float(dt_ns), "argument dt_ns"
        elif cfg is not None and cfg.dt_ns is not None:
            self.dt_ns = cfg.dt_ns
            self.dt_source = f"DRS4_FREQUENCY {cfg.drs4_frequency} in {cfg.path or 'config'}"
        elif x742:
            self.dt_ns, self.dt_source = 0.2, "default for x742 without config (DRS4 at 5 GS/s)"
        else:
            self.dt_ns, self.dt_source = 4.0, "default (250 MS/s); pass dt_ns for other boards"
        if polarity is not None and polarity not in ("positive", "negative"):
            msg = f"WaveDump: polarity must be 'positive' or 'negative', got {polarity!r}."
            raise WfaConfigError(msg)
        self.polarity = polarity if polarity is not None else (cfg.polarity if cfg else None)
        self.output_dtype = np.dtype(output_dtype) if output_dtype is not None else self.sample_dtype

    # --- set-up --------------------------------------------------------------------------------
    def _load_config(self, config) -> WaveDumpConfig | None:
        if config is False:
            return None
        if config is None or config is True:
            found = find_wavedump_config(self.path)
            return parse_wavedump_config(found) if found is not None else None
        return parse_wavedump_config(config)

    def _find_files(self, channel: int | None) -> list[WaveDumpFile]:
        if self.path.is_file():
            candidates = [self.path]
        else:
            candidates = sorted(p for p in self.path.iterdir() if p.is_file() and _NAME.match(p.name))
            if not candidates:
                msg = (f"No WaveDump files (wave_N.dat, wave_N.txt, TR_a_b.dat) in {self.path}. "
                       "Point to the folder WaveDump wrote, or to one file.")
                raise WfaFormatError(msg)
        normal = [wavedump_channel_from_name(p.name) for p in candidates
                  if _NAME.match(p.name) and _NAME.match(p.name).group("ch") is not None]
        n_normal = 32 if normal and max(normal) >= 16 else 16
        files = []
        for p in candidates:
            ch = wavedump_channel_from_name(p.name, n_normal)
            if channel is not None and len(candidates) == 1:
                ch = int(channel)
            files.append(WaveDumpFile(p, -1 if ch is None else ch, p.name.upper().startswith("TR_")))
        exts = {f.path.suffix.lower() for f in files}
        if len(exts) > 1:
            msg = (f"{self.path} mixes binary (.dat) and ASCII (.txt) WaveDump files; read them "
                   "separately (pass one file or file_format=...).")
            raise WfaFormatError(msg)
        return sorted(files, key=lambda f: (f.channel, f.path.name))

    def _resolve_format(self, file_format: str | None) -> str:
        if file_format is not None:
            if file_format not in ("binary", "ascii"):
                msg = f"WaveDump: file_format must be 'binary' or 'ascii', got {file_format!r}."
                raise WfaConfigError(msg)
            return file_format
        ext = self.files[0].path.suffix.lower()
        if ext == ".txt":
            return "ascii"
        if ext == ".dat":
            return "binary"
        if self.config is not None and self.config.binary is not None:
            return "binary" if self.config.binary else "ascii"
        head = self.files[0].path.read_bytes()[:4096]
        return "ascii" if head and all(32 <= c < 127 or c in (9, 10, 13) for c in head) else "binary"

    def _detect_layout(self) -> None:
        """Decide header, sample type and record length from the first non-empty file."""
        first = next((f for f in self.files if f.path.stat().st_size > 0), None)
        if self.file_format == "ascii":
            if first is not None:
                self._detect_ascii(first.path)
        elif first is not None:
            self._detect_binary(first.path)
        if self.record_length is None:
            msg = (f"WaveDump {self.path}: cannot tell the record length (no event header, no "
                   "RECORD_LENGTH in a config). Pass record_length=... or config=<WaveDump config file>.")
            raise WfaFormatError(msg)
        if self.sample_dtype is None:
            self.sample_dtype = np.dtype(np.float32 if self._x742_config() else np.uint16)

    def _x742_config(self) -> bool:
        return self.config is not None and self.config.drs4_frequency is not None

    def _detect_binary(self, path: Path) -> None:
        size = path.stat().st_size
        words = np.fromfile(path, dtype="<u4", count=min(size // 4, 8))
        if self.header is False:
            self.header_words = 0
            return
        # an event header: a sensible EVENT_SIZE and a small CHANNEL word (sample data read as
        # uint32 words almost never looks like that)
        plausible = len(words) >= 6 and 24 < words[0] < (1 << 26) and words[3] < 64
        if not plausible:
            if self.header is None and self.record_length is not None:
                self.header, self.header_words = False, 0
                return
            got = int(words[0]) if len(words) else None
            msg = (f"{path}: byte offset 0: not a WaveDump event header (EVENT_SIZE={got}, "
                   f"file size {size} bytes). Is this a WaveDump binary file? If it was written "
                   "without headers, pass header=False and record_length=....")
            raise WfaFormatError(msg)
        self.header = True
        self.board_id = int(words[1])
        event_size = int(words[0])
        options = self._layouts_for(event_size)
        if not options:
            expect = f" with RECORD_LENGTH {self.record_length}" if self.record_length else ""
            stype = f" of {self.sample_dtype}" if self.sample_dtype is not None else ""
            msg = (f"{path}: byte offset 0: EVENT_SIZE {event_size} bytes does not fit a 24- or "
                   f"32-byte header and samples{stype}{expect}. Wrong sample type or record "
                   "length? Pass sample_dtype=... / record_length=..., or check the config.")
            raise WfaFormatError(msg)
        if len(options) > 1:
            options = [o for o in options if self._floats_plausible(path, o)] or options[-1:]
        hw, stype, rl = options[0]
        self.header_words, self.sample_dtype, self.record_length = hw, np.dtype(stype), rl

    def _layouts_for(self, event_size: int) -> list[tuple[int, str, int]]:
        """(header words, sample type, record length) consistent with one EVENT_SIZE."""
        out = []
        types = [self.sample_dtype.str] if self.sample_dtype is not None else ["<f4", "<u2", "u1"]
        for stype in types:
            item = np.dtype(stype).itemsize
            for hw, hbytes in _HEADER_WORDS.items():
                if hw == 8 and item != 4:
                    continue  # the 32-byte header exists only for x742 (float32) files
                payload = event_size - hbytes
                if payload <= 0 or payload % item:
                    continue
                rl = payload // item
                if self.record_length is not None and rl != self.record_length:
                    continue
                if self.record_length is None and self.sample_dtype is None and item == 4 and rl not in _X742_RECORD_LENGTHS:
                    continue
                if self.record_length is None and self.sample_dtype is None and item == 1:
                    continue  # 8-bit boards are rare: only when the caller or config says so
                out.append((hw, stype, rl))
        return out

    @staticmethod
    def _floats_plausible(path: Path, layout: tuple[int, str, int]) -> bool:
        hw, stype, rl = layout
        if np.dtype(stype).kind != "f":
            return True
        values = np.fromfile(path, dtype="<f4", count=min(rl, 256), offset=_HEADER_WORDS[hw])
        # DRS4 samples are ADC counts: finite, of order 1e1-1e4; uint16 pairs read as float32
        # are below 2 (14-bit high words) and header words read as float32 are denormal
        return bool(np.all(np.isfinite(values)) and np.median(np.abs(values)) >= 2.0 and np.abs(values).max() < 1e7)

    def _detect_ascii(self, path: Path) -> None:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
        text_ok = all(32 <= c < 127 or c in (9, 10, 13) for c in head[:4096])
        if not text_ok:
            msg = f"{path}: byte offset 0: not a WaveDump ASCII file (binary content)."
            raise WfaFormatError(msg)
        has_header = head.lstrip().startswith(b"Record Length")
        if self.header is None:
            self.header = has_header
        elif self.header and not has_header:
            msg = (f"{path}: byte offset 0: expected an ASCII event header ('Record Length: ...') "
                   "as OUTPUT_FILE_HEADER YES says; got none. Pass header=False.")
            raise WfaFormatError(msg)
        if self.header:
            m = re.search(rb"Record Length:\s*(\d+)", head)
            if m is None:
                msg = f"{path}: byte offset 0: no 'Record Length' line in the ASCII header."
                raise WfaFormatError(msg)
            rl = int(m.group(1))
            if self.record_length is not None and rl != self.record_length:
                msg = (f"{path}: byte offset {m.start()}: Record Length {rl} differs from "
                       f"RECORD_LENGTH {self.record_length} of the config.")
                raise WfaFormatError(msg)
            self.record_length = rl
            m = re.search(rb"BoardID:\s*(\d+)", head)
            self.board_id = int(m.group(1)) if m else None
        if self.sample_dtype is None:
            numbers = [ln for ln in head.split(b"\n")[:200] if ln[:1].isdigit() or ln[:1] == b"-"]
            self.sample_dtype = np.dtype(np.float32 if any(b"." in n for n in numbers) else np.uint16)

    # --- description ---------------------------------------------------------------------------
    @property
    def dtype(self) -> np.dtype:
        """Dtype of the raw records this reader returns."""
        return dtypes.raw_record_dtype(self.record_length, self.output_dtype)

    def info(self) -> dict[str, Any]:
        """Resolved layout and metadata, for display and for configuring later plugins."""
        return {
            "path": str(self.path),
            "files": [(str(f.path.name), f.channel) for f in self.files],
            "file_format": self.file_format,
            "header": self.header,
            "header_bytes": _HEADER_WORDS.get(self.header_words, 0) if self.header else 0,
            "record_length": self.record_length,
            "sample_dtype": str(self.sample_dtype),
            "dt_ns": self.dt_ns,
            "dt_source": self.dt_source,
            "polarity": self.polarity,
            "board_id": self.board_id,
            "ttt_tick_ns": self.ttt_tick_ns,
            "ttt_bits": self.ttt_bits,
            "config_path": str(self.config.path) if self.config and self.config.path else None,
        }

    def fingerprint(self) -> str:
        """Changes when any data file or the config changes (sizes and modification times)."""
        paths = [f.path for f in self.files]
        if self.config is not None and self.config.path is not None:
            paths.append(self.config.path)
        return files_fingerprint(paths)

    # --- reading -------------------------------------------------------------------------------
    def read(self) -> np.ndarray:
        """All records of all files, sorted by time then channel."""
        blocks = [b for b, _ in merge_sorted_streams([self.iter_file(f) for f in self.files], self.dtype)]
        return np.concatenate(blocks) if blocks else np.zeros(0, self.dtype)

    def iter_chunks(
        self, chunk_duration_ns: float | None = None, min_gap_ns: int = DEFAULT_CHUNK_MIN_GAP_NS
    ) -> Iterator[tuple[int, int, np.ndarray]]:
        """Yield ``(start_ns, end_ns, records)`` chunks cut in gaps of ``min_gap_ns`` or more, from 0 ns."""
        merged = merge_sorted_streams([self.iter_file(f) for f in self.files], self.dtype)
        yield from rechunk_in_gaps(merged, chunk_duration_ns, start_ns=0, source=str(self.path), min_gap_ns=min_gap_ns)

    def iter_file(self, file: WaveDumpFile) -> Iterator[np.ndarray]:
        """Blocks of records of one channel file, in file order (time-sorted)."""
        if self.file_format == "binary":
            yield from self._iter_binary(file)
        else:
            yield from self._iter_ascii(file)

    def _records(self, file: WaveDumpFile, samples: np.ndarray, times: np.ndarray,
                 counters: np.ndarray, channel_words: np.ndarray | None) -> np.ndarray:
        out = np.zeros(len(samples), self.dtype)
        out["time"] = times
        out["length"] = self.record_length
        out["dt"] = self.dt_ns
        if file.channel >= 0:
            out["channel"] = file.channel
        elif channel_words is not None:
            out["channel"] = channel_words
        out["event_number"] = counters
        if self.output_dtype.kind in "iu" and samples.dtype.kind in "iuf":
            info = np.iinfo(self.output_dtype)
            if len(samples) and (samples.min() < info.min or samples.max() > info.max):
                msg = (f"{file.path}: samples range {samples.min()}..{samples.max()} does not fit "
                       f"output_dtype {self.output_dtype}; choose a wider output_dtype.")
                raise WfaFormatError(msg)
        out["data"] = samples
        return out

    def _headerless_times(self, first_event: int, n: int) -> np.ndarray:
        duration = dtypes.duration_ns(self.record_length, self.dt_ns)
        return (np.arange(first_event, first_event + n, dtype=np.int64)) * duration

    def _iter_binary(self, file: WaveDumpFile) -> Iterator[np.ndarray]:
        path = file.path
        size = path.stat().st_size
        hbytes = _HEADER_WORDS[self.header_words] if self.header else 0
        item = self.sample_dtype.itemsize
        event_size = hbytes + self.record_length * item
        n_full, tail = divmod(size, event_size)
        if self.header and size >= 4:
            first_size = int(np.fromfile(path, dtype="<u4", count=1)[0])
            if first_size != event_size:
                msg = (f"{path}: byte offset 0: EVENT_SIZE {first_size} bytes; expected "
                       f"{event_size} ({hbytes}-byte header + {self.record_length} samples of "
                       f"{self.sample_dtype}) as in {self.files[0].path.name}. Wrong sample type "
                       "or a file from another run?")
                raise WfaFormatError(msg)
        if tail:
            msg = (f"{path}: truncated last event at byte offset {n_full * event_size}: only "
                   f"{tail} of {event_size} bytes present; the incomplete event was dropped.")
            warnings.warn(msg, TruncatedFileWarning, stacklevel=3)
        if n_full == 0:
            return
        fields = [("d", self.sample_dtype.newbyteorder("<"), (self.record_length,))]
        if self.header:
            fields.insert(0, ("h", "<u4", (self.header_words,)))
        layout = np.dtype(fields)
        events = np.memmap(path, dtype=layout, mode="r", shape=(n_full,))
        unwrap = TimeTagUnwrapper(self.ttt_bits, self.ttt_tick_ns)
        board_id = channel_word = None
        for start in range(0, n_full, self.events_per_block):
            block = events[start : start + self.events_per_block]
            samples = np.asarray(block["d"])
            if samples.dtype.kind == "f" and not np.all(np.isfinite(samples)):
                bad = start + int(np.argmax(~np.all(np.isfinite(samples), axis=1)))
                msg = (f"{path}: event {bad} at byte offset {bad * event_size}: non-finite float32 "
                       "samples. Not x742 data? Pass sample_dtype='uint16'.")
                raise WfaFormatError(msg)
            if self.header:
                head = np.asarray(block["h"])
                if board_id is None:
                    board_id, channel_word = int(head[0, 1]), int(head[0, 3])
                self._check_headers(path, head, start, event_size, board_id, channel_word)
                times = unwrap(head[:, 5])
                counters = head[:, 4].astype(np.int64)
                words = head[:, 3].astype(np.int16)
            else:
                counters = np.arange(start, start + len(block), dtype=np.int64)
                times = self._headerless_times(start, len(block))
                words = None
            yield self._records(file, samples, times, counters, words)

    @staticmethod
    def _check_headers(path, head, start, event_size, board_id, channel_word) -> None:
        problems = (
            (head[:, 0] != event_size, "EVENT_SIZE", event_size),
            (head[:, 1] != board_id, "BOARD_ID", board_id),
            (head[:, 3] != channel_word, "CHANNEL", channel_word),
        )
        for bad, name, expected in problems:
            if bad.any():
                k = int(np.argmax(bad))
                got = int(head[k, {"EVENT_SIZE": 0, "BOARD_ID": 1, "CHANNEL": 3}[name]])
                msg = (f"{path}: event {start + k} at byte offset {(start + k) * event_size}: "
                       f"{name} {got}, expected {expected} as in the first event. The file is "
                       "corrupt or mixes runs.")
                raise WfaFormatError(msg)

    def _iter_ascii(self, file: WaveDumpFile) -> Iterator[np.ndarray]:
        with mapped_bytes(file.path) as data:
            if self.header:
                yield from self._iter_ascii_with_header(file, data)
            else:
                yield from self._iter_ascii_without_header(file, data)

    def _iter_ascii_without_header(self, file: WaveDumpFile, data) -> Iterator[np.ndarray]:
        path, rl = file.path, self.record_length
        # whole lines, about events_per_block events at a time
        step = max(rl * self.events_per_block * 8, 1 << 16)
        position, event, leftover = 0, 0, np.zeros(0)
        while position < len(data):
            stop = min(position + step, len(data))
            if stop < len(data):
                newline = data.rfind(b"\n", position, stop)
                stop = newline + 1 if newline >= position else (data.find(b"\n", stop) + 1 or len(data))
            piece = data[position:stop]
            try:
                values = np.array(piece.split(), dtype=np.float64)
            except ValueError as exc:
                msg = (f"{path}: bytes {position}..{stop}: not a WaveDump ASCII file without headers "
                       f"(a non-numeric line): {exc}.")
                raise WfaFormatError(msg) from None
            values = np.concatenate((leftover, values)) if len(leftover) else values
            n_full = len(values) // rl
            leftover = values[n_full * rl :]
            if n_full:
                samples = _cast_samples(values[: n_full * rl].reshape(n_full, rl), self.sample_dtype, path)
                yield self._records(file, samples, self._headerless_times(event, n_full),
                                    np.arange(event, event + n_full, dtype=np.int64), None)
                event += n_full
            position = stop
        if len(leftover):
            tail_start = max(0, len(data) - 64 * rl)
            starts = _value_starts(data[tail_start:])
            offset = tail_start + int(starts[-len(leftover)])
            msg = (f"{path}: truncated last event at byte offset {offset}: {len(leftover)} of "
                   f"{rl} samples; the incomplete event was dropped.")
            warnings.warn(msg, TruncatedFileWarning, stacklevel=4)

    def _iter_ascii_with_header(self, file: WaveDumpFile, data) -> Iterator[np.ndarray]:
        path = file.path
        starts = [m.start() for m in re.finditer(rb"Record Length:", data)]
        if not starts or data[: starts[0]].strip():
            msg = f"{path}: byte offset 0: expected 'Record Length:' opening the first event header."
            raise WfaFormatError(msg)
        starts.append(len(data))
        unwrap = TimeTagUnwrapper(self.ttt_bits, self.ttt_tick_ns)
        rl = self.record_length
        for block_start in range(0, len(starts) - 1, self.events_per_block):
            idx = range(block_start, min(block_start + self.events_per_block, len(starts) - 1))
            tags, counters, channels, bodies = [], [], [], []
            for i in idx:
                event = data[starts[i] : starts[i + 1]]
                header, body = _split_ascii_event(event)
                fields = _parse_ascii_header(header, path, starts[i])
                length = fields.get("record length")
                if length != rl:
                    msg = (f"{path}: event {i} at byte offset {starts[i]}: Record Length {length}, "
                           f"expected {rl} as in the first event.")
                    raise WfaFormatError(msg)
                tags.append(fields.get("trigger time stamp", 0))
                counters.append(fields.get("event number", i))
                channels.append(fields.get("channel", -1))
                bodies.append(body)
            try:
                values = np.array(b"\n".join(bodies).split(), dtype=np.float64)
            except ValueError as exc:
                msg = f"{path}: event block from byte offset {starts[idx[0]]}: non-numeric sample line: {exc}."
                raise WfaFormatError(msg) from None
            counts = [len(b.split()) for b in bodies] if len(values) != rl * len(bodies) else None
            keep = len(bodies)
            if counts is not None:
                bad = [k for k, c in enumerate(counts) if c != rl]
                last = len(starts) - 2
                if bad == [len(bodies) - 1] and idx[-1] == last and counts[-1] < rl:
                    msg = (f"{path}: truncated last event at byte offset {starts[last]}: "
                           f"{counts[-1]} of {rl} samples; the incomplete event was dropped.")
                    warnings.warn(msg, TruncatedFileWarning, stacklevel=3)
                    keep = len(bodies) - 1
                    values = values[: keep * rl]
                else:
                    k = bad[0]
                    msg = (f"{path}: event {idx[k]} at byte offset {starts[idx[k]]}: {counts[k]} "
                           f"samples, expected {rl}.")
                    raise WfaFormatError(msg)
            if keep == 0:
                continue
            samples = _cast_samples(values.reshape(keep, rl), self.sample_dtype, path)
            times = unwrap(np.asarray(tags[:keep], dtype=np.int64))
            yield self._records(file, samples, times, np.asarray(counters[:keep], dtype=np.int64),
                                np.asarray(channels[:keep], dtype=np.int16))


def _split_ascii_event(event: bytes) -> tuple[bytes, bytes]:
    """Header lines (start with a letter) and the sample lines of one ASCII event."""
    pos = 0
    while pos < len(event):
        end = event.find(b"\n", pos)
        end = len(event) if end < 0 else end + 1
        line = event[pos:end].strip()
        if line and not line[:1].isalpha():
            break
        pos = end
    return event[:pos], event[pos:]


def _parse_ascii_header(header: bytes, path: Path, offset: int) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in header.decode("ascii", errors="replace").splitlines():
        if ":" not in line:
            continue
        key, value = line.split(":", 1)
        key, value = key.strip().lower(), value.strip()
        if key in ("record length", "boardid", "event number", "trigger time stamp"):
            try:
                out[key] = int(value, 0)
            except ValueError:
                msg = f"{path}: event header at byte offset {offset}: {key!r} is {value!r}, expected a number."
                raise WfaFormatError(msg) from None
        elif key == "channel":
            m = re.match(r"TR_(\d)_(\d)", value)
            out[key] = int(value) if value.isdigit() else (16 + 2 * int(m.group(1)) + int(m.group(2)) if m else -1)
    return out


def _cast_samples(values: np.ndarray, sample_dtype: np.dtype, path: Path) -> np.ndarray:
    if sample_dtype.kind == "f":
        return values.astype(sample_dtype)
    if len(values) and (np.any(values != np.rint(values)) or values.min() < 0 or values.max() > np.iinfo(sample_dtype).max):
        msg = (f"{path}: samples are not whole numbers in the {sample_dtype} range; x742 data? "
               "Pass sample_dtype='float32'.")
        raise WfaFormatError(msg)
    return values.astype(sample_dtype)


def _value_starts(text: bytes) -> np.ndarray:
    """Byte offsets where the whitespace-separated values of ``text`` start."""
    blank = np.frombuffer(text, dtype=np.uint8) <= 32
    return np.flatnonzero(~blank & np.concatenate(([True], blank[:-1])))


def read_wavedump(path: str | Path, config: str | Path | dict | bool | None = None, **kwargs: Any) -> np.ndarray:
    """Read WaveDump files into raw records (see :class:`WaveDumpReader` for the arguments).

    Returns
    -------
    numpy.ndarray
        Raw records (:func:`wfa_notebook.dtypes.raw_record_dtype`) sorted by time, then channel.
        Use :class:`WaveDumpReader` to also get the metadata (polarity, sample period ...).
    """
    return WaveDumpReader(path, config, **kwargs).read()


def iter_wavedump(
    path: str | Path,
    config: str | Path | dict | bool | None = None,
    chunk_duration_ns: float | None = None,
    **kwargs: Any,
) -> Iterator[tuple[int, int, np.ndarray]]:
    """Yield ``(start_ns, end_ns, records)`` chunks of WaveDump files without loading them whole."""
    yield from WaveDumpReader(path, config, **kwargs).iter_chunks(chunk_duration_ns)
