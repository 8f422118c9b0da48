"""Warmup files in TF Serving's format, and stock TF Serving config files parsed back."""

from __future__ import annotations

import os
import shutil

import pytest
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from core.features import SERVING_INPUT_USER, SERVING_SIGNATURE
from serving.cli import build_config, main, register
from serving.config import BatchingConfig, ModelConfig, ServerConfig, ServingConfigError, VersionPolicy
from serving.tensor_codec import to_ndarray
from serving.tfs_config import (
    BATCHING_PARAMETERS,
    MODELS_CONFIG,
    MONITORING_CONFIG,
    parse_batching_parameters,
    parse_models_config,
    tfs_command_line,
    write_tfs_configs,
)
from serving.tfs_protos import BatchingParameters, MonitoringConfig
from serving.warmup import read_warmup_requests
from tests.serving.conftest import MODEL, make_config, wait_for
from tests.serving.tiny_models import install
from trainer.warmup_requests import warmup_path, write_warmup_requests


def test_warmup_file_round_trip(tmp_path) -> None:
    path = write_warmup_requests(str(tmp_path), MODEL, ["u1", "u2", "u3"], num_records=4,
                                 batch_size=2)
    assert path == warmup_path(str(tmp_path)) and path.endswith("assets.extra/tf_serving_warmup_requests")
    requests = read_warmup_requests(str(tmp_path))
    assert len(requests) == 4
    users = [to_ndarray(r.inputs[SERVING_INPUT_USER], "u", 100).tolist() for r in requests]
    assert users == [[b"u1", b"u2"], [b"u3", b"u1"], [b"u2", b"u3"], [b"u1", b"u2"]]
    assert {r.model_spec.signature_name for r in requests} == {SERVING_SIGNATURE}
    with pytest.raises(ValueError):
        write_warmup_requests(str(tmp_path), MODEL, [], num_records=1)
    with pytest.raises(ValueError):
        write_warmup_requests(str(tmp_path), MODEL, ["u"], num_records=1001)


def test_server_replays_warmup_before_serving(tmp_path, model_store, start_server) -> None:
    base = str(tmp_path / "base")
    target = install(model_store["v1"], base, 1)
    write_warmup_requests(target, MODEL, ["u1", "nobody"], num_records=3)
    server = start_server(make_config(base))
    assert server.metrics.warmup.value(MODEL) == 3
    assert server.metrics.batch_size.count(MODEL, SERVING_SIGNATURE) == 0  # not through traffic
    # a version whose warmup records do not fit its signature is not served
    staged = str(tmp_path / "staged2")
    shutil.copytree(model_store["v2"], staged)
    write_warmup_requests(staged, MODEL, ["u1"], signature_name="no_such_signature", num_records=1)
    os.replace(staged, os.path.join(base, "2"))
    assert wait_for(lambda: [r.state for r in server.core.status(MODEL) if r.version == 2] == ["END"])
    assert "warmup" in server.core.status(MODEL, 2)[0].error_message
    assert server.core.status(MODEL, 1)[0].state == "AVAILABLE"


def test_corrupt_warmup_file_fails_the_load(tmp_path, model_store, start_server) -> None:
    base = str(tmp_path / "base")
    target = install(model_store["v1"], base, 1)
    path = write_warmup_requests(target, MODEL, ["u1"], num_records=2)
    with open(path, "r+b") as handle:
        handle.seek(20)
        handle.write(b"\xff" * 8)
    server = start_server(make_config(base))
    record = server.core.status(MODEL, 1)[0]
    assert record.state == "END" and "warmup" in record.error_message
    assert not server.core.ready()


def _settings(base: str) -> ServerConfig:
    return ServerConfig(
        models=(ModelConfig("rec", base, VersionPolicy(num_versions=2), (("stable", 3),)),
                ModelConfig("ranker", base + "_r", VersionPolicy(kind="specific", versions=(4, 7)))),
        batching=BatchingConfig(max_batch_size=64, batch_timeout_micros=500, num_batch_threads=3,
                                max_enqueued_batches=10, allowed_batch_sizes=(16, 32, 64)),
        grpc_port=9000, rest_port=9001)


def test_stock_configs_parse_with_tf_serving_protos(tmp_path) -> None:
    config = _settings(str(tmp_path / "models"))
    paths = write_tfs_configs(config, str(tmp_path / "tfs"))
    assert set(paths) == {MODELS_CONFIG, BATCHING_PARAMETERS, MONITORING_CONFIG}
    models = model_server_config_pb2.ModelServerConfig()
    text_format.Parse(open(paths[MODELS_CONFIG]).read(), models)
    entries = models.model_config_list.config
    assert [e.name for e in entries] == ["rec", "ranker"]
    assert entries[0].base_path == str(tmp_path / "models") and entries[0].model_platform == "tensorflow"
    assert entries[0].model_version_policy.latest.num_versions == 2
    assert dict(entries[0].version_labels) == {"stable": 3}
    assert list(entries[1].model_version_policy.specific.versions) == [4, 7]
    batching = BatchingParameters()
    text_format.Parse(open(paths[BATCHING_PARAMETERS]).read(), batching)
    assert (batching.max_batch_size.value, batching.batch_timeout_micros.value,
            batching.num_batch_threads.value, batching.max_enqueued_batches.value) == (64, 500, 3, 10)
    assert list(batching.allowed_batch_sizes) == [16, 32, 64]
    monitoring = MonitoringConfig()
    text_format.Parse(open(paths[MONITORING_CONFIG]).read(), monitoring)
    assert monitoring.prometheus_config.enable
    assert monitoring.prometheus_config.path == "/monitoring/prometheus/metrics"
    # and back into the same typed settings
    assert parse_models_config(open(paths[MODELS_CONFIG]).read()) == config.models
    assert parse_batching_parameters(open(paths[BATCHING_PARAMETERS]).read()) == config.batching
    command = " ".join(tfs_command_line(config, paths))
    assert "--port=9000" in command and "--rest_api_port=9001" in command
    assert f"--batching_parameters_file={paths[BATCHING_PARAMETERS]}" in command


def test_bad_config_files_are_reported(tmp_path) -> None:
    with pytest.raises(ServingConfigError):
        parse_models_config("model_config_list { config { name: 'a' base_path: '/x' "
                            "model_platform: 'pytorch' } }")
    with pytest.raises(ServingConfigError):
        parse_models_config("model_config_list { config { name: '../a' base_path: '/x' } }")
    with pytest.raises(ServingConfigError):
        parse_models_config("not a proto {")
    with pytest.raises(ServingConfigError):
        parse_batching_parameters("max_batch_size { value: 0 }")


def _parse(argv):
    import argparse

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_cli_flags_build_the_config(tmp_path) -> None:
    args = _parse(["serve", "--model-base-path", str(tmp_path), "--model-name", "rec",
                   "--grpc-port", "0", "--rest-port", "0", "--max-batch-size", "16",
                   "--worker-mode", "process", "--num-versions", "2", "--frontend-processes", "2"])
    config = build_config(args)
    assert config.host == "127.0.0.1" and config.models[0].name == "rec"
    assert config.batching.max_batch_size == 16 and config.scheduling.worker_mode == "process"
    assert config.models[0].version_policy.num_versions == 2 and config.frontend_processes == 2
    params = tmp_path / "batching.txt"
    params.write_text("max_batch_size { value: 12 } num_batch_threads { value: 1 }")
    args = _parse(["serve", "--model-base-path", str(tmp_path), "--batching-parameters-file",
                   str(params)])
    assert build_config(args).batching == BatchingConfig(max_batch_size=12, num_batch_threads=1)
    with pytest.raises(ServingConfigError):
        build_config(_parse(["serve"]))
    with pytest.raises(ServingConfigError):
        build_config(_parse(["serve", "--model-base-path", str(tmp_path), "--batching-parameters-file",
                             str(params), "--max-batch-size", "3"]))


def test_cli_writes_stock_configs(tmp_path, capsys) -> None:
    out = tmp_path / "tfs"
    code = main(["serve", "--model-base-path", str(tmp_path), "--write-tfs-configs", str(out)])
    assert code == 0
    assert sorted(os.listdir(out)) == sorted([MODELS_CONFIG, BATCHING_PARAMETERS, MONITORING_CONFIG])
    assert "tensorflow_model_server" in capsys.readouterr().out
    assert main(["serve", "--model-base-path", str(tmp_path), "--model-name", "bad/name"]) == 2
