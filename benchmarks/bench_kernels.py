"""Speed of baseline + hit finding, side by side with strax on identical samples; prints only.

Set-up (as in the project's performance target): 200,000 records x 110 int16 samples, 100
channels, 20 % of the records with a negative pulse, 10 ns sampling, threshold 15 ADC.  Figures
are MB/s of raw int16 samples (MB = 1e6 bytes), medians of several runs after a warm-up.

Rows
----
baseline / find_hits / both   the kernels in this thread (``both`` makes new records each time,
                              as strax's figure copies its records each time)
both, records array reused    ``baseline(raw, out=...)`` into one array filled before: the same
                              work without the operating system's cost of handing out fresh
                              memory pages (a third of the time on a 2-core VM)
both, 2 workers               records split into 2 contiguous blocks, each block's baseline and
                              find_hits run in a thread (the kernels release the GIL)
Context, 1 / 2 workers        ``Context.get_array(run_id, "hits")`` with the built-in Records and
                              Hits plugins over 10 chunks, results not written to disk (strax's
                              reference runs with ``storage=[]`` too)
first call, fresh process     first baseline + find_hits in a new interpreter with the compiled
                              cache present (import time shown apart)

strax is timed by ``../shared/bench/strax_reference.py`` run with ``$STRAX_PY`` (or the venv
that ``../shared/bench/make_strax_venv.sh`` makes) on the same samples saved as .npy.

Run: ``.venv/bin/python benchmarks/bench_kernels.py`` (``--quick``: fewer records and repeats;
``--no-strax``: skip strax).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numba
import numpy as np

from wfa_notebook import dtypes
from wfa_notebook.datasets import synthetic_run
from wfa_notebook.processing import baseline, concatenate_hits, find_hits

THRESHOLD_ADC = 15
DT_NS = 10.0
N_CHANNELS = 100
REPO = Path(__file__).resolve().parents[1]
SHARED_BENCH = Path(os.environ.get("WFA_SHARED_BENCH", REPO.parent / "shared" / "bench"))


def interleaved_medians(runs: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median wall time of each function; the functions take turns (after one warm-up call each),
    so that load from other processes on the machine falls on every row alike."""
    for run in runs.values():
        run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def machine_load() -> str:
    """The 1-minute load average, to judge whether other work disturbed the figures."""
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "unknown"


@numba.njit(nogil=True)
def _spin(n: int) -> float:  # pragma: no cover - compiled
    """CPU work without memory traffic: how much a second thread can gain on this machine."""
    total = 0.0
    for i in range(n):
        total += np.sqrt(i * 1.0)
    return total


def spin_in_threads(pool: ThreadPoolExecutor, n_workers: int, n: int = 20_000_000) -> None:
    list(pool.map(_spin, [n // n_workers] * n_workers))


def make_raw_records(n_records: int) -> np.ndarray:
    """The benchmark run: synthetic records, 20 % with a pulse (the rest random triggers)."""
    run = synthetic_run(
        seed=2024, n_channels=N_CHANNELS, n_records=n_records, pulse_rate_hz=400.0,
        noise_record_fraction=0.8, dt_ns=DT_NS, n_samples=110, polarity="negative",
    )
    return run.records(), run


def kernels(raw: np.ndarray) -> np.ndarray:
    return find_hits(baseline(raw), threshold_adc=THRESHOLD_ADC)


def kernels_in_threads(raw: np.ndarray, pool: ThreadPoolExecutor, n_workers: int) -> np.ndarray:
    """baseline + find_hits on contiguous blocks, one per worker, filling one records array."""
    records = np.empty(len(raw), dtypes.record_dtype(raw.dtype["data"].shape[0]))
    edges = np.linspace(0, len(raw), n_workers + 1).astype(int)

    def block(k: int) -> np.ndarray:
        lo, hi = edges[k], edges[k + 1]
        baseline(raw[lo:hi], out=records[lo:hi])
        return find_hits(records[lo:hi], threshold_adc=THRESHOLD_ADC)

    # hits near a block edge may interleave in time with the next block's: sort once at the end
    return concatenate_hits(pool.map(block, range(n_workers)))


def context_runs(raw: np.ndarray, end_ns: int, storage: str) -> dict[str, Callable[[], object]] | str:
    """get_array('hits') through a Context with 1 and 2 workers, or why that is impossible."""
    try:
        from wfa_notebook.context import Context
        from wfa_notebook.io.chunking import rechunk_in_gaps
        from wfa_notebook.plugins import SourcePlugin
        from wfa_notebook.plugins.waveform import Hits, Records
    except ImportError as exc:
        return f"context not available ({exc})"

    # cut once, outside the timing, like strax's reference source, which slices at fixed edges
    pieces = list(rechunk_in_gaps([(raw, end_ns)], end_ns / 10, start_ns=0, end_ns=end_ns))

    class MemoryRawRecords(SourcePlugin):
        """The benchmark's raw records from memory, in 10 chunks cut in gaps."""

        provides = "raw_records"
        dtype = raw.dtype
        __version__ = "0.0.1"

        def iter_chunks(self):
            for start, end, part in pieces:
                yield self.make_chunk(part, start, end)

    class UnsavedRecords(Records):
        save = False

    class UnsavedHits(Hits):
        save = False

    runs: dict[str, Callable[[], object]] = {}
    for workers in (1, 2):
        context = Context(
            storage_dir=storage, register=[MemoryRawRecords, UnsavedRecords, UnsavedHits],
            config={"threshold_adc": float(THRESHOLD_ADC)}, max_workers=workers,
        )
        name = f"Context, {workers} worker" + ("s" if workers > 1 else "")
        runs[name] = lambda context=context: context.get_array("bench", "hits")
        try:
            runs[name]()
        except Exception as exc:  # a benchmark reports a broken path instead of stopping
            return f"context failed with {workers} worker(s): {type(exc).__name__}: {exc}"
    return runs


def fresh_process_first_call() -> dict[str, float] | str:
    """Import time and first-call time of baseline + find_hits in a new interpreter."""
    code = textwrap.dedent(
        """
        import json, time
        t0 = time.perf_counter()
        import numpy as np
        from wfa_notebook import dtypes
        from wfa_notebook.processing import baseline, find_hits
        t1 = time.perf_counter()
        raw = np.zeros(1000, dtypes.raw_record_dtype(110, np.int16))
        raw["length"], raw["dt"], raw["time"] = 110, 10.0, np.arange(1000) * 2000
        raw["data"] = 16000
        raw["data"][:, 60] = 15900
        t2 = time.perf_counter()
        hits = find_hits(baseline(raw), threshold_adc=15)
        t3 = time.perf_counter()
        print(json.dumps({"import_s": t1 - t0, "first_call_s": t3 - t2, "n_hits": len(hits)}))
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    if done.returncode != 0:
        return f"failed: {done.stderr.strip().splitlines()[-1:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def strax_figures(raw: np.ndarray, repeats: int) -> dict | str:
    """Run the strax reference on the same samples; its JSON result, or why it is unavailable."""
    script = SHARED_BENCH / "strax_reference.py"
    if not script.exists():
        return f"strax not available: {script} not found"
    python = os.environ.get("STRAX_PY")
    if not python:
        maker = SHARED_BENCH / "make_strax_venv.sh"
        if not maker.exists():
            return "strax not available: set STRAX_PY to a Python with strax 2.2.3"
        made = subprocess.run(["bash", str(maker)], capture_output=True, text=True)
        if made.returncode != 0:
            return f"strax not available: {maker.name} failed ({made.stderr.strip()[-200:]})"
        python = made.stdout.strip().splitlines()[-1]
    with tempfile.TemporaryDirectory() as folder:
        samples, channels = Path(folder) / "samples.npy", Path(folder) / "channels.npy"
        np.save(samples, raw["data"].astype(np.int16))
        np.save(channels, raw["channel"].astype(np.int16))
        done = subprocess.run(
            [python, str(script), str(samples), "--channels", str(channels), "--dt", str(int(DT_NS)),
             "--threshold", str(THRESHOLD_ADC), "--repeats", str(repeats)],
            capture_output=True, text=True,
        )
    if done.returncode != 0:
        return f"strax not available: reference script failed ({done.stderr.strip()[-300:]})"
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return f"strax not available: no JSON in its output ({done.stdout.strip()[-200:]})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--quick", action="store_true", help="20,000 records, 3 repeats")
    parser.add_argument("--no-strax", action="store_true", help="do not run the strax reference")
    args = parser.parse_args()
    if args.quick:
        args.records, args.repeats = 20_000, 3

    raw, run = make_raw_records(args.records)
    megabytes = raw["data"].size * 2 / 1e6
    with_pulse = np.isin(np.arange(len(raw)), run.truth()["event_number"]).mean()
    print(
        f"wfa_notebook kernels: {len(raw):,} records x {raw.dtype['data'].shape[0]} int16 samples, "
        f"{N_CHANNELS} channels, {with_pulse:.1%} with a pulse, dt {DT_NS:g} ns, threshold "
        f"{THRESHOLD_ADC} ADC; {megabytes:.1f} MB of raw samples; medians of {args.repeats} runs"
    )

    records = baseline(raw)
    hits = find_hits(records, threshold_adc=THRESHOLD_ADC)
    reused = baseline(raw)
    pool = ThreadPoolExecutor(max_workers=2)
    if not np.array_equal(kernels_in_threads(raw, pool, 2), hits):
        print("WARNING: the threaded kernels found different hits than the serial ones")
    runs: dict[str, Callable[[], object]] = {
        "baseline": lambda: baseline(raw),
        "find_hits": lambda: find_hits(records, threshold_adc=THRESHOLD_ADC),
        "baseline+find_hits": lambda: kernels(raw),
        "both, records array reused": lambda: find_hits(baseline(raw, out=reused), threshold_adc=THRESHOLD_ADC),
        "2 workers": lambda: kernels_in_threads(raw, pool, 2),
    }
    with tempfile.TemporaryDirectory(prefix="wfa-bench-") as storage:
        context = context_runs(raw, int(dtypes.endtime(raw).max()) + 1, storage)
        if isinstance(context, dict):
            runs.update(context)
        # timed among the others: shows whether the machine really gave this run two cores
        runs["cpu-only check, 1 thread"] = lambda: spin_in_threads(pool, 1)
        runs["cpu-only check, 2 threads"] = lambda: spin_in_threads(pool, 2)
        load_before = machine_load()
        ours = interleaved_medians(runs, args.repeats)
    pool.shutdown()
    cpu_check = ours.pop("cpu-only check, 1 thread") / ours.pop("cpu-only check, 2 threads")

    strax = None if args.no_strax else strax_figures(raw, args.repeats)
    strax_steps = strax.get("steps", {}) if isinstance(strax, dict) else {}
    strax_name = {
        "baseline": "baseline", "find_hits": "find_hits", "baseline+find_hits": "baseline+find_hits",
        "Context, 1 worker": "pipeline_1thread", "Context, 2 workers": "pipeline_2threads",
    }

    print()
    print(f"{'step':<28}{'wfa_notebook MB/s':>18}{'strax MB/s':>12}{'ratio':>8}")
    for step, seconds in ours.items():
        mine = megabytes / seconds
        theirs = strax_steps.get(strax_name.get(step, ""), {}).get("MB_per_s")
        other = f"{theirs:12.0f}{mine / theirs:7.1f}x" if theirs else f"{'-':>12}{'-':>8}"
        print(f"{step:<28}{mine:18.0f}{other}")
    print()
    found = f"hits found: wfa_notebook {len(hits):,}"
    print(found + (f", strax {strax['n_hits']:,}" if isinstance(strax, dict) else ""))
    print(f"scaling 1 -> 2 workers (kernels in threads): {ours['baseline+find_hits'] / ours['2 workers']:.2f}x")
    if isinstance(context, dict):
        print(f"scaling 1 -> 2 workers (Context): {ours['Context, 1 worker'] / ours['Context, 2 workers']:.2f}x")
    else:
        print(context)
    print(f"scaling 1 -> 2 threads of a CPU-only kernel timed alongside: {cpu_check:.2f}x (about 2 "
          f"when two cores were free; lower: other work or the hypervisor took a core)")
    print(f"load average of the machine before / after timing: {load_before} / {machine_load()} "
          f"(figures are trustworthy when it stays well below 1)")
    if strax is None:
        print("strax not run (--no-strax)")
    elif isinstance(strax, str):
        print(strax)
    else:
        print(f"strax {strax['strax']}: first call (compiled cache present) baseline "
              f"{strax_steps['baseline']['first_s']:.2f} s, find_hits {strax_steps['find_hits']['first_s']:.2f} s")
    first = fresh_process_first_call()
    if isinstance(first, dict):
        print(f"first call in a fresh process (compiled cache present): {first['first_call_s']:.3f} s "
              f"(import of numpy + wfa_notebook.processing {first['import_s']:.3f} s)")
    else:
        print(f"first call in a fresh process: {first}")


if __name__ == "__main__":
    main()
