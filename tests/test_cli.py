from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from wfa_notebook.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_demo_processes_the_chain_and_writes_plots(tmp_path, capsys):
    args = ["demo", "--outputs", str(tmp_path), "--duration-s", "0.05", "--channels", "4", "--workers", "1",
            "--no-notebook"]  # notebooks are executed by test_notebooks.py
    assert main(args) == 0
    out = capsys.readouterr().out
    for data_type in ("raw_records", "records", "hits", "peaks", "peak_basics", "events", "event_basics"):
        assert re.search(rf"^{data_type}\s+\d+\s+[\d.]+\s+computed$", out, re.M), data_type
    assert re.search(r"processed [\d.]+ MB of raw records in [\d.]+ s: \d+ MB/s", out)
    assert f"cache: {tmp_path.resolve() / 'wfa_data' / 'demo_run'}" in out
    efficiency = float(re.search(r"above 5 x noise RMS \(([\d.]+) %\)", out).group(1))
    assert efficiency >= 99.0
    for name in ("waveform_with_hits.png", "peak_area_spectrum.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a second run reuses the cache
    assert main(args) == 0
    out = capsys.readouterr().out
    assert re.search(r"^event_basics\s+\d+\s+[\d.]+\s+cache$", out, re.M)
    assert "loaded from the cache" in out


def test_module_and_help_entry_points():
    done = subprocess.run([sys.executable, "-m", "wfa_notebook", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "demo" in done.stdout
    bad = subprocess.run([sys.executable, "-m", "wfa_notebook", "nonsense"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


def test_readme_plugin_example_runs(tmp_path, monkeypatch):
    """The custom-plugin example of the README is executed as written."""
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    example = next(b for b in blocks if "class LargeHits" in b)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(example, "README.md", "exec"), namespace)
    large = namespace["large"]
    assert len(large) > 0 and (large["area_pe"] >= 800.0 / 150.0).all()
    assert namespace["context"].is_stored("demo_run", "large_hits", config={"min_area_adc_ns": 800.0})
