"""How long the threshold explorer takes to react to a slider move; prints only.

Set-up: one chunk of a synthetic run held by :class:`ThresholdExplorerModel` with its default
``max_records`` (20,000 records x 110 int16 samples, 16 channels, 20 % of the records with a
pulse).  For each kind of move the median of several runs after a warm-up:

threshold move        find_hits on the held records (the baseline is kept)
baseline-samples move baseline subtraction + find_hits
waveform redraw       the panel's matplotlib figure drawn and encoded as PNG (the image sent
                      to the browser)
whole slider move     ThresholdExplorer: slider value set -> model -> labels and image updated

Run: ``.venv/bin/python benchmarks/bench_explorer.py`` (``--records N`` to change the chunk size).
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable

import wfa_notebook as wfa
from wfa_notebook.ui.explorer_model import DEFAULT_MAX_RECORDS, ThresholdExplorerModel


def median_ms(action: Callable[[int], None], repeats: int = 15) -> float:
    action(-1)  # warm-up: numba's compiled cache loads on the first call
    times = []
    for i in range(repeats):
        started = time.perf_counter()
        action(i)
        times.append(time.perf_counter() - started)
    return 1e3 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=DEFAULT_MAX_RECORDS, help="records in the held chunk")
    args = parser.parse_args()
    n_channels = 16
    # 20 % pulse records at 2 kHz of pulses per channel; long enough to fill the chunk
    duration_ns = int(args.records / n_channels / (2_000 / 0.2) * 1e9 * 1.1)
    with tempfile.TemporaryDirectory(prefix="wfa_bench_explorer_") as folder:
        context = wfa.default_context(folder, config=dict(
            synthetic_n_channels=n_channels, synthetic_duration_ns=duration_ns,
            synthetic_noise_record_fraction=0.8, chunk_duration_ns=duration_ns))
        model = ThresholdExplorerModel(context, "bench", max_records=args.records)
        print(f"held chunk: {len(model.raw_records)} records x {model.n_samples} samples, "
              f"{len(model.channels)} channels")
        rows = [
            ("threshold move", median_ms(lambda i: model.set(threshold=10.0 + (i % 5)))),
            ("baseline-samples move", median_ms(lambda i: model.set(baseline_samples=30 + (i % 5)))),
        ]
        try:
            from wfa_notebook.ui.explorer import ThresholdExplorer
        except ImportError as exc:  # ipywidgets missing: the model figures still stand
            print(f"panel not measured: {exc}")
        else:
            panel = ThresholdExplorer(context, "bench", display=False, max_records=args.records)
            rows.append(("waveform redraw", median_ms(lambda i: panel._draw(), repeats=7)))
            rows.append(("whole slider move", median_ms(
                lambda i: setattr(panel.threshold_slider, "value", 10.0 + (i % 5)), repeats=7)))
    for name, ms in rows:
        print(f"{name:24s} {ms:8.2f} ms")


if __name__ == "__main__":
    main()
