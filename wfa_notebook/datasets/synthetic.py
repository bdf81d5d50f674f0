"""Deterministic synthetic digitizer runs with a truth table, generated lazily in time slabs.

The run is cut into fixed internal time slabs.  Each slab has its own random generator seeded
from ``(seed, slab index)`` and leaves a quiet margin at both ends, so

* the content does not depend on how the caller chunks the run (chunk boundaries can always be
  placed at slab edges, where no record of any channel is present);
* a run larger than memory is produced one slab at a time.

Records are self-triggered, like a CAEN digitizer in channel-trigger mode: one record of
``n_samples`` per triggering pulse, with the pulse onset ``pre_trigger_samples`` after the start
of the record.  A later pulse of the same channel that lands inside an open record window appears
in that record (and in the truth table); a pulse that arrives while the channel is dead (too soon
after a record, or while a previous pulse has not decayed) is lost and is not in the truth table.
So the baseline part of every record (the samples before the trigger) never contains a pulse.
Optional noise-only records (random triggers) serve to measure fake hits.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from functools import cached_property

import numba
import numpy as np

from wfa_notebook import dtypes
from wfa_notebook.errors import WfaConfigError
from wfa_notebook.io.chunking import DEFAULT_CHUNK_MIN_GAP_NS, rechunk_in_gaps

__all__ = ["SyntheticConfig", "SyntheticRun", "synthetic_run", "PULSE_SHAPES", "AMPLITUDE_SPECTRA"]

#: Pulse shapes understood by the generator.
PULSE_SHAPES = ("exponential", "gaussian", "square")
#: Amplitude spectra and their parameters (in ADC counts).
AMPLITUDE_SPECTRA = {
    "exponential": ("scale",),
    "uniform": ("low", "high"),
    "fixed": ("amplitude",),
    "gaussian": ("mean", "sigma"),
}

# Target number of records per internal slab: ~1-3 MB of samples, large enough for vectorised
# numpy to be efficient, small enough to stay well inside the CPU caches of the later stages.
_RECORDS_PER_SLAB = 20_000


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
    """Frozen parameters of a synthetic run (see :func:`synthetic_run` for their meaning)."""

    seed: int
    n_channels: int
    duration_ns: int
    pulse_rate_hz: float
    polarity: str
    baseline_adc: float
    noise_rms_adc: float
    dt_ns: float
    n_samples: int
    pre_trigger_samples: int
    pulse_shape: str
    rise_time_ns: float
    decay_time_ns: float
    sigma_ns: float
    width_ns: float
    amplitude_spectrum: tuple
    noise_record_fraction: float
    sample_dtype: str
    adc_bits: int
    slab_duration_ns: int

    @property
    def record_duration_ns(self) -> int:
        """Length of one record window in ns (rounded up)."""
        return dtypes.duration_ns(self.n_samples, self.dt_ns)

    @property
    def tail_ns(self) -> float:
        """Time after the onset when a pulse has decayed to nothing, ns."""
        if self.pulse_shape == "exponential":
            return 10.0 * (self.decay_time_ns + self.rise_time_ns)
        if self.pulse_shape == "gaussian":
            return 10.0 * self.sigma_ns
        return self.width_ns

    @property
    def noise_rate_hz(self) -> float:
        """Rate of noise-only (random-trigger) records per channel, Hz."""
        f = self.noise_record_fraction
        return self.pulse_rate_hz * f / (1.0 - f)

    @property
    def adc_range(self) -> tuple[float, float]:
        """Smallest and largest sample value the digitizer can write."""
        return 0.0, float(2**self.adc_bits - 1)

    @property
    def n_slabs(self) -> int:
        """Number of internal generation slabs."""
        return max(1, -(-self.duration_ns // self.slab_duration_ns))


def synthetic_run(
    seed: int = 0,
    n_channels: int = 16,
    duration_ns: float = 10_000_000,
    pulse_rate_hz: float = 2_000.0,
    polarity: str = "negative",
    baseline_adc: float | None = None,
    noise_rms_adc: float = 3.0,
    dt_ns: float = 4.0,
    n_samples: int = 110,
    pre_trigger_samples: int | None = None,
    pulse_shape: str = "exponential",
    rise_time_ns: float = 8.0,
    decay_time_ns: float = 40.0,
    sigma_ns: float = 10.0,
    width_ns: float = 40.0,
    amplitude_spectrum: tuple = ("uniform", 30.0, 500.0),
    noise_record_fraction: float = 0.0,
    sample_dtype: np.dtype | type | str = np.int16,
    adc_bits: int | None = None,
    n_records: int | None = None,
    slab_duration_ns: int | None = None,
) -> SyntheticRun:
    """Describe a deterministic synthetic run; samples are generated lazily when asked for.

    Parameters
    ----------
    seed
        Seed of the run; the same seed and parameters give identical records and truth.
    n_channels
        Number of channels (numbered 0 .. n_channels - 1).
    duration_ns
        Length of the run in ns (run start is 0).
    pulse_rate_hz
        Rate of physical pulses per channel, Hz (a few are lost to dead time).
    polarity
        ``"negative"`` (pulses go down from the baseline, most PMT set-ups) or ``"positive"``.
    baseline_adc
        Baseline level, ADC counts.  Default: 90 % of the ADC range for negative pulses, 10 % for
        positive ones, leaving room for the pulses.
    noise_rms_adc
        RMS of the white Gaussian noise, ADC counts.
    dt_ns
        Sample period, ns (float: 4.0 for a 250 MS/s board, 1.333... for a DRS4 at 750 MS/s).
    n_samples
        Samples per record.
    pre_trigger_samples
        Samples before the onset of the triggering pulse: all of them are pulse-free.
        Default ``min(50, n_samples // 2)``.
    pulse_shape
        ``"exponential"``: difference of two exponentials with ``rise_time_ns`` and
        ``decay_time_ns`` time constants; ``"gaussian"``: Gaussian of ``sigma_ns`` whose onset
        is 5 sigma before its maximum; ``"square"``: flat top of ``width_ns``.
    amplitude_spectrum
        Peak height above baseline in ADC counts: ``("exponential", scale)``,
        ``("uniform", low, high)``, ``("fixed", amplitude)`` or ``("gaussian", mean, sigma)``
        (clipped at 0).
    noise_record_fraction
        Fraction of all records that are noise-only random triggers (0 <= f < 1).  The benchmark
        set-up "20 % of records with a pulse" is ``noise_record_fraction=0.8``.
    sample_dtype
        Sample type of the raw records: int16/uint16 (rounded to whole ADC counts like a real
        digitizer) or float32 (like x742 boards, not rounded).
    adc_bits
        ADC resolution; samples are clipped to ``[0, 2**adc_bits - 1]``.  Default 14 for integer
        samples, 12 for float32 (DRS4).
    n_records
        If given, overrides ``duration_ns`` so that the expected number of records (pulse and
        noise records, all channels) is ``n_records``.  The actual number is Poisson-distributed
        around it, slightly lower because of dead time.
    slab_duration_ns
        Internal generation slab; the default aims at ~20,000 records per slab.  It is part of
        the configuration: changing it changes the random content.

    Returns
    -------
    SyntheticRun

    Examples
    --------
    The benchmark set-up, 100 channels, about 200,000 records of 110 samples, 20 % with a pulse,
    10 ns sampling:

    >>> run = synthetic_run(n_channels=100, n_records=200_000, pulse_rate_hz=400.0,
    ...                     noise_record_fraction=0.8, dt_ns=10.0)
    >>> for start, end, records in run.iter_chunks(chunk_duration_ns=1e8): ...
    """
    sample_dtype = np.dtype(sample_dtype)
    if sample_dtype.kind not in "iuf":
        msg = f"synthetic_run: sample_dtype must be an integer or float type, got {sample_dtype}."
        raise WfaConfigError(msg)
    if adc_bits is None:
        adc_bits = 12 if sample_dtype.kind == "f" else 14
    adc_bits = int(adc_bits)
    if sample_dtype.kind in "iu":
        max_bits = sample_dtype.itemsize * 8 - (1 if sample_dtype.kind == "i" else 0)
        if not 1 <= adc_bits <= max_bits:
            msg = (f"synthetic_run: adc_bits={adc_bits} does not fit in {sample_dtype} samples "
                   f"(at most {max_bits}); use a wider sample_dtype or fewer bits.")
            raise WfaConfigError(msg)
    if polarity not in ("negative", "positive"):
        msg = f"synthetic_run: polarity must be 'negative' or 'positive', got {polarity!r}."
        raise WfaConfigError(msg)
    if pulse_shape not in PULSE_SHAPES:
        msg = f"synthetic_run: pulse_shape must be one of {PULSE_SHAPES}, got {pulse_shape!r}."
        raise WfaConfigError(msg)
    if pulse_shape == "exponential" and not 0 < rise_time_ns < decay_time_ns:
        msg = (f"synthetic_run: exponential pulses need 0 < rise_time_ns < decay_time_ns, got "
               f"rise {rise_time_ns} ns and decay {decay_time_ns} ns.")
        raise WfaConfigError(msg)
    amplitude_spectrum = _check_spectrum(amplitude_spectrum)
    if not 0.0 <= noise_record_fraction < 1.0:
        msg = f"synthetic_run: noise_record_fraction must be in [0, 1), got {noise_record_fraction}."
        raise WfaConfigError(msg)
    if n_channels < 1 or n_samples < 2 or dt_ns <= 0:
        msg = (f"synthetic_run: need n_channels >= 1, n_samples >= 2 and dt_ns > 0; got "
               f"{n_channels}, {n_samples}, {dt_ns}.")
        raise WfaConfigError(msg)
    if pre_trigger_samples is None:
        pre_trigger_samples = min(50, int(n_samples) // 2)
    if not 0 <= pre_trigger_samples < n_samples:
        msg = (f"synthetic_run: pre_trigger_samples must be in [0, n_samples={n_samples}), got "
               f"{pre_trigger_samples}.")
        raise WfaConfigError(msg)
    if pulse_rate_hz < 0 or noise_rms_adc < 0:
        msg = f"synthetic_run: pulse_rate_hz and noise_rms_adc must be >= 0, got {pulse_rate_hz}, {noise_rms_adc}."
        raise WfaConfigError(msg)
    full_scale = 2**adc_bits - 1
    if baseline_adc is None:
        baseline_adc = round((0.9 if polarity == "negative" else 0.1) * full_scale)
    total_rate_hz = n_channels * pulse_rate_hz / (1.0 - noise_record_fraction)
    if n_records is not None:
        if total_rate_hz <= 0:
            msg = "synthetic_run: n_records needs pulse_rate_hz > 0."
            raise WfaConfigError(msg)
        duration_ns = n_records / total_rate_hz * 1e9
    duration_ns = int(math.ceil(duration_ns))
    if duration_ns <= 0:
        msg = f"synthetic_run: duration_ns must be > 0, got {duration_ns}."
        raise WfaConfigError(msg)
    if slab_duration_ns is None:
        slab = _RECORDS_PER_SLAB / total_rate_hz * 1e9 if total_rate_hz > 0 else duration_ns
        # whole microseconds, and long enough that the quiet margins are a small fraction
        slab = max(slab, 200.0 * (n_samples * dt_ns + 10.0 * (decay_time_ns + rise_time_ns + sigma_ns) + width_ns))
        slab_duration_ns = int(math.ceil(slab / 1000.0)) * 1000
    config = SyntheticConfig(
        seed=int(seed),
        n_channels=int(n_channels),
        duration_ns=duration_ns,
        pulse_rate_hz=float(pulse_rate_hz),
        polarity=polarity,
        baseline_adc=float(baseline_adc),
        noise_rms_adc=float(noise_rms_adc),
        dt_ns=float(dt_ns),
        n_samples=int(n_samples),
        pre_trigger_samples=int(pre_trigger_samples),
        pulse_shape=pulse_shape,
        rise_time_ns=float(rise_time_ns),
        decay_time_ns=float(decay_time_ns),
        sigma_ns=float(sigma_ns),
        width_ns=float(width_ns),
        amplitude_spectrum=amplitude_spectrum,
        noise_record_fraction=float(noise_record_fraction),
        sample_dtype=sample_dtype.str,
        adc_bits=adc_bits,
        slab_duration_ns=int(slab_duration_ns),
    )
    return SyntheticRun(config)


def _check_spectrum(spectrum) -> tuple:
    """Validate ``("kind", *params)`` against :data:`AMPLITUDE_SPECTRA`."""
    if isinstance(spectrum, str):
        spectrum = (spectrum,)
    spectrum = tuple(spectrum)
    kind = spectrum[0] if spectrum else None
    if kind not in AMPLITUDE_SPECTRA or len(spectrum) != 1 + len(AMPLITUDE_SPECTRA[kind]):
        expected = ", ".join(f"({k!r}, {', '.join(p)})" for k, p in AMPLITUDE_SPECTRA.items())
        msg = f"synthetic_run: amplitude_spectrum must be one of {expected}; got {spectrum!r}."
        raise WfaConfigError(msg)
    return (kind, *(float(p) for p in spectrum[1:]))


class SyntheticRun:
    """A synthetic run: frozen configuration plus lazy generation of records and truth.

    Attributes
    ----------
    config : SyntheticConfig
    """

    def __init__(self, config: SyntheticConfig):
        self.config = config

    def __repr__(self) -> str:
        c = self.config
        return (f"SyntheticRun(seed={c.seed}, n_channels={c.n_channels}, duration_ns={c.duration_ns}, "
                f"pulse_rate_hz={c.pulse_rate_hz}, polarity={c.polarity!r})")

    # --- description -------------------------------------------------------------------------
    @property
    def dtype(self) -> np.dtype:
        """Dtype of the raw records."""
        return dtypes.raw_record_dtype(self.config.n_samples, np.dtype(self.config.sample_dtype))

    @property
    def duration_ns(self) -> int:
        """Length of the run, ns."""
        return self.config.duration_ns

    @cached_property
    def n_records(self) -> int:
        """Total number of records (computed without generating the samples)."""
        return int(sum(len(_layout(self.config, k)[0]) for k in range(self.config.n_slabs)))

    # --- data --------------------------------------------------------------------------------
    def iter_chunks(
        self, chunk_duration_ns: float | None = None, min_gap_ns: int = DEFAULT_CHUNK_MIN_GAP_NS
    ) -> Iterator[tuple[int, int, np.ndarray]]:
        """Yield ``(start_ns, end_ns, raw_records)`` continuous, time-ordered chunks.

        Samples are generated one internal slab at a time, so memory use stays near one chunk.
        Chunks cover ``[0, duration_ns)`` and end only in gaps where no record of any channel is
        present; the records do not depend on ``chunk_duration_ns``.

        Parameters
        ----------
        chunk_duration_ns
            Wanted chunk length, ns: a chunk ends at the first gap at least this long after its
            start (or after its first record, so quiet stretches join the next chunk).
            Default: one chunk per internal slab.
        """
        if chunk_duration_ns is not None and chunk_duration_ns <= 0:
            msg = f"SyntheticRun.iter_chunks: chunk_duration_ns must be > 0, got {chunk_duration_ns}."
            raise WfaConfigError(msg)
        yield from rechunk_in_gaps(
            self._iter_slabs(), chunk_duration_ns, start_ns=0, end_ns=self.config.duration_ns,
            source="synthetic run", min_gap_ns=min_gap_ns,
        )

    def records(self) -> np.ndarray:
        """All raw records of the run at once (sorted by time, then channel)."""
        parts = [rec for rec, _ in self._iter_slabs()]
        return np.concatenate(parts) if parts else np.zeros(0, self.dtype)

    def truth(self) -> np.ndarray:
        """Truth table of every recorded pulse, sorted by time (see ``synthetic_truth_dtype``).

        ``time_ns`` is the time of the pulse maximum (rounded to the ns); ``amplitude_adc`` the
        peak height above baseline (positive for both polarities); ``area_adc_ns`` the full
        integral of the pulse, and ``area_in_record_adc_ns`` the part inside its record window
        (smaller for a pile-up pulse near the end of a record).
        """
        return self._truth_all

    @cached_property
    def _truth_all(self) -> np.ndarray:
        parts = []
        offset = 0
        for k in range(self.config.n_slabs):
            layout = _layout(self.config, k)
            parts.append(_truth_of(self.config, layout, offset))
            offset += len(layout[0])
        out = np.concatenate(parts) if parts else np.zeros(0, dtypes.synthetic_truth_dtype)
        out.flags.writeable = False
        return out

    def _iter_slabs(self) -> Iterator[tuple[np.ndarray, int]]:
        """Yield ``(records, slab_end_ns)`` per internal slab."""
        offset = 0
        c = self.config
        for k in range(c.n_slabs):
            layout = _layout(c, k)
            records = _render(c, layout, offset)
            offset += len(records)
            yield records, min((k + 1) * c.slab_duration_ns, c.duration_ns)


# --- generation ----------------------------------------------------------------------------------

def _exponential_peak(rise_ns: float, decay_ns: float) -> tuple[float, float]:
    """Time of the maximum after the onset (ns) and the height there of exp(-t/decay) - exp(-t/rise)."""
    tp = math.log(decay_ns / rise_ns) * rise_ns * decay_ns / (decay_ns - rise_ns)
    return tp, math.exp(-tp / decay_ns) - math.exp(-tp / rise_ns)


def _pulse_shape(c: SyntheticConfig, t: np.ndarray) -> np.ndarray:
    """Pulse of unit peak height at ``t`` ns after its onset (0 before the onset)."""
    if c.pulse_shape == "exponential":
        tr, td = c.rise_time_ns, c.decay_time_ns
        _, norm = _exponential_peak(tr, td)
        tt = np.maximum(t, 0.0)
        return np.where(t > 0, (np.exp(-tt / td) - np.exp(-tt / tr)) / norm, 0.0)
    if c.pulse_shape == "gaussian":
        return np.where(t > 0, np.exp(-0.5 * ((t - 5.0 * c.sigma_ns) / c.sigma_ns) ** 2), 0.0)
    return ((t >= 0) & (t < c.width_ns)).astype(np.float64)


def _peak_offset_and_area(c: SyntheticConfig) -> tuple[float, float]:
    """Time of the maximum after the onset (ns) and area (ns) of the unit-height pulse."""
    if c.pulse_shape == "exponential":
        tr, td = c.rise_time_ns, c.decay_time_ns
        tp, norm = _exponential_peak(tr, td)
        return tp, (td - tr) / norm
    if c.pulse_shape == "gaussian":
        return 5.0 * c.sigma_ns, c.sigma_ns * math.sqrt(2.0 * math.pi)
    return 0.5 * c.width_ns, c.width_ns


def _amplitudes(c: SyntheticConfig, rng: np.random.Generator, n: int) -> np.ndarray:
    kind, *p = c.amplitude_spectrum
    if kind == "exponential":
        return rng.exponential(p[0], n)
    if kind == "uniform":
        return rng.uniform(p[0], p[1], n)
    if kind == "fixed":
        return np.full(n, p[0])
    return np.maximum(rng.normal(p[0], p[1], n), 0.0)


@numba.njit(nogil=True, cache=True)
def _assign_records(channel, t_onset, is_pulse, pre_ns, window_ns, tail_ns):  # pragma: no cover
    """Greedy self-trigger logic over candidates sorted by (channel, onset time).

    Returns, per candidate, the index of the record it belongs to (-1: lost to dead time) and
    whether it opened that record; per record, its start time (ns, float) and channel.
    """
    n = len(channel)
    rec_of = np.full(n, -1, np.int64)
    opened = np.zeros(n, np.bool_)
    rec_start = np.empty(n, np.float64)
    rec_channel = np.empty(n, np.int64)
    n_rec = 0
    cur_ch = -1
    win_start = 0.0
    win_end = -np.inf
    last_pulse = -np.inf
    for i in range(n):
        if channel[i] != cur_ch:
            cur_ch = channel[i]
            win_end = -np.inf
            last_pulse = -np.inf
        t = t_onset[i]
        if is_pulse[i] and t < win_end and t >= win_start:
            rec_of[i] = n_rec - 1
        else:
            start = math.floor(t - pre_ns)
            if start >= win_end and start >= last_pulse + tail_ns:
                rec_start[n_rec] = start
                rec_channel[n_rec] = cur_ch
                rec_of[i] = n_rec
                opened[i] = True
                win_start = start
                win_end = start + window_ns
                n_rec += 1
        if is_pulse[i]:
            last_pulse = max(last_pulse, t)
    return rec_of, opened, rec_start[:n_rec], rec_channel[:n_rec]


def _layout(c: SyntheticConfig, k: int):
    """Records and pulses of slab ``k`` (no samples yet); deterministic in (seed, k)."""
    rng = np.random.default_rng([c.seed, k])
    s0 = k * c.slab_duration_ns
    s1 = min((k + 1) * c.slab_duration_ns, c.duration_ns)
    pre_ns = c.pre_trigger_samples * c.dt_ns
    window_ns = c.n_samples * c.dt_ns
    # quiet margins: a record and any tail that could reach into it stay inside the slab
    lo = s0 + c.tail_ns + pre_ns + 2.0
    hi = s1 - c.record_duration_ns - 2.0
    span_s = max(hi - lo, 0.0) * 1e-9
    n_pulse = rng.poisson(c.pulse_rate_hz * span_s, c.n_channels)
    n_noise = rng.poisson(c.noise_rate_hz * span_s, c.n_channels)
    ch = np.concatenate([np.repeat(np.arange(c.n_channels), n_pulse),
                         np.repeat(np.arange(c.n_channels), n_noise)])
    is_pulse = np.zeros(len(ch), np.bool_)
    is_pulse[: n_pulse.sum()] = True
    t = rng.uniform(lo, hi, len(ch)) if hi > lo else np.zeros(len(ch))
    amp = _amplitudes(c, rng, len(ch))
    order = np.lexsort((t, ch))
    ch, t, is_pulse, amp = ch[order], t[order], is_pulse[order], amp[order]
    rec_of, opened, rec_start, rec_channel = _assign_records(ch, t, is_pulse, pre_ns, window_ns, c.tail_ns)
    # records in time order (channel breaks ties); renumber candidates accordingly
    rec_order = np.lexsort((rec_channel, rec_start))
    rank = np.empty_like(rec_order)
    rank[rec_order] = np.arange(len(rec_order))
    kept = is_pulse & (rec_of >= 0)
    pulses = np.zeros(
        int(kept.sum()),
        [("record", np.int64), ("t_onset", np.float64), ("amp", np.float64), ("opened", np.bool_)],
    )
    pulses["opened"] = opened[kept]
    pulses["record"] = rank[rec_of[kept]]
    pulses["t_onset"] = t[kept]
    pulses["amp"] = amp[kept]
    pulses = pulses[np.lexsort((pulses["t_onset"], pulses["record"]))]
    return rec_start[rec_order].astype(np.int64), rec_channel[rec_order].astype(np.int16), pulses, rng


def _signal(c: SyntheticConfig, rec_start: np.ndarray, pulses: np.ndarray) -> np.ndarray:
    """Noise-free pulse contribution (positive, ADC) of each pulse over its record's samples."""
    sample_t = np.arange(c.n_samples) * c.dt_ns
    rel = rec_start[pulses["record"]][:, None] + sample_t[None, :] - pulses["t_onset"][:, None]
    return pulses["amp"][:, None] * _pulse_shape(c, rel)


def _truth_of(c: SyntheticConfig, layout, offset: int) -> np.ndarray:
    rec_start, rec_channel, pulses, _ = layout
    tp, unit_area = _peak_offset_and_area(c)
    out = np.zeros(len(pulses), dtypes.synthetic_truth_dtype)
    out["channel"] = rec_channel[pulses["record"]]
    out["time_ns"] = np.rint(pulses["t_onset"] + tp).astype(np.int64)
    out["amplitude_adc"] = pulses["amp"]
    out["area_adc_ns"] = pulses["amp"] * unit_area
    out["area_in_record_adc_ns"] = _signal(c, rec_start, pulses).sum(axis=1) * c.dt_ns
    out["onset_ns"] = pulses["t_onset"]
    out["event_number"] = pulses["record"] + offset
    out["record_time"] = rec_start[pulses["record"]]
    out["is_trigger"] = pulses["opened"]
    order = np.argsort(out["time_ns"], kind="stable")
    return out[order]


def _render(c: SyntheticConfig, layout, offset: int) -> np.ndarray:
    """Raw records of one slab: baseline + noise + pulses, rounded and clipped like an ADC."""
    rec_start, rec_channel, pulses, rng = layout
    n = len(rec_start)
    records = np.zeros(n, dtypes.raw_record_dtype(c.n_samples, np.dtype(c.sample_dtype)))
    records["time"] = rec_start
    records["length"] = c.n_samples
    records["dt"] = c.dt_ns
    records["channel"] = rec_channel
    records["event_number"] = np.arange(offset, offset + n)
    wave = rng.standard_normal((n, c.n_samples), dtype=np.float32)
    wave *= np.float32(c.noise_rms_adc)
    sign = -1.0 if c.polarity == "negative" else 1.0
    if len(pulses):
        signal = (sign * _signal(c, rec_start, pulses)).astype(np.float32)
        first = np.ones(len(pulses), np.bool_)
        first[1:] = pulses["record"][1:] != pulses["record"][:-1]
        # trigger pulses: one per record, plain fancy-index add; pile-up pulses: unbuffered add
        wave[pulses["record"][first]] += signal[first]
        if not first.all():
            np.add.at(wave, pulses["record"][~first], signal[~first])
    wave += np.float32(c.baseline_adc)
    low, high = c.adc_range
    if np.dtype(c.sample_dtype).kind in "iu":
        np.rint(wave, out=wave)
    np.clip(wave, low, high, out=wave)
    records["data"] = wave
    return records
