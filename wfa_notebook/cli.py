"""Command line: ``python -m wfa_notebook demo`` (also the ``wfa-notebook`` command)."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["main", "run_demo"]

CHAIN = ("raw_records", "records", "hits", "peaks", "peak_basics", "events", "event_basics")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wfa-notebook", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="Process the embedded synthetic run through the built-in chain")
    demo.add_argument("--outputs", default="outputs", help="Folder for plots and the cache (default: outputs)")
    demo.add_argument("--storage-dir", default=None, help="Cache folder (default: OUTPUTS/wfa_data)")
    demo.add_argument("--run-id", default="demo_run", help="Run id; it also seeds the synthetic run")
    demo.add_argument("--channels", type=int, default=16, help="Number of channels (default 16)")
    demo.add_argument("--duration-s", type=float, default=1.0, help="Run length in seconds (default 1.0)")
    demo.add_argument("--rate-hz", type=float, default=2000.0, help="Pulse rate per channel, Hz (default 2000)")
    demo.add_argument("--workers", type=int, default=None, help="Chunks processed at once (default: balancer)")
    demo.add_argument("--no-balance", action="store_true", help="Do not enable the load balancer")
    demo.add_argument("--fresh", action="store_true", help="Ignore the cache: recompute everything")
    demo.add_argument("--no-notebook", action="store_true",
                      help="Do not execute notebooks/01_quickstart.ipynb into OUTPUTS")
    args = parser.parse_args(argv)
    if args.command == "demo":
        run_demo(args)
    return 0


def run_demo(args: argparse.Namespace) -> dict[str, Any]:
    """Generate, process, summarise and plot the synthetic run; returns the summary numbers."""
    from . import default_context
    from .execution import disable_global_load_balancing, enable_global_load_balancing, get_executor_manager

    outputs = Path(args.outputs)
    outputs.mkdir(parents=True, exist_ok=True)
    storage = Path(args.storage_dir) if args.storage_dir else outputs / "wfa_data"
    config = {
        "synthetic_n_channels": args.channels,
        "synthetic_duration_ns": int(args.duration_s * 1e9),
        "synthetic_pulse_rate_hz": args.rate_hz,
        # about 20 chunks for the default run, so that chunks can run in parallel
        "chunk_duration_ns": max(int(args.duration_s * 1e9) // 20, 1_000_000),
    }
    context = default_context(storage_dir=storage, source="synthetic", config=config, max_workers=args.workers)
    if args.fresh:
        import shutil

        shutil.rmtree(storage / args.run_id, ignore_errors=True)

    print(f"wfa_notebook demo: run {args.run_id!r}, {args.channels} channels, {args.duration_s:g} s, "
          f"{args.rate_hz:g} Hz/channel (synthetic, seeded by the run id)")
    print(context.dependency_tree("event_basics"))
    _warm_up(context, storage)
    if not args.no_balance:
        enable_global_load_balancing(min_workers=1)
    try:
        started = time.perf_counter()
        context.make(args.run_id, "event_basics", progress=False)
        elapsed = time.perf_counter() - started
        stats = context.last_run
        active = get_executor_manager().active_balancer()
        balancer = None if active is None else {**active.get_statistics(), "decisions": active.recent_decisions(6)}
    finally:
        if not args.no_balance:
            disable_global_load_balancing()

    raw_mb = stats.nbytes.get("raw_records", 0) / 1e6
    written_mb = sum(stats.nbytes[t] for t in stats.computed if t != "raw_records") / 1e6
    print()
    print(f"{'data type':<14}{'rows':>10}{'MB':>10}  from")
    for data_type in CHAIN:
        if data_type in stats.rows:
            how = "computed" if data_type in stats.computed else "cache"
            print(f"{data_type:<14}{stats.rows[data_type]:>10}{stats.nbytes[data_type] / 1e6:>10.2f}  {how}")
    if raw_mb:
        print(f"processed {raw_mb:.1f} MB of raw records in {elapsed:.2f} s: {raw_mb / elapsed:.0f} MB/s "
              f"(generating them and writing {written_mb:.0f} MB of cache included)")
    else:
        print(f"everything was loaded from the cache in {elapsed:.2f} s (use --fresh to recompute)")
    print(f"cache: {context.storage.root / args.run_id}")
    if balancer:
        _print_balancer(balancer)

    accuracy = _truth_summary(context, args.run_id)
    plots = _plots(context, args.run_id, outputs)
    for path in plots:
        print(f"plot: {path}")
    if not args.no_notebook:
        _quickstart_notebook(outputs)
    return {"elapsed_s": elapsed, "rows": dict(stats.rows), "accuracy": accuracy, "plots": plots}


def _quickstart_notebook(outputs: Path) -> None:
    """Execute the quickstart notebook (a source checkout has it) and save it with its plots."""
    notebook = Path(__file__).resolve().parents[1] / "notebooks" / "01_quickstart.ipynb"
    if not notebook.is_file():
        print("notebook: notebooks/01_quickstart.ipynb is not here (not a source checkout); skipped")
        return
    from .ui.notebooks import execute_notebook

    started = time.perf_counter()
    target = outputs / "01_quickstart.ipynb"
    execute_notebook(notebook, target, timeout=300)
    print(f"notebook: {target} (executed in {time.perf_counter() - started:.1f} s)")


def _warm_up(context, storage: Path) -> None:
    """Run the chain once on a tiny run, so kernels are compiled (first use only, then cached on
    disk) before the timed run, and the throughput printed is that of the processing."""
    import tempfile

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="wfa_warm_up_", dir=storage.parent) as tmp:
        tiny = context.new_context(storage_dir=tmp, max_workers=1,
                                   config={"synthetic_duration_ns": 1_000_000, "synthetic_n_channels": 2})
        tiny.make("warm_up", "event_basics", progress=False)
    print(f"kernels ready in {time.perf_counter() - started:.2f} s (compiled on first use, then cached)")


def _print_balancer(stats: dict[str, Any]) -> None:
    print(f"load balancer: {stats.get('total_tasks', 0)} tasks in {stats.get('total_calls', 0)} calls, "
          f"{stats.get('failed_tasks', 0)} failed, mean task {1e3 * (stats.get('avg_duration') or 0):.1f} ms, "
          f"workers {stats.get('current_workers')} (allowed {stats.get('min_workers')}-{stats.get('max_workers')})")
    for entry in stats.get("decisions", []):
        print(f"  decision: {entry.get('workers')} workers: {entry.get('reason')}")


def _truth_summary(context, run_id: str) -> dict[str, float]:
    """Hit efficiency against the synthetic truth, for pulses well above the noise."""
    from .datasets.truth import pulses_found
    from .plugins.sources import SyntheticSource

    source = context.configured_plugin(run_id, "raw_records")
    if not isinstance(source, SyntheticSource):
        return {}
    run = source.make_run()
    truth = run.truth()
    hits = context.get_array(run_id, "hits", progress=False)
    noise = run.config.noise_rms_adc
    big = truth[truth["amplitude_adc"] >= 5 * noise]
    found = int(pulses_found(big, hits).sum())
    efficiency = found / max(len(big), 1)
    print(f"truth: {len(truth)} pulses; hits found for {found} of {len(big)} pulses above 5 x noise RMS "
          f"({100 * efficiency:.2f} %)")
    return {"efficiency": efficiency, "n_truth": float(len(truth))}


def _plots(context, run_id: str, outputs: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    from . import plot

    records = context.get_array(run_id, "records", progress=False)
    hits = context.get_array(run_id, "hits", progress=False)
    peaks = context.get_array(run_id, "peak_basics", progress=False)
    paths = []
    if len(hits):
        # the record holding the largest hit of the run
        biggest = hits[np.argmax(hits["area_adc_ns"])]
        i = int(np.flatnonzero((records["channel"] == biggest["channel"]) & (records["time"] == biggest["record_time"]))[0])
        threshold = float(biggest["threshold_adc"])
        ax = plot.plot_record(records[i], hits, threshold_adc=threshold)
        paths.append(_save(ax, outputs / "waveform_with_hits.png"))
    areas = peaks["area_adc_ns"][peaks["area_adc_ns"] > 0]
    bins = np.geomspace(areas.min() / 1.5, areas.max() * 1.5, 80) if len(areas) else 10
    ax = plot.plot_area_spectrum(areas, bins=bins, title="Peak area spectrum")
    ax.set_xscale("log")
    paths.append(_save(ax, outputs / "peak_area_spectrum.png"))
    return paths


def _save(ax, path: Path) -> Path:
    ax.figure.savefig(path, dpi=110)
    return path


if __name__ == "__main__":
    sys.exit(main())
