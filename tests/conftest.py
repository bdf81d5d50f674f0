from __future__ import annotations

import sys
from pathlib import Path

import pytest

# tests import small helper modules (toy_plugins) that live beside them
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def plain_execution():
    """Balancing off and no Dask before and after the test, whatever an earlier test left."""
    from wfa_notebook.execution import disable_global_load_balancing, stop_using_dask

    disable_global_load_balancing()
    stop_using_dask()
    yield
    disable_global_load_balancing()
    stop_using_dask()
