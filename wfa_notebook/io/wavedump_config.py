"""The CAEN WaveDump configuration file: find it next to the data and read what a reader needs.

WaveDump's text configuration has ``[COMMON]`` settings and per-channel (``[0]``, ``[1]``, ...) or
fast-trigger (``[TR0]``, ``[TR1]``) sections of ``KEY value`` lines; ``#`` starts a comment and
the lines between ``@OFF`` and ``@ON`` are skipped.  Only a few keys matter to a reader:
RECORD_LENGTH, POST_TRIGGER, PULSE_POLARITY, OUTPUT_FILE_FORMAT, OUTPUT_FILE_HEADER,
DRS4_FREQUENCY (x742 boards) and the DC offsets.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from wfa_notebook.errors import WfaFormatError

__all__ = [
    "DRS4_SAMPLE_PERIOD_NS",
    "WaveDumpConfig",
    "find_wavedump_config",
    "parse_wavedump_config",
]

#: Sample period in ns for each DRS4_FREQUENCY code of x742 boards (5, 2.5, 1 GS/s, 750 MS/s).
DRS4_SAMPLE_PERIOD_NS = {0: 0.2, 1: 0.4, 2: 1.0, 3: 1.0 / 0.75}

# Config file names WaveDump set-ups use, in order of preference.
_CONFIG_PATTERNS = ("config.txt", "WaveDumpConfig*.txt", "wavedump*.txt", "*.cfg")


@dataclasses.dataclass(frozen=True)
class WaveDumpConfig:
    """What a reader needs from a WaveDump configuration file (``None`` where not set).

    Attributes
    ----------
    path : Path or None
        File the settings were read from (None when given as a dict).
    record_length : int or None
        RECORD_LENGTH, samples per record.
    post_trigger_percent : float or None
        POST_TRIGGER, percent of the record after the trigger.
    polarity : str or None
        ``"positive"`` or ``"negative"`` from PULSE_POLARITY.
    binary : bool or None
        OUTPUT_FILE_FORMAT is BINARY (True) or ASCII (False).
    header : bool or None
        OUTPUT_FILE_HEADER YES / NO.
    drs4_frequency : int or None
        DRS4_FREQUENCY code (x742 boards).
    dc_offsets : dict
        Section name (``"COMMON"``, ``"0"``, ``"TR0"`` ...) to its DC_OFFSET value.
    sections : dict
        Every setting read, ``{section: {KEY: value string}}``.
    """

    path: Path | None = None
    record_length: int | None = None
    post_trigger_percent: float | None = None
    polarity: str | None = None
    binary: bool | None = None
    header: bool | None = None
    drs4_frequency: int | None = None
    dc_offsets: dict = dataclasses.field(default_factory=dict)
    sections: dict = dataclasses.field(default_factory=dict)

    @property
    def dt_ns(self) -> float | None:
        """Sample period from DRS4_FREQUENCY, ns (None when not an x742 configuration)."""
        if self.drs4_frequency is None:
            return None
        return DRS4_SAMPLE_PERIOD_NS.get(self.drs4_frequency)


def find_wavedump_config(data_path: str | Path) -> Path | None:
    """Look for a WaveDump config next to the data, then in ``../meta/`` (a common run layout)."""
    data_path = Path(data_path)
    folder = data_path if data_path.is_dir() else data_path.parent
    for candidate_folder in (folder, folder.parent / "meta"):
        if not candidate_folder.is_dir():
            continue
        for pattern in _CONFIG_PATTERNS:
            for found in sorted(candidate_folder.glob(pattern)):
                if found.is_file() and _looks_like_config(found):
                    return found
    return None


def _looks_like_config(path: Path) -> bool:
    try:
        head = path.read_bytes()[:65536].decode("utf-8", errors="replace").upper()
    except OSError:
        return False
    return "RECORD_LENGTH" in head or "[COMMON]" in head or "OUTPUT_FILE_FORMAT" in head


def parse_wavedump_config(source: str | Path | dict[str, Any]) -> WaveDumpConfig:
    """Read a WaveDump configuration file (or a dict of ``KEY: value`` settings).

    Parameters
    ----------
    source
        Path of the config file, or a dict such as ``{"RECORD_LENGTH": 1024,
        "DRS4_FREQUENCY": 3}`` (keys as in the file, case-insensitive; nested dicts are
        sections).

    Raises
    ------
    WfaFormatError
        When a value the reader uses cannot be understood (names the file and line).
    """
    if isinstance(source, dict):
        sections: dict[str, dict[str, str]] = {"COMMON": {}}
        lines_of: dict[tuple[str, str], int] = {}
        for key, value in source.items():
            if isinstance(value, dict):
                sections[str(key).upper()] = {str(k).upper(): str(v) for k, v in value.items()}
            else:
                sections["COMMON"][str(key).upper()] = str(value)
        path = None
    else:
        path = Path(source)
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            msg = f"Cannot read the WaveDump config {path}: {exc}."
            raise WfaFormatError(msg) from exc
        sections, lines_of = _parse_text(text)
    return _interpret(sections, lines_of, path)


def _parse_text(text: str) -> tuple[dict[str, dict[str, str]], dict[tuple[str, str], int]]:
    sections: dict[str, dict[str, str]] = {"COMMON": {}}
    lines_of: dict[tuple[str, str], int] = {}
    current = "COMMON"
    skipping = False
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.upper().startswith("@OFF"):
            skipping = True
            continue
        if line.upper().startswith("@ON"):
            skipping = False
            continue
        if skipping:
            continue
        if line.startswith("[") and "]" in line:
            current = line[1 : line.index("]")].strip().upper()
            sections.setdefault(current, {})
            continue
        parts = line.replace("=", " ").split(None, 1)
        key = parts[0].upper()
        sections[current][key] = parts[1].strip() if len(parts) > 1 else ""
        lines_of[(current, key)] = number
    return sections, lines_of


def _interpret(sections, lines_of, path: Path | None) -> WaveDumpConfig:
    common = sections.get("COMMON", {})
    where = str(path) if path is not None else "the WaveDump config dict"

    def fail(key: str, value: str, expected: str):
        line = lines_of.get(("COMMON", key))
        at = f" line {line}" if line else ""
        msg = f"{where}{at}: {key} = {value!r}; expected {expected}. Fix the value or pass config=None."
        raise WfaFormatError(msg)

    def integer(key: str) -> int | None:
        if key not in common:
            return None
        try:
            return int(common[key].split()[0], 0)
        except (ValueError, IndexError):
            fail(key, common[key], "a whole number")
        return None

    def yes_no(key: str, yes: str, no: str) -> bool | None:
        if key not in common:
            return None
        value = common[key].split()[0].upper() if common[key].split() else ""
        if value not in (yes, no):
            fail(key, common[key], f"{yes} or {no}")
        return value == yes

    polarity = None
    if "PULSE_POLARITY" in common:
        value = common["PULSE_POLARITY"].split()[0].upper() if common["PULSE_POLARITY"].split() else ""
        if value not in ("POSITIVE", "NEGATIVE"):
            fail("PULSE_POLARITY", common["PULSE_POLARITY"], "POSITIVE or NEGATIVE")
        polarity = value.lower()
    post = None
    if "POST_TRIGGER" in common:
        try:
            post = float(common["POST_TRIGGER"].split()[0])
        except (ValueError, IndexError):
            fail("POST_TRIGGER", common["POST_TRIGGER"], "a percentage")
    drs4 = integer("DRS4_FREQUENCY")
    if drs4 is not None and drs4 not in DRS4_SAMPLE_PERIOD_NS:
        fail("DRS4_FREQUENCY", common["DRS4_FREQUENCY"], f"one of {sorted(DRS4_SAMPLE_PERIOD_NS)}")
    record_length = integer("RECORD_LENGTH")
    if record_length is not None and record_length <= 0:
        fail("RECORD_LENGTH", common["RECORD_LENGTH"], "a positive number of samples")
    dc_offsets = {}
    for name, settings in sections.items():
        if "DC_OFFSET" in settings:
            dc_offsets[name] = settings["DC_OFFSET"]
        if "GRP_CH_DC_OFFSET" in settings:
            dc_offsets[f"{name}/GRP_CH"] = settings["GRP_CH_DC_OFFSET"]
    return WaveDumpConfig(
        path=path,
        record_length=record_length,
        post_trigger_percent=post,
        polarity=polarity,
        binary=yes_no("OUTPUT_FILE_FORMAT", "BINARY", "ASCII"),
        header=yes_no("OUTPUT_FILE_HEADER", "YES", "NO"),
        drs4_frequency=drs4,
        dc_offsets=dc_offsets,
        sections=sections,
    )
