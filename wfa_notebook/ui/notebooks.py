"""Run a notebook top to bottom and save the executed copy, with its plots and widget state.

Used by ``make demo`` (the executed quickstart under ``outputs/``) and by the tests that
execute every notebook in ``notebooks/``.  Needs ``nbclient``, ``nbformat`` and ``ipykernel``
(``pip install 'wfa_notebook[test]'``), imported only when a notebook is run.
"""
from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from ..errors import WfaDependencyError, WfaExecutionError

__all__ = ["execute_notebook", "widget_states"]

#: MIME type under which Jupyter saves widget state in a notebook's metadata.
WIDGET_STATE_MIME = "application/vnd.jupyter.widget-state+json"


def _import_nbclient() -> tuple[Any, Any]:
    try:
        import nbclient
        import nbformat
    except ImportError as exc:
        msg = (
            f"Running notebooks needs nbclient, nbformat and ipykernel ({exc.name} is missing). "
            "Install them with `pip install 'wfa_notebook[test]'` or `pip install nbclient nbformat ipykernel`."
        )
        raise WfaDependencyError(msg) from exc
    return nbclient, nbformat


def _this_interpreter_kernel_manager(socket_dir: str) -> type:
    """An nbclient kernel manager class whose "python3" kernel is this Python interpreter.

    A "python3" kernel spec in the user's Jupyter folders may point at another Python without
    wfa_notebook; looking only at ipykernel's built-in spec runs the kernel with sys.executable.
    """
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    class ThisInterpreterKernelManager(AsyncKernelManager):
        @default("kernel_spec_manager")
        def _kernel_spec_manager_default(self) -> KernelSpecManager:
            return KernelSpecManager(kernel_dirs=[], ensure_native_kernel=True)

        # Unix sockets in a private folder instead of unencrypted TCP ports: nothing else on the
        # machine can talk to the kernel.
        @default("transport")
        def _transport_default(self) -> str:
            return "ipc" if os.name == "posix" else "tcp"

        @default("ip")
        def _ip_default(self) -> str:
            return os.path.join(socket_dir, "kernel-ipc") if self.transport == "ipc" else "127.0.0.1"

    return ThisInterpreterKernelManager


def execute_notebook(
    path: str | os.PathLike,
    out_path: str | os.PathLike | None = None,
    timeout: float = 120.0,
    cwd: str | os.PathLike | None = None,
    env: dict[str, str] | None = None,
) -> Any:
    """Execute a notebook in a fresh kernel of this Python and save the executed copy.

    Parameters
    ----------
    path : notebook to run (left unchanged).
    out_path : where to write the executed notebook (folders are created); None writes nothing.
    timeout : seconds one cell may take before the run fails.
    cwd : working folder of the kernel (default: the notebook's folder, as in Jupyter).
    env : extra environment variables for the kernel.

    Returns
    -------
    nbformat.NotebookNode
        The executed notebook; widget state is in ``nb.metadata["widgets"]`` (see
        :func:`widget_states`) and each cell's run time in ``cell.metadata["execution"]``.

    Raises
    ------
    WfaDependencyError
        When nbclient, nbformat or ipykernel is not installed.
    WfaExecutionError
        When a cell raises or times out; the partly executed notebook is still written to
        ``out_path`` so the error can be read there.
    """
    nbclient, nbformat = _import_nbclient()
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    workdir = Path(cwd) if cwd is not None else path.resolve().parent
    started = time.perf_counter()
    kernel_env = {**os.environ, **(env or {})}
    try:
        with tempfile.TemporaryDirectory(prefix="wfa_kernel_") as socket_dir:
            client = nbclient.NotebookClient(
                nb,
                timeout=timeout,
                kernel_name="python3",
                kernel_manager_class=_this_interpreter_kernel_manager(socket_dir),
                resources={"metadata": {"path": str(workdir)}},
                store_widget_state=True,
                record_timing=True,
            )
            _run(client, kernel_env)
    except nbclient.exceptions.CellExecutionError as exc:
        failed = _failed_cell(nb)
        msg = (
            f"execute_notebook: {path.name} failed in cell {failed} after "
            f"{time.perf_counter() - started:.1f} s"
            f"{f'; the partly executed copy is in {out_path}' if out_path else ''}.\n{exc}"
        )
        _write(nbformat, nb, out_path)
        raise WfaExecutionError(msg) from exc
    except TimeoutError as exc:
        msg = (
            f"execute_notebook: a cell of {path.name} ran longer than timeout={timeout} s; "
            "raise the timeout or make the cell lighter."
        )
        _write(nbformat, nb, out_path)
        raise WfaExecutionError(msg) from exc
    _write(nbformat, nb, out_path)
    return nb


def _run(client: Any, env: dict[str, str]) -> None:
    try:
        asyncio.get_running_loop()
        in_a_loop = True
    except RuntimeError:
        in_a_loop = False
    if in_a_loop:  # called from a notebook: nbclient's synchronous wrapper copes with that
        client.execute(env=env)
        return
    # Own the loop and close it: nbclient's synchronous wrapper leaves one loop per thread open,
    # which warns when it is garbage-collected.
    asyncio.run(client.async_execute(env=env))


def widget_states(nb: Any) -> dict[str, dict[str, Any]]:
    """Saved widget models of an executed notebook: model id -> {model_name, state, ...}."""
    saved = nb.metadata.get("widgets", {}).get(WIDGET_STATE_MIME, {})
    return dict(saved.get("state", {}))


def _write(nbformat: Any, nb: Any, out_path: str | os.PathLike | None) -> None:
    if out_path is None:
        return
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out)


def _failed_cell(nb: Any) -> str:
    """'N (first line)' of the first code cell with an error output, for the message."""
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if any(out.get("output_type") == "error" for out in cell.get("outputs", [])):
            first = cell.source.strip().splitlines()[0] if cell.source.strip() else ""
            return f"{index} ({first[:60]!r})"
    return "?"
