"""Fixtures of the server tests: tiny models built once, servers on free loopback ports."""

from __future__ import annotations

import json
import pathlib
import time
import urllib.error
import urllib.request
from typing import Any, Callable, Dict, Iterator, Optional, Tuple

import pytest

from serving.config import BatchingConfig, LimitsConfig, ModelConfig, SchedulingConfig, ServerConfig
from tests.serving.tiny_models import build_tiny_model, install

MODEL = "rec"


@pytest.fixture(scope="session")
def model_store(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, str]:
    """Built once per session: tiny models of versions 1..3 and one with a wrong signature."""
    root = tmp_path_factory.mktemp("model_store")
    store = {f"v{v}": build_tiny_model(str(root / f"v{v}"), v) for v in (1, 2, 3)}
    store["wrong"] = build_tiny_model(str(root / "wrong"), 7, contract=False)
    return store


@pytest.fixture
def base_path(tmp_path: pathlib.Path, model_store: Dict[str, str]) -> str:
    """A model base path holding version 1."""
    path = str(tmp_path / "models" / MODEL)
    install(model_store["v1"], path, 1)
    return path


def make_config(base_path: str, **overrides: Any) -> ServerConfig:
    """A fast test configuration on free ports (overrides replace ServerConfig fields)."""
    model_fields = {k: overrides.pop(k) for k in ("version_policy", "version_labels") if k in overrides}
    values: Dict[str, Any] = dict(
        models=(ModelConfig(MODEL, base_path, **model_fields),), grpc_port=0, rest_port=0,
        poll_interval_s=0.1, drain_grace_s=5.0, rest_api_timeout_ms=10_000,
        batching=BatchingConfig(max_batch_size=8, batch_timeout_micros=1000, num_batch_threads=2,
                                max_enqueued_batches=4),
        scheduling=SchedulingConfig(overload_lag_ms=0.0), limits=LimitsConfig(max_body_bytes=64 * 1024))
    values.update(overrides)
    return ServerConfig(**values)


@pytest.fixture
def start_server() -> Iterator[Callable[..., Any]]:
    """Start ModelServers (stopped at teardown): ``start_server(config, **kwargs) -> server``
    (keyword arguments go to ``ModelServer``, e.g. ``extra_routes``)."""
    from serving.server import ModelServer

    servers = []

    def _start(config: ServerConfig, **kwargs: Any) -> ModelServer:
        server = ModelServer(config, **kwargs)
        servers.append(server)
        server.start()
        return server

    yield _start
    for server in servers:
        server.stop(grace_s=1.0)


def wait_for(predicate: Callable[[], bool], timeout_s: float = 10.0, step_s: float = 0.05) -> bool:
    """Poll ``predicate`` until it is true or ``timeout_s`` passes; returns its last value."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(step_s)
    return bool(predicate())


def http(port: int, method: str, path: str, body: Optional[Any] = None,
         headers: Optional[Dict[str, str]] = None, raw: Optional[bytes] = None,
         timeout_s: float = 10.0) -> Tuple[int, Any]:
    """One HTTP request to the REST port; returns (status, parsed JSON or text)."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data,
                                     headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            status, payload = response.status, response.read()
    except urllib.error.HTTPError as err:
        status, payload = err.code, err.read()
    text = payload.decode("utf-8")
    try:
        return status, json.loads(text)
    except json.JSONDecodeError:
        return status, text

