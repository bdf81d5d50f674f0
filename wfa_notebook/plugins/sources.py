"""Source plugins providing ``raw_records``: the synthetic generator, WaveDump and CoMPASS files.

Each yields continuous chunks cut only in gaps where no record of any channel is present.  The
chunk length (``chunk_duration_ns``) is not tracked in the lineage: it changes how the run is
cut, never its content.
"""
from __future__ import annotations

import functools
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from wfa_notebook import dtypes
from wfa_notebook.chunk import Chunk
from wfa_notebook.datasets.synthetic import SyntheticRun, synthetic_run
from wfa_notebook.io.chunking import DEFAULT_CHUNK_MIN_GAP_NS
from wfa_notebook.io.common import files_fingerprint
from wfa_notebook.io.compass import CompassReader
from wfa_notebook.io.wavedump import WaveDumpReader
from wfa_notebook.io.wavedump_config import parse_wavedump_config
from wfa_notebook.plugins.base import SourcePlugin
from wfa_notebook.plugins.options import REQUIRED, Option

__all__ = ["SyntheticSource", "WaveDumpSource", "CompassSource"]

_GAP_HELP = ("Chunks are cut only in gaps between records at least this long, ns; keep it wider "
             "than any time window of later plugins (event extensions) so results do not depend on chunking")
_CHUNK_HELP = ("Wanted chunk length, ns; a chunk ends at the first gap after it (None: the "
               "reader's natural blocks). Does not change results.")


class _ReaderSource(SourcePlugin):
    """A source backed by a reader (or synthetic run) with ``dtype`` and ``iter_chunks()``.

    The reader is built once per configured plugin (a plugin lives for one request), not once
    for the dtype, once for the fingerprint and once for the chunks.
    """

    chunk_duration_ns = Option(default=None, type=(int, float, type(None)), track=False, help=_CHUNK_HELP)
    chunk_min_gap_ns = Option(default=DEFAULT_CHUNK_MIN_GAP_NS, type=int, track=False, help=_GAP_HELP)

    def reader(self):
        raise NotImplementedError

    @functools.cached_property
    def _reader(self):
        return self.reader()

    def infer_dtype(self) -> np.dtype:
        return self._reader.dtype

    def iter_chunks(self) -> Iterator[Chunk]:
        for start, end, records in self._reader.iter_chunks(self.chunk_duration_ns, self.chunk_min_gap_ns):
            yield self.make_chunk(records, start, end)


class SyntheticSource(_ReaderSource):
    """Raw records of a deterministic synthetic run (:func:`wfa_notebook.datasets.synthetic_run`).

    Every option name starts with ``synthetic_`` so that it never collides with the options of
    the processing plugins.  Without ``synthetic_seed`` the seed is derived from the run id, so
    different run ids give different (but reproducible) runs.
    """

    provides = "raw_records"
    depends_on = ()
    __version__ = "0.1.0"
    # the reading code decides the records as much as the options do: hashed into the lineage
    code_dependencies = (sys.modules[SyntheticRun.__module__], dtypes)

    synthetic_seed = Option(default=None, type=(int, type(None)),
                            help="Random seed; None: derived from the run id (CRC32)")
    synthetic_n_channels = Option(default=16, type=int, help="Number of channels")
    synthetic_duration_ns = Option(default=100_000_000, type=(int, float), help="Run length, ns")
    synthetic_pulse_rate_hz = Option(default=2_000.0, type=float, help="Pulse rate per channel, Hz")
    # Named like the Records option on purpose: one global key {"polarity": ...} sets both, so
    # the generated pulses and their processing cannot disagree.
    polarity = Option(default="negative", type=str, choices=("negative", "positive"),
                      help="Pulse direction from the baseline (also tells Records how to flip them)")
    synthetic_baseline_adc = Option(default=None, type=(float, type(None)),
                                    help="Baseline level, ADC (None: 90 % of range for negative pulses, 10 % for positive)")
    synthetic_noise_rms_adc = Option(default=3.0, type=float, help="White-noise RMS, ADC")
    synthetic_dt_ns = Option(default=4.0, type=float, help="Sample period, ns")
    synthetic_n_samples = Option(default=110, type=int, help="Samples per record")
    synthetic_pre_trigger_samples = Option(default=None, type=(int, type(None)),
                                           help="Pulse-free samples before the trigger (None: min(50, n_samples // 2))")
    synthetic_pulse_shape = Option(default="exponential", type=str, choices=("exponential", "gaussian", "square"),
                                   help="Pulse shape")
    synthetic_rise_time_ns = Option(default=8.0, type=float, help="Rise time constant of exponential pulses, ns")
    synthetic_decay_time_ns = Option(default=40.0, type=float, help="Decay time constant of exponential pulses, ns")
    synthetic_sigma_ns = Option(default=10.0, type=float, help="Sigma of gaussian pulses, ns")
    synthetic_width_ns = Option(default=40.0, type=float, help="Width of square pulses, ns")
    synthetic_amplitude_spectrum = Option(
        default=("uniform", 30.0, 500.0), type=(tuple, list),
        help="Pulse heights, ADC: ('exponential', scale) | ('uniform', low, high) | ('fixed', a) | ('gaussian', mean, sigma)",
    )
    synthetic_noise_record_fraction = Option(default=0.0, type=float,
                                             help="Fraction of records that hold only noise (0 <= f < 1)")
    synthetic_sample_dtype = Option(default="int16", type=str, choices=("int16", "uint16", "float32"),
                                    help="Sample type of the raw records")
    def make_run(self) -> SyntheticRun:
        """The synthetic run these options describe (raises WfaConfigError if they are invalid)."""
        seed = self.synthetic_seed
        if seed is None:
            seed = zlib.crc32(self.run_id.encode())
        return synthetic_run(
            seed=seed,
            n_channels=self.synthetic_n_channels,
            duration_ns=self.synthetic_duration_ns,
            pulse_rate_hz=self.synthetic_pulse_rate_hz,
            polarity=self.polarity,
            baseline_adc=self.synthetic_baseline_adc,
            noise_rms_adc=self.synthetic_noise_rms_adc,
            dt_ns=self.synthetic_dt_ns,
            n_samples=self.synthetic_n_samples,
            pre_trigger_samples=self.synthetic_pre_trigger_samples,
            pulse_shape=self.synthetic_pulse_shape,
            rise_time_ns=self.synthetic_rise_time_ns,
            decay_time_ns=self.synthetic_decay_time_ns,
            sigma_ns=self.synthetic_sigma_ns,
            width_ns=self.synthetic_width_ns,
            amplitude_spectrum=tuple(self.synthetic_amplitude_spectrum),
            noise_record_fraction=self.synthetic_noise_record_fraction,
            sample_dtype=np.dtype(self.synthetic_sample_dtype),
        )

    def reader(self) -> SyntheticRun:
        return self.make_run()

    def pulse_polarity(self) -> str:
        return self.polarity


class WaveDumpSource(_ReaderSource):
    """Raw records from CAEN WaveDump files (:class:`wfa_notebook.io.WaveDumpReader`).

    ``wavedump_path`` may contain ``{run_id}``, e.g. ``"/data/{run_id}/binary"``.
    """

    provides = "raw_records"
    depends_on = ()
    __version__ = "0.1.0"
    # the reading code decides the records as much as the options do: hashed into the lineage
    code_dependencies = (sys.modules[WaveDumpReader.__module__], sys.modules[parse_wavedump_config.__module__],
                         sys.modules[files_fingerprint.__module__], dtypes)

    wavedump_path = Option(default=REQUIRED, type=(str, Path),
                           help="WaveDump folder (wave_N files) or file; '{run_id}' is replaced by the run id")
    wavedump_config = Option(default=None, type=(str, Path, dict, bool, type(None)),
                             help="WaveDump config file or dict (None: look next to the data and in ../meta; False: none)")
    wavedump_record_length = Option(default=None, type=(int, type(None)),
                                    help="Samples per record, for files without headers and no config")
    wavedump_sample_dtype = Option(default=None, type=(str, type(None)),
                                   help="Sample type in the files: uint16, float32, uint8 (None: detected)")
    wavedump_dt_ns = Option(default=None, type=(float, type(None)),
                            help="Sample period, ns (None: DRS4_FREQUENCY of the config, else board default)")
    wavedump_ttt_tick_ns = Option(default=None, type=(float, type(None)),
                                  help="Trigger-time-tag tick, ns (None: 8.533 ns on x742, 8 ns otherwise)")
    def reader(self) -> WaveDumpReader:
        """The configured reader (its ``info()`` tells polarity, sample period, board id)."""
        path = str(self.wavedump_path).replace("{run_id}", self.run_id)
        return WaveDumpReader(
            path,
            self.wavedump_config,
            record_length=self.wavedump_record_length,
            sample_dtype=self.wavedump_sample_dtype,
            dt_ns=self.wavedump_dt_ns,
            ttt_tick_ns=self.wavedump_ttt_tick_ns,
        )

    def input_fingerprint(self) -> str:
        return self._reader.fingerprint()

    def pulse_polarity(self) -> str | None:
        return self._reader.info().get("polarity")


class CompassSource(_ReaderSource):
    """Raw records from CAEN CoMPASS CSV files (:class:`wfa_notebook.io.CompassReader`).

    ``compass_path`` may contain ``{run_id}``.
    """

    provides = "raw_records"
    depends_on = ()
    __version__ = "0.1.0"
    # the reading code decides the records as much as the options do: hashed into the lineage
    code_dependencies = (sys.modules[CompassReader.__module__], sys.modules[files_fingerprint.__module__], dtypes)

    compass_path = Option(default=REQUIRED, type=(str, Path),
                          help="CoMPASS CSV file or folder; '{run_id}' is replaced by the run id")
    compass_dt_ns = Option(default=None, type=(float, type(None)),
                           help="Sample period, ns (None: from the board model in the file name)")
    compass_sample_dtype = Option(default="int16", type=str, choices=("int16", "uint16", "float32"),
                                  help="Sample type of the raw records")
    def reader(self) -> CompassReader:
        """The configured reader."""
        path = str(self.compass_path).replace("{run_id}", self.run_id)
        return CompassReader(path, self.compass_dt_ns, output_dtype=self.compass_sample_dtype)

    def input_fingerprint(self) -> str:
        return self._reader.fingerprint()
