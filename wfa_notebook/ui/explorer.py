"""The threshold explorer: sliders for the hit-finding options beside the waveform they act on.

A thin ipywidgets skin over :class:`~wfa_notebook.ui.explorer_model.ThresholdExplorerModel`,
which does all the work: each widget change calls ``model.set(...)`` and one ``_refresh()``
copies the model's state back into the widgets.

>>> from wfa_notebook.ui.explorer import ThresholdExplorer
>>> explorer = ThresholdExplorer(context, "run0", channel=2)     # doctest: +SKIP
"""
from __future__ import annotations

import contextlib
import html
import io
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..errors import WfaDependencyError
from .explorer_model import DEFAULT_MAX_RECORDS, ThresholdExplorerModel

try:
    import ipywidgets as widgets
except ImportError as exc:  # pragma: no cover - ipywidgets is a dependency; a clear message if removed
    msg = (
        "The threshold explorer needs ipywidgets: pip install ipywidgets (and use JupyterLab >= 4 "
        "or Notebook >= 7). Without widgets, use wfa_notebook.ui.explorer_model.ThresholdExplorerModel."
    )
    raise WfaDependencyError(msg) from exc

__all__ = ["ThresholdExplorer"]

# Figure size and resolution of the waveform image: ~30 kB to send per slider step, drawn and
# encoded in 100-160 ms on a slow 2-core VM (benchmarks/bench_explorer.py: "waveform redraw"),
# against ~2 ms for the hit finding itself.  The front end sends a slider's next value only
# once the kernel has answered the previous one, so a slow redraw skips steps but never lags.
_FIGSIZE_IN = (8.0, 3.4)
_DPI = 90
#: Axes position (left, bottom, width, height) in figure fractions: room for the axis labels.
_AXES_RECT = (0.11, 0.15, 0.87, 0.75)


class ThresholdExplorer(widgets.VBox):
    """Tune hit finding with sliders while looking at a waveform and at hit rates per channel.

    Parameters
    ----------
    context : wfa_notebook.Context
        A context with a ``raw_records`` source and the ``records`` and ``hits`` plugins
        (e.g. :func:`wfa_notebook.default_context`); its current options are the start values.
    run_id : str
        Run to look at; one chunk of its raw records is held in memory.
    channel : int, optional
        Channel shown first (default: the lowest one present).
    display : bool
        Show the panel now (in a notebook).  ``display=False`` builds it without showing it,
        for tests or to place it inside another layout.
    chunk_index, max_records
        Which chunk of raw records to hold, and at most how many of its records
        (see :class:`~wfa_notebook.ui.explorer_model.ThresholdExplorerModel`).

    Attributes
    ----------
    model : ThresholdExplorerModel
        The plain model doing the work (usable without widgets).
    threshold_slider, threshold_unit_buttons, baseline_slider, left_extension_slider,
    right_extension_slider, channel_picker, record_picker, apply_button : ipywidgets widgets
        The controls; setting their ``.value`` (or calling ``apply_button.click()``) has the
        same effect as using them.
    hit_count_label, channel_table, waveform_image, status_label, timing_label : ipywidgets widgets
        What is shown: hits of the shown channel and of all channels, hits per channel, the
        waveform, what Apply wrote, and how long the latest update took.
    """

    def __init__(self, context: Any, run_id: str, channel: int | None = None, display: bool = True,
                 chunk_index: int = 0, max_records: int = DEFAULT_MAX_RECORDS):
        super().__init__()
        self.model = ThresholdExplorerModel(context, run_id, channel=channel, chunk_index=chunk_index,
                                            max_records=max_records)
        self.last_draw_s = 0.0
        self._syncing = False
        self._applied: dict[str, Any] | None = None  # options written by the latest Apply
        self._figure = _new_figure()
        self._build()
        self._refresh()
        if display:
            from IPython.display import display as show

            show(self)

    # --- construction --------------------------------------------------------------------------

    def _build(self) -> None:
        model = self.model
        style = {"description_width": "170px"}
        wide = widgets.Layout(width="540px")
        low, high, step = model.threshold_range()
        self.threshold_slider = widgets.FloatSlider(
            value=model.threshold, min=low, max=high, step=step, description="threshold",
            style=style, layout=wide, readout_format=".1f",
        )
        self.threshold_slider.add_class("wfa-explorer-threshold")
        self.threshold_unit_buttons = widgets.ToggleButtons(
            options=[("ADC", "adc"), ("\u00d7 baseline RMS", "rms")], value=model.threshold_unit,
            description="threshold unit", style={**style, "button_width": "150px"},
        )
        n = model.n_samples
        self.baseline_slider = widgets.IntSlider(
            value=model.baseline_samples, min=1, max=n, description="baseline samples", style=style, layout=wide,
        )
        self.left_extension_slider = widgets.IntSlider(
            value=model.left_extension_samples, min=0, max=n, description="left extension [samples]",
            style=style, layout=wide,
        )
        self.right_extension_slider = widgets.IntSlider(
            value=model.right_extension_samples, min=0, max=n, description="right extension [samples]",
            style=style, layout=wide,
        )
        self.channel_picker = widgets.Dropdown(
            options=model.channels, value=model.channel, description="channel", style=style,
        )
        self.record_picker = widgets.IntSlider(
            value=0, min=0, max=max(model.n_channel_records - 1, 0), description="record of channel",
            style=style, layout=wide,
        )
        self.apply_button = widgets.Button(
            description="Apply to context", button_style="primary", icon="check",
            tooltip="Write these options into the context's config: the next get_array uses them",
        )
        self.hit_count_label = widgets.HTML()
        self.hit_count_label.add_class("wfa-explorer-hit-count")
        self.channel_table = widgets.HTML(layout=widgets.Layout(max_height="220px", overflow="auto"))
        self.waveform_image = widgets.Image(format="png", layout=widgets.Layout(width="720px"))
        self.status_label = widgets.HTML()
        self.status_label.add_class("wfa-explorer-status")
        self.timing_label = widgets.HTML()
        self.timing_label.add_class("wfa-explorer-timing")

        controls = {
            self.threshold_slider: "threshold",
            self.threshold_unit_buttons: "threshold_unit",
            self.baseline_slider: "baseline_samples",
            self.left_extension_slider: "left_extension_samples",
            self.right_extension_slider: "right_extension_samples",
            self.channel_picker: "channel",
            self.record_picker: "record_index",
        }
        for control, option in controls.items():
            control.observe(self._changed(option), names="value")
        self.apply_button.on_click(self._apply)

        sliders = widgets.VBox(layout=widgets.Layout(min_width="560px"), children=[
            self.threshold_unit_buttons, self.threshold_slider, self.baseline_slider,
            self.left_extension_slider, self.right_extension_slider, self.channel_picker,
            self.record_picker, widgets.HBox([self.apply_button, self.status_label]), self.timing_label,
        ])
        summary = widgets.VBox([self.hit_count_label, self.channel_table], layout=widgets.Layout(margin="0 0 0 16px"))
        self.add_class("wfa-threshold-explorer")
        self.children = [widgets.HBox([sliders, summary]), self.waveform_image]

    # --- reacting to the controls -------------------------------------------------------------

    def _changed(self, option: str):
        def handler(change: dict[str, Any]) -> None:
            if self._syncing:  # a value copied from the model, not a person's move
                return
            self.model.set(**{option: change["new"]})
            self._refresh()

        return handler

    def _apply(self, _button: Any = None) -> None:
        chosen = self.model.apply()
        self._applied = chosen
        hits = chosen["hits"]
        threshold = (f"threshold_adc = {hits['threshold_adc']:g}" if self.model.threshold_unit == "adc"
                     else f"threshold_rms = {hits['threshold_rms']:g}")
        self.status_label.value = (
            f"Applied: {threshold}, baseline_samples = {chosen['records']['baseline_samples']}, "
            f"extensions {hits['left_extension_samples']} / {hits['right_extension_samples']} samples. "
            "The next get_array uses them."
        )

    @contextlib.contextmanager
    def _copying_model(self) -> Iterator[None]:
        self._syncing = True
        try:
            yield
        finally:
            self._syncing = False

    # --- one refresh: model state into widgets --------------------------------------------------

    def _refresh(self) -> None:
        model = self.model
        with self._copying_model():
            # the range always contains the model's threshold, so the slider never clips it
            low, high, step = model.threshold_range()
            self.threshold_slider.min = low
            self.threshold_slider.max = high
            self.threshold_slider.step = step
            self.threshold_slider.value = model.threshold
            self.threshold_unit_buttons.value = model.threshold_unit
            self.record_picker.max = max(model.n_channel_records - 1, 0)
            self.record_picker.value = model.record_index
            self.channel_picker.value = model.channel
        counts = model.hit_counts()
        rates = model.hit_rates_hz()
        total = sum(counts.values())
        unit = "ADC" if model.threshold_unit == "adc" else "\u00d7 RMS"
        self.hit_count_label.value = (
            f"<b><span class='wfa-hit-count'>{counts[model.channel]}</span> hits</b> in channel "
            f"{model.channel} ({rates[model.channel]:.1f} Hz); {total} hits in all channels "
            f"over {model.duration_ns / 1e6:.3g} ms at threshold {model.threshold:g} {unit}"
        )
        self.channel_table.value = _channel_table_html(model)
        started = time.perf_counter()
        self.waveform_image.value = self._draw()
        self.last_draw_s = time.perf_counter() - started
        if self._applied is not None and self._applied != model.config():
            self.status_label.value = "<i>Changed since the last Apply: the context still has the applied options.</i>"
        self.timing_label.value = (
            f"<small>hit finding {model.last_recompute_s * 1e3:.1f} ms, plot {self.last_draw_s * 1e3:.0f} ms</small>"
        )

    def _draw(self) -> bytes:
        figure = self._figure
        figure.clear()
        # Fixed margins instead of a layout engine, which would cost a second text layout per
        # draw; Figure.clear() forgets subplots_adjust, so the rectangle is given every time.
        self.model.plot(ax=figure.add_axes(_AXES_RECT))
        return _png(figure)


def _new_figure():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # A bare Figure with an Agg canvas: no pyplot state, no inline-backend double display.
    figure = Figure(figsize=_FIGSIZE_IN, dpi=_DPI)
    FigureCanvasAgg(figure)
    return figure


def _png(figure: Any) -> bytes:
    """The figure as PNG, drawn once (savefig would draw again) and encoded fast."""
    from PIL import Image  # a dependency of matplotlib

    figure.canvas.draw()
    buffer = io.BytesIO()
    # level 1: a few ms instead of ~40 ms for the default level, for a ~10 % larger image
    Image.fromarray(np.asarray(figure.canvas.buffer_rgba())).save(buffer, format="png", compress_level=1)
    return buffer.getvalue()


def _channel_table_html(model: ThresholdExplorerModel) -> str:
    bold = ' style="font-weight:bold"'
    rows = "".join(
        f"<tr{bold if row['channel'] == model.channel else ''}>"
        f"<td>{row['channel']}</td><td>{row['records']}</td><td>{row['hits']}</td>"
        f"<td>{row['hit_rate_hz']:.1f}</td><td>{100 * row['records_with_hits']:.0f} %</td></tr>"
        for row in model.channel_summary()
    )
    head = "".join(f"<th>{html.escape(h)}</th>" for h in ("channel", "records", "hits", "hit rate [Hz]", "records with hits"))
    return f"<table class='wfa-explorer-channels'><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
