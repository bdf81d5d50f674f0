"""Every notebook in notebooks/ runs top to bottom; the executed copies are kept in outputs/notebooks/.

The notebooks assert what they show in their own cells; these tests add what only the saved file
tells: no cell failed, plots were saved, and the widgets' final state was stored with the notebook
(what a reader of the saved notebook sees without running it).
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

nbclient = pytest.importorskip("nbclient", reason="executing notebooks needs nbclient (pip install 'wfa_notebook[test]')")
pytest.importorskip("ipykernel", reason="executing notebooks needs ipykernel (pip install 'wfa_notebook[test]')")

from wfa_notebook.ui.notebooks import execute_notebook, widget_states  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
OUTPUTS = ROOT / "outputs" / "notebooks"
# A notebook should run in well under 20 s; the timeout only catches a hang.
CELL_TIMEOUT_S = 120

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """All notebooks executed, two at a time (kernel start-up is mostly waiting), by file name.

    Each runs in its own temporary working folder, so a notebook that writes files leaves
    nothing in the source tree.
    """

    def run(path: Path):
        try:
            return execute_notebook(path, OUTPUTS / path.name, timeout=CELL_TIMEOUT_S,
                                    cwd=tmp_path_factory.mktemp(path.stem))
        except Exception as exc:  # reported by the test of that notebook
            return exc

    started = time.time()
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = dict(zip((p.name for p in NOTEBOOKS), pool.map(run, NOTEBOOKS)))
    results["_started"] = started
    return results


def executed_notebook(executed, name):
    result = executed[name]
    if isinstance(result, Exception):
        pytest.fail(f"{name} failed:\n{result}")
    return result


def outputs_of(nb, output_type):
    return [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs
            if out.output_type == output_type]


def widgets_with_class(nb, css_class):
    return [w["state"] for w in widget_states(nb).values() if css_class in w["state"].get("_dom_classes", ())]


def test_the_five_notebooks_are_there():
    assert [p.name for p in NOTEBOOKS] == [
        "01_quickstart.ipynb",
        "02_load_balancing.ipynb",
        "03_threshold_tuning.ipynb",
        "04_wavedump.ipynb",
        "05_dask_cluster.ipynb",
    ]


@pytest.mark.parametrize("name", [p.name for p in NOTEBOOKS])
def test_notebook_runs_without_errors_and_is_saved(executed, name):
    nb = executed_notebook(executed, name)
    assert not outputs_of(nb, "error")
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert all(cell.execution_count is not None for cell in code), "every code cell ran"
    saved = OUTPUTS / name
    assert saved.is_file() and saved.stat().st_mtime >= executed["_started"], "written by this run"


@pytest.mark.parametrize(("name", "at_least"), [
    ("01_quickstart.ipynb", 3), ("03_threshold_tuning.ipynb", 1), ("04_wavedump.ipynb", 1),
])
def test_notebook_plots_are_saved_as_images(executed, name, at_least):
    nb = executed_notebook(executed, name)
    images = [out for out in outputs_of(nb, "display_data") if "image/png" in out.get("data", {})]
    assert len(images) >= at_least


def test_load_balancing_dashboard_keeps_its_final_state(executed):
    nb = executed_notebook(executed, "02_load_balancing.ipynb")
    workers = [w["value"] for w in widgets_with_class(nb, "wfa-dashboard-workers")]
    tasks = [w["value"] for w in widgets_with_class(nb, "wfa-dashboard-tasks-done")]
    maximum = [w["value"] for w in widgets_with_class(nb, "wfa-dashboard-max-workers")]
    failed = [w["value"] for w in widgets_with_class(nb, "wfa-dashboard-tasks-failed")]
    assert workers and all(1 <= n <= 4 for n in workers), "a worker count within --min 1 --max 4"
    assert max(tasks) >= 60, "40 + 20 parallel_map tasks and the context's chunks were counted"
    assert set(maximum) == {4} and set(failed) == {0}
    decisions = widgets_with_class(nb, "wfa-dashboard-decision")
    assert decisions and all("workers" in w["value"] for w in decisions)


def test_threshold_explorer_keeps_its_final_state(executed):
    nb = executed_notebook(executed, "03_threshold_tuning.ipynb")
    (label,) = widgets_with_class(nb, "wfa-explorer-hit-count")
    assert "wfa-hit-count" in label["value"] and "5 \u00d7 RMS" in label["value"]
    (status,) = widgets_with_class(nb, "wfa-explorer-status")
    assert status["value"].startswith("Applied: threshold_rms = 5")
    sliders = [w["state"] for w in widget_states(nb).values() if w["model_name"] == "FloatSliderModel"]
    assert [s["value"] for s in sliders] == [5.0]
    images = [w for w in widget_states(nb).values() if w["model_name"] == "ImageModel"]
    assert images and images[0]["buffers"], "the waveform image is saved with the notebook"


def test_dask_notebook_ran_work_on_the_cluster(executed):
    nb = executed_notebook(executed, "05_dask_cluster.ipynb")
    text = "".join(out.get("text", "") for out in outputs_of(nb, "stream"))
    assert "ran on" in text and "chunk task(s) on the cluster" in text


def test_a_failing_cell_is_named_and_the_partial_notebook_kept(tmp_path):
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    from wfa_notebook.errors import WfaExecutionError

    source = tmp_path / "broken.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell("x = 1"), new_code_cell("assert x == 2")]), source)
    saved = tmp_path / "out" / "broken.ipynb"
    with pytest.raises(WfaExecutionError, match=r"broken.ipynb failed in cell 1 \('assert x == 2"):
        execute_notebook(source, saved, timeout=60)
    partial = nbformat.read(saved, as_version=4)
    assert partial.cells[0].execution_count == 1
    assert any(out.output_type == "error" for out in partial.cells[1].outputs)


def test_missing_nbclient_gives_an_install_hint(monkeypatch, tmp_path):
    import sys

    from wfa_notebook.errors import WfaDependencyError

    monkeypatch.setitem(sys.modules, "nbclient", None)  # import nbclient now fails
    with pytest.raises(WfaDependencyError, match=r"pip install 'wfa_notebook\[test\]'"):
        execute_notebook(tmp_path / "any.ipynb")
