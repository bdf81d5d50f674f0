"""The default context: a source (synthetic run, WaveDump or CoMPASS files) and the built-in chain.

raw_records -> records -> hits -> peaks -> peak_basics -> events -> event_basics
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .context import Context
from .errors import WfaConfigError
from .plugins.events import EventBasics, Events
from .plugins.peaks import PeakBasics, Peaks
from .plugins.sources import CompassSource, SyntheticSource, WaveDumpSource
from .plugins.waveform import Hits, Records

__all__ = ["default_context", "BUILTIN_PLUGINS", "detect_source"]

#: The built-in processing chain after raw_records, in dependency order.
BUILTIN_PLUGINS = (Records, Hits, Peaks, PeakBasics, Events, EventBasics)


def detect_source(source: str | os.PathLike) -> str:
    """'synthetic', 'wavedump' or 'compass' for a ``source`` argument, or a clear error."""
    if str(source) == "synthetic":
        return "synthetic"
    path = Path(source).expanduser()
    if not path.exists():
        msg = (
            f"default_context: source {str(source)!r} is neither 'synthetic' nor an existing "
            "WaveDump folder/file or CoMPASS CSV file/folder. Check the path."
        )
        raise WfaConfigError(msg)
    if path.is_file():
        if path.suffix.lower() == ".csv":
            return "compass"
        return "wavedump"
    names = [p.name.lower() for p in path.iterdir()]
    if any(n.startswith(("wave_", "wave", "tr_")) and n.endswith((".dat", ".txt")) for n in names):
        return "wavedump"
    if any(n.endswith(".csv") for n in names):
        return "compass"
    msg = (
        f"default_context: folder {str(path)!r} holds no WaveDump files (wave_N.dat / wave_N.txt) "
        "and no CoMPASS .csv files."
    )
    raise WfaConfigError(msg)


def default_context(
    storage_dir: str | os.PathLike = "./wfa_data",
    source: str | os.PathLike = "synthetic",
    config: dict[str, Any] | None = None,
    max_workers: int | None = None,
) -> Context:
    """A Context with a source and the whole built-in chain registered.

    Parameters
    ----------
    storage_dir : cache folder.
    source : ``"synthetic"`` for the embedded synthetic run (any run id works; the id seeds it), or
        the path of a WaveDump folder/file or a CoMPASS CSV file/folder (the run id is then only a
        name for the cache; the path may contain ``{run_id}``).
    config : option values applied on top of the defaults (see ``context.show_config()``).
    max_workers : chunks computed at once per plugin (None: the execution layer decides).

    The records plugin takes the pulse polarity from the source (PULSE_POLARITY of a WaveDump
    config file, the synthetic run's ``polarity``) unless ``polarity`` is set, so records come
    out with positive pulses either way.
    """
    kind = detect_source(source)
    base: dict[str, Any] = {}
    if kind == "synthetic":
        plugin = SyntheticSource
    elif kind == "wavedump":
        plugin = WaveDumpSource
        base["wavedump_path"] = str(Path(source).expanduser().resolve())
    else:
        plugin = CompassSource
        base["compass_path"] = str(Path(source).expanduser().resolve())
    context = Context(storage_dir, register=[plugin, *BUILTIN_PLUGINS], max_workers=max_workers)
    context.set_config(base)
    if config:
        context.set_config(config)
    return context
