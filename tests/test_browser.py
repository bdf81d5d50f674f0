"""End to end in a real browser: JupyterLab renders the dashboard and the threshold explorer.

Starts JupyterLab on 127.0.0.1 with a random token in a temporary root folder, opens
tests/browser_dashboard_explorer.ipynb in Debian's chromium through Playwright, runs all cells,
checks that the dashboard shows a worker count and that dragging the threshold slider changes
the hit count shown, and saves a screenshot as outputs/browser_dashboard.png.

Skipped with the reason when chromium, Playwright or JupyterLab is missing, unless
WFA_REQUIRE_BROWSER=1 (as in CI), which turns the skip into a failure. WFA_CHROMIUM overrides
the browser path (default /usr/bin/chromium, else chromium on PATH).
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = Path(__file__).with_name("browser_dashboard_explorer.ipynb")
SCREENSHOT = ROOT / "outputs" / "browser_dashboard.png"
CHROMIUM = os.environ.get("WFA_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]
# Deadlines, not sleeps: each wait polls and returns as soon as its condition holds.
SERVER_START_S = 60
KERNEL_IDLE_S = 60
CELLS_S = 90
UPDATE_S = 30

pytestmark = pytest.mark.slow


def _missing() -> str | None:
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        return f"no chromium at {CHROMIUM} (Debian: apt-get install chromium)"
    for module, hint in (("playwright", "pip install playwright"), ("jupyterlab", "pip install jupyterlab"),
                         ("ipykernel", "pip install ipykernel")):
        try:
            __import__(module)
        except ImportError:
            return f"{module} is not installed ({hint}, or pip install 'wfa_notebook[test]')"
    return None


@pytest.fixture(scope="module")
def browser_ready():
    reason = _missing()
    if reason is not None:
        if os.environ.get("WFA_REQUIRE_BROWSER") == "1":
            pytest.fail(f"WFA_REQUIRE_BROWSER=1 but the browser test cannot run: {reason}")
        pytest.skip(reason)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _api(base: str, token: str, path: str):
    request = urllib.request.Request(f"{base}{path}", headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def _jupyter_home(tmp: Path) -> dict[str, str]:
    """Jupyter folders of this test only: no user settings, a kernel that is this Python."""
    kernel = tmp / "jupyter_path" / "kernels" / "python3"
    kernel.mkdir(parents=True)
    (kernel / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (ipykernel)", "language": "python",
    }))
    # No news or update checks: the test runs offline and their pop-ups would cover the page.
    settings = tmp / "config" / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    return {
        "JUPYTER_PATH": str(tmp / "jupyter_path"),
        "JUPYTER_CONFIG_DIR": str(tmp / "config"),
        "JUPYTER_DATA_DIR": str(tmp / "data"),
        "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
        "JUPYTER_PLATFORM_DIRS": "1",
        "IPYTHONDIR": str(tmp / "ipython"),
    }


@contextmanager
def jupyter_lab(tmp: Path):
    """A JupyterLab server on 127.0.0.1 serving ``tmp / "root"``; yields (base url, token)."""
    root = tmp / "root"
    root.mkdir()
    shutil.copy(NOTEBOOK, root / NOTEBOOK.name)
    port, token = _free_port(), secrets.token_hex(16)
    log = open(tmp / "jupyterlab.log", "wb")  # noqa: SIM115 - closed below, after the server
    command = [
        sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
        "--ServerApp.port_retries=0", "--LabApp.expose_app_in_browser=True",
        "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # CI containers run as root; the server is local-only
    env = {**os.environ, **_jupyter_home(tmp), "PYTHONUNBUFFERED": "1"}
    server = subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if server.poll() is not None:
                pytest.fail(f"JupyterLab exited with {server.returncode}:\n{(tmp / 'jupyterlab.log').read_text()[-3000:]}")
            try:
                _api(base, token, "/api/status")
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not answer within {SERVER_START_S} s")
                time.sleep(0.2)  # polling interval of the API, not a synchronisation
        yield base, token
    finally:
        try:
            _stop(server)
        finally:
            log.close()


def _stop(server: subprocess.Popen) -> None:
    """Stop the server by its PID, then any of its kernels still running."""
    if server.poll() is not None:
        return
    kernels = _kernel_processes(server.pid)
    os.kill(server.pid, signal.SIGTERM)  # the server shuts its kernels down on SIGTERM
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.kill(server.pid, signal.SIGKILL)
        server.wait()
    for pid in kernels:  # a kernel that outlived its server would hold ports and CPU
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _kernel_processes(pid: int) -> list[int]:
    try:
        import psutil
    except ImportError:
        return []
    try:
        return [child.pid for child in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _wait_for_idle_kernel(base: str, token: str, notebook: str) -> str:
    """Poll /api/sessions until the notebook's kernel reports idle; return its id."""
    deadline = time.monotonic() + KERNEL_IDLE_S
    while time.monotonic() < deadline:
        for session in _api(base, token, "/api/sessions"):
            kernel = session.get("kernel") or {}
            if session.get("path", "").endswith(notebook) and kernel.get("execution_state") == "idle":
                return kernel["id"]
        time.sleep(0.2)
    pytest.fail(f"the kernel of {notebook} was not idle within {KERNEL_IDLE_S} s: {_api(base, token, '/api/sessions')}")


def _hit_count(page) -> int:
    return int(page.locator(".wfa-explorer-hit-count .wfa-hit-count").inner_text())


def test_dashboard_and_explorer_work_in_jupyterlab(browser_ready, tmp_path):
    from playwright.sync_api import sync_playwright

    started = time.monotonic()
    with jupyter_lab(tmp_path) as (base, token), sync_playwright() as playwright:
        executable = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            # Tall enough for the whole notebook: JupyterLab does not render cells far out of view.
            page = browser.new_page(viewport={"width": 1400, "height": 2000})
            page.goto(f"{base}/lab/tree/{NOTEBOOK.name}?reset&token={token}")
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=SERVER_START_S * 1000)
            _wait_for_idle_kernel(base, token, NOTEBOOK.name)

            page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")

            # The dashboard: a worker count of at least 1 once the parallel cell ran.
            workers = page.locator(".wfa-dashboard-workers input")
            # Live updates can show workers before the call ends: wait for the tasks too.
            page.wait_for_function(
                "() => { const w = document.querySelector('.wfa-dashboard-workers input');"
                " const t = document.querySelector('.wfa-dashboard-tasks-done input');"
                " return w && t && Number(w.value) >= 1 && Number(t.value) >= 16; }",
                timeout=CELLS_S * 1000,
            )
            assert 1 <= int(workers.input_value()) <= 2
            tasks = int(page.locator(".wfa-dashboard-tasks-done input").input_value())
            assert tasks >= 16

            # The explorer, from the last cell; then all cells are done.
            page.wait_for_selector(".wfa-explorer-hit-count .wfa-hit-count", timeout=CELLS_S * 1000)
            page.wait_for_selector(".wfa-threshold-explorer img", timeout=UPDATE_S * 1000)
            _wait_for_idle_kernel(base, token, NOTEBOOK.name)
            before = _hit_count(page)

            # Drag the threshold handle to the left end of its track: threshold 0, noise makes hits.
            track = page.locator(".wfa-explorer-threshold .noUi-target")
            handle = page.locator(".wfa-explorer-threshold .noUi-handle")
            box, grip = track.bounding_box(), handle.bounding_box()
            page.mouse.move(grip["x"] + grip["width"] / 2, grip["y"] + grip["height"] / 2)
            page.mouse.down()
            page.mouse.move(box["x"] - 20, grip["y"] + grip["height"] / 2, steps=8)
            page.mouse.up()
            # The slider shows 0 and the kernel has answered the last move with a new count.
            page.wait_for_function(
                "before => { const s = document.querySelector('.wfa-explorer-hit-count .wfa-hit-count');"
                " const r = document.querySelector('.wfa-explorer-threshold .widget-readout');"
                " return s && r && Number(r.textContent) === 0 && Number(s.textContent) !== before; }",
                arg=before, timeout=UPDATE_S * 1000,
            )
            _wait_for_idle_kernel(base, token, NOTEBOOK.name)  # every update has been answered
            after = _hit_count(page)
            assert after > before, "threshold 0 shows more hits than 15 ADC"

            page.locator(".wfa-dashboard").scroll_into_view_if_needed()
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT))
        finally:
            browser.close()
    print(f"browser test: {before} -> {after} hits, {time.monotonic() - started:.1f} s in all")
