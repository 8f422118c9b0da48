"""Model workers in processes: the server works end to end and survives a worker crash."""

from __future__ import annotations

import os
import signal

import pytest

from serving.client import RecommendationClient
from serving.config import BatchingConfig, SchedulingConfig
from tests.serving.conftest import MODEL, make_config, wait_for
from tests.serving.tiny_models import expected, install


@pytest.mark.slow
def test_process_workers_serve_swap_and_survive_a_crash(base_path, model_store, start_server) -> None:
    config = make_config(base_path, scheduling=SchedulingConfig(worker_mode="process", overload_lag_ms=0.0),
                         batching=BatchingConfig(max_batch_size=8, batch_timeout_micros=1000,
                                                 num_batch_threads=1, max_enqueued_batches=4))
    server = start_server(config)
    pool = server._pool
    with RecommendationClient(f"127.0.0.1:{server.ports.grpc}") as client:
        assert client.recommend(["u1"], MODEL)[0][1] == pytest.approx(expected("u1", 1)[1])
        install(model_store["v2"], base_path, 2)
        assert wait_for(lambda: client.model_status(MODEL)[0]["state"] == "AVAILABLE"
                        and client.model_status(MODEL)[0]["version"] == 2, timeout_s=30)
        assert client.recommend(["u2"], MODEL)[0][1] == pytest.approx(expected("u2", 2)[1])
        os.kill(pool.pid(0), signal.SIGKILL)
        assert wait_for(lambda: pool.respawns == 1, timeout_s=60), "the worker was not replaced"
        assert client.recommend(["u3"], MODEL)[0] == (expected("u3", 2)[0],
                                                      pytest.approx(expected("u3", 2)[1]))
    assert server.metrics.batch_size.count(MODEL, "serving_default") >= 3
