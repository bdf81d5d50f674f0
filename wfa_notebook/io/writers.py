"""Write raw records (e.g. a synthetic run) as CAEN WaveDump or CoMPASS files.

These writers exist so that every reader can be tested against known truth, and so that users
can try the readers without a digitizer.  They follow the formats the readers document: see
:mod:`wfa_notebook.io.wavedump` and :mod:`wfa_notebook.io.compass`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from wfa_notebook.errors import WfaConfigError
from wfa_notebook.io.compass import BOARD_SAMPLE_PERIOD_NS, COMPASS_COLUMNS
from wfa_notebook.io.wavedump import TTT_TICK_NS
from wfa_notebook.io.wavedump_config import DRS4_SAMPLE_PERIOD_NS

__all__ = ["write_wavedump", "write_compass"]


def _as_records(source: Any) -> np.ndarray:
    """Raw records from an array or anything with a ``records()`` method (a synthetic run)."""
    records = source.records() if hasattr(source, "records") else np.asarray(source)
    for name in ("time", "channel", "data", "event_number", "dt"):
        if name not in (records.dtype.names or ()):
            msg = f"writers: expected raw records with a {name!r} field; got fields {records.dtype.names}."
            raise WfaConfigError(msg)
    return records


def write_wavedump(
    source: Any,
    folder: str | Path,
    *,
    binary: bool = True,
    header: bool = True,
    sample_dtype: str | np.dtype | type | None = None,
    board_id: int = 0,
    ttt_tick_ns: float | None = None,
    ttt_bits: int | None = None,
    header_words: int = 6,
    polarity: str | None = None,
    write_config: bool = True,
) -> list[Path]:
    """Write records as WaveDump output, one ``wave_N`` file per channel.

    Parameters
    ----------
    source
        Raw records, or a :class:`~wfa_notebook.datasets.SyntheticRun`.
    folder
        Created if missing.
    binary, header
        OUTPUT_FILE_FORMAT BINARY (``.dat``) or ASCII (``.txt``), OUTPUT_FILE_HEADER YES / NO.
    sample_dtype
        ``"uint16"`` (most boards) or ``"float32"`` (x742); default float32 for float records,
        uint16 otherwise.
    board_id
        BOARD_ID word.
    ttt_tick_ns, ttt_bits
        Trigger-time-tag tick and width; default as the reader assumes for the sample type.
        The tag written is ``floor(time / tick) mod 2**bits``.
    header_words
        6 (24-byte header) or 8 (newer WaveDump on x742: adds DC offset and start index cell).
    polarity
        PULSE_POLARITY written to the config (``"positive"`` / ``"negative"``); default from
        ``source.config.polarity`` when the source is a synthetic run.
    write_config
        Also write ``config.txt`` (RECORD_LENGTH, PULSE_POLARITY, OUTPUT_FILE_FORMAT,
        OUTPUT_FILE_HEADER, and DRS4_FREQUENCY when the sample period is a DRS4 one).

    Returns
    -------
    list of Path
        The files written.
    """
    records = _as_records(source)
    if polarity is None and hasattr(source, "config"):
        polarity = getattr(source.config, "polarity", None)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if sample_dtype is None:
        sample_dtype = np.float32 if records.dtype["data"].base.kind == "f" else np.uint16
    sample_dtype = np.dtype(sample_dtype)
    if sample_dtype not in (np.dtype(np.uint16), np.dtype(np.float32)):
        msg = f"write_wavedump: sample_dtype must be uint16 or float32, got {sample_dtype}."
        raise WfaConfigError(msg)
    if header_words not in (6, 8) or (header_words == 8 and sample_dtype.kind != "f"):
        msg = f"write_wavedump: header_words must be 6, or 8 for float32 (x742) files; got {header_words}."
        raise WfaConfigError(msg)
    family = "x742" if sample_dtype.kind == "f" else "default"
    tick = float(ttt_tick_ns) if ttt_tick_ns is not None else TTT_TICK_NS[family][0]
    bits = int(ttt_bits) if ttt_bits is not None else TTT_TICK_NS[family][1]
    n_samples = records.dtype["data"].shape[0]
    written = []
    for channel in np.unique(records["channel"]):
        rows = records[records["channel"] == channel]
        rows = rows[np.argsort(rows["time"], kind="stable")]
        samples = rows["data"]
        if sample_dtype.kind == "u" and len(samples) and (samples.min() < 0 or samples.max() > 65535):
            msg = f"write_wavedump: channel {channel} has samples outside uint16; use sample_dtype='float32'."
            raise WfaConfigError(msg)
        samples = samples.astype(sample_dtype)
        tags = (np.floor(rows["time"] / tick).astype(np.int64) % (1 << bits)).astype(np.uint32)
        counters = (rows["event_number"] & 0xFFFFFFFF).astype(np.uint32)
        path = folder / f"wave_{int(channel)}.{'dat' if binary else 'txt'}"
        if binary:
            _write_binary(path, samples, tags, counters, int(channel), board_id, header, header_words)
        else:
            _write_ascii(path, samples, tags, counters, int(channel), board_id, header)
        written.append(path)
    if write_config:
        dt = float(records["dt"][0]) if len(records) else None
        drs4 = next((code for code, period in DRS4_SAMPLE_PERIOD_NS.items()
                     if dt is not None and sample_dtype.kind == "f" and abs(period - dt) < 1e-6), None)
        lines = [
            "# WaveDump configuration written by wfa_notebook.io.writers",
            "[COMMON]",
            f"RECORD_LENGTH  {n_samples}",
            f"OUTPUT_FILE_FORMAT  {'BINARY' if binary else 'ASCII'}",
            f"OUTPUT_FILE_HEADER  {'YES' if header else 'NO'}",
        ]
        if polarity is not None:
            lines.append(f"PULSE_POLARITY  {polarity.upper()}")
        if drs4 is not None:
            lines.append(f"DRS4_FREQUENCY {drs4}")
        config_path = folder / "config.txt"
        config_path.write_text("\n".join(lines) + "\n")
        written.append(config_path)
    return written


def _write_binary(path, samples, tags, counters, channel, board_id, header, header_words) -> None:
    n, n_samples = samples.shape
    fields = [("d", samples.dtype.newbyteorder("<"), (n_samples,))]
    if header:
        fields.insert(0, ("h", "<u4", (header_words,)))
    out = np.zeros(n, np.dtype(fields))
    out["d"] = samples
    if header:
        event_size = out.dtype.itemsize
        out["h"][:, 0] = event_size
        out["h"][:, 1] = board_id
        out["h"][:, 2] = 0
        # x742 boards write the channel index inside its group of 8
        out["h"][:, 3] = channel % 8 if samples.dtype.kind == "f" else channel
        out["h"][:, 4] = counters
        out["h"][:, 5] = tags
    out.tofile(path)


def _write_ascii(path, samples, tags, counters, channel, board_id, header) -> None:
    n, n_samples = samples.shape
    # WaveDump prints integer samples with %d and x742 float samples with %f
    text = (np.char.mod("%f", samples) if samples.dtype.kind == "f" else samples.astype(str)).tolist()
    with open(path, "w", newline="\n") as f:
        for k in range(n):
            if header:
                f.write(
                    f"Record Length: {n_samples}\nBoardID: {board_id:2d}\nChannel: {channel}\n"
                    f"Event Number: {int(counters[k])}\nPattern: 0x0000\n"
                    f"Trigger Time Stamp: {int(tags[k])}\nDC offset (DAC): 0x1000\n"
                )
            f.write("\n".join(text[k]) + "\n")


def write_compass(
    source: Any,
    path: str | Path,
    *,
    per_channel: bool = False,
    probe_code: bool = True,
    board_model: str | None = None,
    run_name: str = "run",
) -> list[Path]:
    """Write records as CoMPASS CSV (TIMETAG in ps, samples as ``;``-separated columns).

    Parameters
    ----------
    source
        Raw records, or a :class:`~wfa_notebook.datasets.SyntheticRun`.
    path
        Folder to write into (created if missing).
    per_channel
        One file per channel (``DataR_CH<n>@<model>_<run>.CSV``) instead of one file.
    probe_code
        Include the PROBE_CODE column of CoMPASS 2.
    board_model
        Model put after '@' in the file names (it tells the reader the sample period); default
        chosen from the records' sample period (2 ns -> DT5730, 4 ns -> DT5725 ...).

    Returns
    -------
    list of Path
    """
    records = _as_records(source)
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    if board_model is None and len(records):
        dt = float(records["dt"][0])
        model = next((m for m, period in BOARD_SAMPLE_PERIOD_NS.items() if m.startswith("57") and abs(period - dt) < 1e-9), None)
        board_model = f"DT{model}" if model else "unknown"
    board_model = board_model or "unknown"
    columns = list(COMPASS_COLUMNS if probe_code else COMPASS_COLUMNS[:-2] + COMPASS_COLUMNS[-1:])
    groups = [(int(c), records[records["channel"] == c]) for c in np.unique(records["channel"])] if per_channel else [(None, records)]
    written = []
    for channel, rows in groups:
        name = f"DataR_CH{channel}@{board_model}_{run_name}.CSV" if channel is not None else f"DataR@{board_model}_{run_name}.CSV"
        target = folder / name
        rows = rows[np.argsort(rows["time"], kind="stable")]
        timetag_ps = rows["time"].astype(np.int64) * 1000
        data = rows["data"]
        energy = np.abs(data.astype(np.float64) - np.median(data, axis=1, keepdims=True)).max(axis=1) if len(rows) else np.zeros(0)
        meta = [rows["channel"] // 16, rows["channel"] % 16, timetag_ps, np.rint(energy).astype(np.int64), np.zeros(len(rows), np.int64)]
        text = (np.char.mod("%.6f", data) if data.dtype.kind == "f" else data.astype(str)).tolist()
        with open(target, "w", newline="\n") as f:
            f.write(";".join(columns) + "\n")
            flags = ";0x4000;1;" if probe_code else ";0x4000;"
            for k in range(len(rows)):
                head = ";".join(str(int(col[k])) for col in meta)
                f.write(head + flags + ";".join(text[k]) + "\n")
        written.append(target)
    return written
