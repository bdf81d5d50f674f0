"""Readers and writers of digitizer files (CAEN WaveDump, CAEN CoMPASS)."""
from __future__ import annotations

# chunking of record streams (shared by readers and generators)
from wfa_notebook.io.chunking import first_gap_at_or_after, merge_sorted_streams, rechunk_in_gaps
from wfa_notebook.io.common import TruncatedFileWarning

# CAEN CoMPASS
from wfa_notebook.io.compass import CompassReader, iter_compass, read_compass

# CAEN WaveDump
from wfa_notebook.io.wavedump import WaveDumpReader, iter_wavedump, read_wavedump
from wfa_notebook.io.wavedump_config import WaveDumpConfig, find_wavedump_config, parse_wavedump_config

# writers (synthetic data as digitizer files)
from wfa_notebook.io.writers import write_compass, write_wavedump

__all__ = [
    "first_gap_at_or_after",
    "merge_sorted_streams",
    "rechunk_in_gaps",
    "TruncatedFileWarning",
    "CompassReader",
    "iter_compass",
    "read_compass",
    "WaveDumpReader",
    "iter_wavedump",
    "read_wavedump",
    "WaveDumpConfig",
    "find_wavedump_config",
    "parse_wavedump_config",
    "write_compass",
    "write_wavedump",
]
