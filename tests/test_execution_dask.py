"""Running parallel_map and imap_ordered on a Dask cluster (a LocalCluster bound to 127.0.0.1)."""
from __future__ import annotations

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")

from wfa_notebook.errors import WfaTaskError  # noqa: E402
from wfa_notebook.execution import (  # noqa: E402
    dask_client,
    enable_global_load_balancing,
    get_load_balancer_stats,
    imap_ordered,
    parallel_map,
    use_dask,
)


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=False,
        protocol="tcp",
        host="127.0.0.1",
        dashboard_address=None,
    )
    with cluster, distributed.Client(cluster, set_as_default=False) as dask_client:
        yield dask_client


pytestmark = pytest.mark.usefixtures("plain_execution")


def where(x):
    return x, distributed.get_worker().address


def fail_at_three(x):
    if x == 3:
        raise ArithmeticError("three")
    return x


def test_parallel_map_runs_on_the_cluster_while_use_dask_is_in_effect(client):
    workers = set(client.nthreads())
    with use_dask(client):
        results = parallel_map(where, range(20))  # default executor_type, unchanged code
    assert [value for value, _ in results] == list(range(20))
    assert {address for _, address in results} <= workers
    assert dask_client() is None  # the with-block restored local execution


def test_balancer_reasons_about_the_cluster_workers(client):
    enable_global_load_balancing(max_workers=None)
    use_dask(client)
    parallel_map(where, range(10))
    decision = get_load_balancer_stats()["last_decision"]
    assert decision["inputs"]["cpu_count"] == 2  # two workers of one thread
    assert decision["inputs"]["shared_machine"] is False
    assert "cluster" in decision["reason"]
    assert get_load_balancer_stats()["total_tasks"] == 10


def test_imap_ordered_streams_through_the_cluster(client):
    with use_dask(client):
        results = list(imap_ordered(where, iter(range(12))))
    assert [value for value, _ in results] == list(range(12))
    assert {address for _, address in results} <= set(client.nthreads())


def test_task_failure_on_the_cluster_names_the_task(client):
    with use_dask(client):
        with pytest.raises(WfaTaskError) as error:
            parallel_map(fail_at_three, range(8))
        assert error.value.task_index == 3
        assert isinstance(error.value.__cause__, ArithmeticError)
        with pytest.raises(WfaTaskError) as error:
            list(imap_ordered(fail_at_three, range(8)))
        assert error.value.task_index == 3


def test_executor_type_dask_uses_the_active_client(client):
    with client.as_current():
        results = parallel_map(where, range(4), executor_type="dask")
        assert use_dask().client is client
    assert {address for _, address in results} <= set(client.nthreads())


def test_context_processing_runs_on_the_cluster(client, tmp_path):
    from wfa_notebook import default_context

    small = {"synthetic_n_channels": 4, "synthetic_duration_ns": 20_000_000, "synthetic_seed": 2,
             "chunk_duration_ns": 2_000_000}
    expected = default_context(tmp_path / "local", config=small, max_workers=1).get_array("run", "hits")
    ctx = default_context(tmp_path / "cluster", config=small)
    with distributed.get_task_stream(client) as stream, use_dask(client):
        hits = ctx.get_array("run", "hits")
    np.testing.assert_array_equal(hits, expected)
    assert len(stream.data) >= ctx.last_run.chunks["hits"], "every hits chunk ran as a cluster task"
