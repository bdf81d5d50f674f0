"""The threshold explorer's model: hit finding re-run on one chunk as its options change.

Plain Python and numpy, no widgets: :class:`ThresholdExplorerModel` holds one chunk of raw records
of a run, re-runs :func:`~wfa_notebook.processing.baseline` and
:func:`~wfa_notebook.processing.find_hits` on it whenever an option changes, and counts hits per
channel.  :meth:`ThresholdExplorerModel.apply` writes the chosen options into the Context's
configuration, so the next ``get_array`` (hits, peaks, events ...) uses them.
:class:`wfa_notebook.ui.explorer.ThresholdExplorer` is the ipywidgets panel over it.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np

from ..errors import WfaConfigError
from ..processing import baseline, find_hits

__all__ = ["ThresholdExplorerModel", "THRESHOLD_UNITS", "DEFAULT_MAX_RECORDS"]

#: Units of the explorer's threshold: ADC counts above the baseline, or times the baseline RMS.
THRESHOLD_UNITS = ("adc", "rms")

#: Records kept from the displayed chunk.  20,000 records of 110 samples take ~2 ms through
#: find_hits and ~6 ms through baseline + find_hits on one core of a 2-core VM
#: (benchmarks/bench_explorer.py), far below the ~100 ms at which an update stops feeling immediate.
DEFAULT_MAX_RECORDS = 20_000


class ThresholdExplorerModel:
    """One chunk of raw records and the hits found in it with the current options.

    Parameters
    ----------
    context : wfa_notebook.Context
        Provides ``raw_records`` (any source) and the ``records``/``hits`` plugins whose options
        are tuned; their current values are the starting point.
    run_id : str
        Run to look at.
    channel : int, optional
        Channel shown first (default: the lowest channel in the chunk).
    chunk_index : int
        Which chunk of ``raw_records`` to hold (0: the first).
    max_records : int
        Keep at most this many records of the chunk (the first ones in time), so that a change
        of option is re-computed quickly also for large chunks; rates use the time they span.

    Notes
    -----
    One threshold is tuned at a time, in ADC or in units of the baseline RMS; the other kind is
    0 both in the explorer's hit finding and in what :meth:`apply` writes.  A per-channel
    threshold list in the context starts the explorer at the shown channel's value; Apply then
    writes one number for all channels.  Options are written per plugin (``{"hits": {...}}``),
    which takes precedence over global keys of the same name.

    Attributes
    ----------
    raw_records : np.ndarray
        The records held, all channels, time-ordered.
    start_ns, end_ns : int
        Time span the records cover, ns since run start (rates are counted over it).
    channels : list of int
        Channels present in the records.
    records, hits : np.ndarray
        Baseline-subtracted records and hits found with the current options.
    last_recompute_s : float
        Wall time of the latest re-computation (baseline when it had to run, and hit finding).

    Examples
    --------
    >>> model = ThresholdExplorerModel(context, "run0", channel=3)          # doctest: +SKIP
    >>> model.set(threshold=25.0, threshold_unit="adc").hit_counts()[3]    # doctest: +SKIP
    >>> model.apply()   # the next context.get_array("run0", "hits") uses threshold_adc=25
    """

    def __init__(self, context: Any, run_id: str, channel: int | None = None, chunk_index: int = 0,
                 max_records: int = DEFAULT_MAX_RECORDS):
        self.context = context
        self.run_id = run_id
        if not isinstance(max_records, (int, np.integer)) or max_records < 1:
            msg = f"ThresholdExplorerModel: max_records must be a whole number >= 1; got {max_records!r}."
            raise WfaConfigError(msg)
        self.raw_records, self.start_ns, self.end_ns = _load_chunk(context, run_id, chunk_index, int(max_records))
        self.channels: list[int] = sorted(int(c) for c in np.unique(self.raw_records["channel"]))
        self.n_samples = int(self.raw_records.dtype["data"].shape[0])
        current = _current_options(context, run_id)
        self.polarity: str = current["polarity"]
        self.min_consecutive_samples: int = int(current["min_consecutive_samples"])
        self.baseline_samples: int = int(current["baseline_samples"])
        self.left_extension_samples: int = int(current["left_extension_samples"])
        self.right_extension_samples: int = int(current["right_extension_samples"])
        self.channel: int = self.channels[0]
        if channel is not None:
            self._check_channel(channel)
            self.channel = int(channel)
        threshold_adc = _for_channel(current["threshold_adc"], self.channel)
        threshold_rms = _for_channel(current["threshold_rms"], self.channel)
        # One threshold is tuned at a time; a context that uses only the RMS one starts in RMS.
        self.threshold_unit: str = "rms" if threshold_rms > 0 and threshold_adc == 0 else "adc"
        self.threshold: float = threshold_rms if self.threshold_unit == "rms" else threshold_adc
        self.record_index: int = 0
        self.records: np.ndarray = np.zeros(0)
        self.hits: np.ndarray = np.zeros(0)
        self.last_recompute_s = 0.0
        self._records_made_with: int | None = None
        self.recompute()

    def __repr__(self) -> str:
        return (
            f"ThresholdExplorerModel(run {self.run_id!r}, {len(self.raw_records)} records in "
            f"[{self.start_ns}, {self.end_ns}) ns; threshold {self.threshold:g} "
            f"{'ADC' if self.threshold_unit == 'adc' else 'x RMS'}: {len(self.hits)} hits)"
        )

    # --- changing options --------------------------------------------------------------------

    def set(self, **changes: Any) -> ThresholdExplorerModel:
        """Change options and re-run hit finding once; returns the model.

        Keywords: ``threshold``, ``threshold_unit`` ("adc" or "rms"; changing it alone converts
        the threshold with the channel's median baseline RMS, so the line stays where it was),
        ``baseline_samples``, ``left_extension_samples``, ``right_extension_samples``,
        ``channel``, ``record_index``.
        """
        known = ("threshold", "threshold_unit", "baseline_samples", "left_extension_samples",
                 "right_extension_samples", "channel", "record_index")
        unknown = sorted(set(changes) - set(known))
        if unknown:
            msg = f"ThresholdExplorerModel.set: unknown options {unknown}; known: {list(known)}."
            raise WfaConfigError(msg)
        # Everything is checked before anything changes: a refused call leaves the model as it was.
        new: dict[str, Any] = {}
        channel = self.channel
        if "channel" in changes:
            self._check_channel(changes["channel"])
            channel = int(changes["channel"])
            if channel != self.channel:
                new["channel"], new["record_index"] = channel, 0
        if "threshold_unit" in changes:
            unit = changes["threshold_unit"]
            if unit not in THRESHOLD_UNITS:
                msg = f"ThresholdExplorerModel: threshold_unit must be one of {list(THRESHOLD_UNITS)}; got {unit!r}."
                raise WfaConfigError(msg)
            if unit != self.threshold_unit and "threshold" not in changes:
                new["threshold"] = self._converted_threshold(unit, channel)
            new["threshold_unit"] = unit
        if "threshold" in changes:
            new["threshold"] = _threshold_value(changes["threshold"])
        for name in ("baseline_samples", "left_extension_samples", "right_extension_samples"):
            if name in changes:
                new[name] = _sample_count(name, changes[name], minimum=1 if name == "baseline_samples" else 0)
        if "record_index" in changes:
            index = changes["record_index"]
            n = int(np.count_nonzero(self.raw_records["channel"] == channel))
            if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < n:
                msg = f"ThresholdExplorerModel: record_index must be in [0, {n - 1}] for channel {channel}; got {index!r}."
                raise WfaConfigError(msg)
            new["record_index"] = int(index)
        for name, value in new.items():
            setattr(self, name, value)
        if new.keys() - {"channel", "record_index"}:
            # hits cover every channel of the chunk: picking another record needs no new hits
            self.recompute()
        return self

    def recompute(self) -> None:
        """Re-run baseline (only when ``baseline_samples`` changed) and hit finding on the chunk."""
        started = time.perf_counter()
        if self._records_made_with != self.baseline_samples:
            self.records = baseline(self.raw_records, baseline_samples=self.baseline_samples, polarity=self.polarity)
            self._records_made_with = self.baseline_samples
        adc, rms = self._thresholds()
        self.hits = find_hits(
            self.records,
            threshold_adc=adc,
            threshold_rms=rms,
            left_extension_samples=self.left_extension_samples,
            right_extension_samples=self.right_extension_samples,
            min_consecutive_samples=self.min_consecutive_samples,
        )
        self.last_recompute_s = time.perf_counter() - started

    # --- what is shown -----------------------------------------------------------------------

    @property
    def duration_ns(self) -> int:
        """Time the held records span, ns (at least 1)."""
        return max(int(self.end_ns - self.start_ns), 1)

    def channel_record_indices(self) -> np.ndarray:
        """Indices into ``raw_records`` of the records of the chosen channel."""
        return np.flatnonzero(self.raw_records["channel"] == self.channel)

    @property
    def n_channel_records(self) -> int:
        """Number of records of the chosen channel in the chunk."""
        return int(np.count_nonzero(self.raw_records["channel"] == self.channel))

    def _row(self) -> int:
        indices = self.channel_record_indices()
        return int(indices[min(self.record_index, len(indices) - 1)])

    @property
    def raw_record(self) -> np.void:
        """The displayed raw record (chosen channel, ``record_index``)."""
        return self.raw_records[self._row()]

    @property
    def record(self) -> np.void:
        """The displayed record after baseline subtraction (``baseline_adc``, ``baseline_rms_adc``)."""
        return self.records[self._row()]

    @property
    def record_threshold_adc(self) -> float:
        """Threshold of the displayed record in ADC above its baseline (RMS thresholds converted)."""
        if self.threshold_unit == "adc":
            return float(self.threshold)
        return float(self.threshold * self.record["baseline_rms_adc"])

    def record_hits(self) -> np.ndarray:
        """Hits found in the displayed record."""
        rec = self.raw_record
        mine = (self.hits["channel"] == rec["channel"]) & (self.hits["record_time"] == rec["time"])
        return self.hits[mine]

    def hit_counts(self) -> dict[int, int]:
        """Hits per channel in the chunk (every channel present, also those without hits)."""
        found = np.bincount(self.hits["channel"].astype(np.int64), minlength=max(self.channels) + 1)
        return {c: int(found[c]) for c in self.channels}

    def hit_rates_hz(self) -> dict[int, float]:
        """Hits per second per channel over the chunk's time span."""
        seconds = self.duration_ns / 1e9
        return {c: n / seconds for c, n in self.hit_counts().items()}

    def records_with_hits(self) -> dict[int, float]:
        """Fraction of each channel's records with at least one hit.

        Unlike the hit count it never rises with the threshold (at a low threshold, noise
        excursions close together merge into one hit), so it is the quantity to scan.
        """
        n_records = np.bincount(self.raw_records["channel"].astype(np.int64), minlength=max(self.channels) + 1)
        with_hit = np.zeros(len(n_records), np.int64)
        if len(self.hits):
            # a record is identified by (channel, record_time): one record per channel at a time
            pairs = np.unique(np.stack([self.hits["channel"].astype(np.int64), self.hits["record_time"]]), axis=1)
            with_hit = np.bincount(pairs[0], minlength=len(n_records))
        return {c: float(with_hit[c] / n_records[c]) for c in self.channels}

    def channel_summary(self) -> list[dict[str, Any]]:
        """Per channel: records, hits, hit rate in Hz and the fraction of records with a hit."""
        n_records = np.bincount(self.raw_records["channel"].astype(np.int64), minlength=max(self.channels) + 1)
        counts = self.hit_counts()
        rates = self.hit_rates_hz()
        fractions = self.records_with_hits()
        return [
            {
                "channel": c,
                "records": int(n_records[c]),
                "hits": counts[c],
                "hit_rate_hz": rates[c],
                "records_with_hits": fractions[c],
            }
            for c in self.channels
        ]

    def threshold_range(self) -> tuple[float, float, float]:
        """(minimum, maximum, step) that makes sense for the threshold in its current unit."""
        if self.threshold_unit == "rms":
            return 0.0, max(30.0, float(np.ceil(self.threshold))), 0.1
        # Up to the highest pulse, but at most 50 x the noise RMS: thresholds sit at a few RMS,
        # and a slider spanning large pulses would leave a few pixels for the useful range.
        highest = float(self.records["data"].max()) if len(self.records) else 100.0
        rms = float(np.median(self.records["baseline_rms_adc"])) if len(self.records) else 0.0
        top = min(highest * 1.1, 50.0 * rms) if rms > 0 else highest * 1.1
        top = max(100.0, float(np.ceil(top / 10.0) * 10.0), float(np.ceil(self.threshold)))
        return 0.0, top, 0.5

    def plot(self, ax: Any = None):
        """Draw the displayed record with its baseline, threshold and hits (see plot.plot_raw_record)."""
        from ..plot import plot_raw_record

        rec = self.record
        return plot_raw_record(
            self.raw_record,
            baseline_adc=float(rec["baseline_adc"]),
            threshold_adc=self.record_threshold_adc,
            hits=self.record_hits(),
            baseline_samples=self.baseline_samples,
            polarity=self.polarity,
            ax=ax,
            title=(
                f"channel {self.channel}, record {self.record_index + 1} of {self.n_channel_records} "
                f"(t = {int(rec['time'])} ns): {len(self.record_hits())} hit(s)"
            ),
        )

    # --- writing the choice back ---------------------------------------------------------------

    def config(self) -> dict[str, dict[str, Any]]:
        """The chosen options as a per-plugin Context configuration."""
        adc, rms = (self.threshold, 0.0) if self.threshold_unit == "adc" else (0.0, self.threshold)
        return {
            "records": {"baseline_samples": self.baseline_samples},
            "hits": {
                "threshold_adc": float(adc),
                "threshold_rms": float(rms),
                "left_extension_samples": self.left_extension_samples,
                "right_extension_samples": self.right_extension_samples,
            },
        }

    def apply(self) -> dict[str, dict[str, Any]]:
        """Write :meth:`config` into the Context's configuration and return it.

        Results made with other options stay in the cache under their own lineage; the next
        ``get_array`` of ``hits`` (or anything built on them) computes with the new options.
        """
        chosen = self.config()
        self.context.set_config(chosen)
        return chosen

    # --- helpers -------------------------------------------------------------------------------

    def _check_channel(self, channel: Any) -> None:
        if isinstance(channel, bool) or not isinstance(channel, (int, np.integer)) or int(channel) not in self.channels:
            msg = (
                f"ThresholdExplorerModel: channel {channel!r} has no records in the displayed chunk of "
                f"run {self.run_id!r}; channels present: {self.channels}."
            )
            raise WfaConfigError(msg)

    def _thresholds(self) -> tuple[float, float]:
        # The other kind of threshold is set to 0, so what is shown is exactly what applies.
        return (self.threshold, 0.0) if self.threshold_unit == "adc" else (0.0, self.threshold)

    def _converted_threshold(self, unit: str, channel: int) -> float:
        mine = self.records["channel"] == channel
        rms = float(np.median(self.records["baseline_rms_adc"][mine])) if np.any(mine) else 0.0
        if rms <= 0:
            return self.threshold
        value = self.threshold / rms if unit == "rms" else self.threshold * rms
        return round(value, 1)


def _load_chunk(context: Any, run_id: str, chunk_index: int, max_records: int) -> tuple[np.ndarray, int, int]:
    """Raw records of chunk ``chunk_index`` (at most ``max_records``) and the time span they cover."""
    if isinstance(chunk_index, bool) or not isinstance(chunk_index, (int, np.integer)) or chunk_index < 0:
        msg = f"ThresholdExplorerModel: chunk_index must be a whole number >= 0; got {chunk_index!r}."
        raise WfaConfigError(msg)
    chosen = None
    seen = 0
    stream = context.get_iter(run_id, "raw_records", progress=False)
    try:
        for i, chunk in enumerate(stream):
            seen = i + 1
            if i == chunk_index:
                chosen = chunk
                break
    finally:
        stream.close()  # stop the source early: only this chunk is needed
    if chosen is None or len(chosen.data) == 0:
        what = f"has only {seen} chunks" if chosen is None else f"has no records in chunk {chunk_index}"
        msg = f"ThresholdExplorerModel: run {run_id!r} {what}; choose chunk_index below {seen} or another run."
        raise WfaConfigError(msg)
    data = chosen.data
    start, end = int(chosen.start), int(chosen.end)
    if len(data) > max_records:
        end = int(data["time"][max_records])  # rates count over the time the kept records span
        data = data[:max_records]
    return np.ascontiguousarray(data), start, end


def _current_options(context: Any, run_id: str) -> dict[str, Any]:
    """Option values of the records and hits plugins, resolved as they would run for ``run_id``."""
    values: dict[str, Any] = {}
    for target in ("records", "hits"):
        if target not in context.plugins:
            msg = (
                f"ThresholdExplorerModel: the context has no plugin providing {target!r}; use "
                "wfa_notebook.default_context(...) or register Records and Hits."
            )
            raise WfaConfigError(msg)
        plugin = context.configured_plugin(run_id, target)
        values.update({name: getattr(plugin, name) for name in type(plugin).options()})
        if target == "records":
            values["polarity"] = plugin.resolved_polarity()
    return values


def _threshold_value(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if isinstance(value, bool) or not np.isfinite(number) or number < 0:
        msg = f"ThresholdExplorerModel: threshold must be finite and >= 0; got {value!r}."
        raise WfaConfigError(msg)
    return number


def _sample_count(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        msg = f"ThresholdExplorerModel: {name} must be a whole number of samples >= {minimum}; got {value!r}."
        raise WfaConfigError(msg)
    return int(value)


def _for_channel(value: Any, channel: int) -> float:
    """A threshold option (number or per-channel list) for one channel."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return float(value[channel]) if channel < len(value) else 0.0
    return float(value)
