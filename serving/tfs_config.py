"""Stock TF Serving configuration from the same typed settings, and back.

``write_tfs_configs`` writes ``models.config`` (a ``ModelServerConfig`` text proto),
``batching_parameters.txt`` (``BatchingParameters``) and ``monitoring.config``
(``MonitoringConfig`` with the Prometheus path) so production can run the stock
``tensorflow_model_server`` with the command line from ``tfs_command_line``.  The parse
functions read the same files, so ``recsys serve --model-config-file models.config
--batching-parameters-file batching_parameters.txt`` accepts what TF Serving accepts.
"""

from __future__ import annotations

import os
from typing import Dict, List, Sequence, Tuple

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from serving.config import PROMETHEUS_PATH, BatchingConfig, ModelConfig, ServerConfig, ServingConfigError, VersionPolicy
from serving.tfs_protos import BatchingParameters, MonitoringConfig

MODELS_CONFIG = "models.config"
BATCHING_PARAMETERS = "batching_parameters.txt"
MONITORING_CONFIG = "monitoring.config"
_PLATFORM = "tensorflow"


def model_server_config(models: Sequence[ModelConfig]) -> model_server_config_pb2.ModelServerConfig:
    """The ``ModelServerConfig`` proto of the configured models."""
    config = model_server_config_pb2.ModelServerConfig()
    for model in models:
        entry = config.model_config_list.config.add()
        entry.name = model.name
        entry.base_path = os.path.abspath(model.base_path)
        entry.model_platform = _PLATFORM
        policy = model.version_policy
        if policy.kind == "latest":
            entry.model_version_policy.latest.num_versions = policy.num_versions
        elif policy.kind == "specific":
            entry.model_version_policy.specific.versions.extend(policy.versions)
        else:
            entry.model_version_policy.all.SetInParent()
        for label, version in model.version_labels:
            entry.version_labels[label] = version
    return config


def batching_parameters(batching: BatchingConfig) -> "BatchingParameters":
    """The ``BatchingParameters`` proto of the batching settings."""
    params = BatchingParameters()
    params.max_batch_size.value = batching.max_batch_size
    params.batch_timeout_micros.value = batching.batch_timeout_micros
    params.max_enqueued_batches.value = batching.max_enqueued_batches
    params.num_batch_threads.value = batching.num_batch_threads
    params.allowed_batch_sizes.extend(batching.allowed_batch_sizes)
    return params


def monitoring_config() -> "MonitoringConfig":
    """The ``MonitoringConfig`` proto enabling Prometheus on the path this server uses."""
    config = MonitoringConfig()
    config.prometheus_config.enable = True
    config.prometheus_config.path = PROMETHEUS_PATH
    return config


def write_tfs_configs(config: ServerConfig, out_dir: str) -> Dict[str, str]:
    """Write the three stock TF Serving config files.

    Args:
        config: the server settings.
        out_dir: directory to write into (created if missing).

    Returns:
        File name -> written path.
    """
    os.makedirs(out_dir, exist_ok=True)
    texts = {MODELS_CONFIG: model_server_config(config.models),
             BATCHING_PARAMETERS: batching_parameters(config.batching),
             MONITORING_CONFIG: monitoring_config()}
    paths = {}
    for name, message in texts.items():
        path = os.path.join(out_dir, name)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text_format.MessageToString(message))
        paths[name] = path
    return paths


def tfs_command_line(config: ServerConfig, paths: Dict[str, str]) -> List[str]:
    """The ``tensorflow_model_server`` command line equivalent to ``config``."""
    command = ["tensorflow_model_server", f"--port={config.grpc_port}",
               f"--model_config_file={paths[MODELS_CONFIG]}",
               f"--file_system_poll_wait_seconds={max(1, round(config.poll_interval_s))}",
               f"--monitoring_config_file={paths[MONITORING_CONFIG]}"]
    if config.rest_port is not None:
        command += [f"--rest_api_port={config.rest_port}",
                    f"--rest_api_timeout_in_ms={config.rest_api_timeout_ms}"]
    if config.enable_batching:
        command += ["--enable_batching=true", f"--batching_parameters_file={paths[BATCHING_PARAMETERS]}"]
    return command


def parse_models_config(text: str, check_contract: bool = True) -> Tuple[ModelConfig, ...]:
    """Read a ``ModelServerConfig`` text proto.

    Args:
        text: the file's contents.
        check_contract: whether loaded versions must honour the recommender contract.

    Returns:
        The models it lists.

    Raises:
        ServingConfigError: the text does not parse, lists no models, or uses a platform or
            field this server does not support.
    """
    config = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as err:
        raise ServingConfigError(f"invalid model config: {err}") from None
    if config.WhichOneof("config") != "model_config_list":
        raise ServingConfigError("model config needs a model_config_list")
    models = []
    for entry in config.model_config_list.config:
        if entry.model_platform not in ("", _PLATFORM):
            raise ServingConfigError(f"model {entry.name!r}: platform {entry.model_platform!r} "
                                     "is not supported (only 'tensorflow')")
        choice = entry.model_version_policy.WhichOneof("policy_choice")
        if choice == "specific":
            policy = VersionPolicy(kind="specific",
                                   versions=tuple(entry.model_version_policy.specific.versions))
        elif choice == "all":
            policy = VersionPolicy(kind="all")
        else:
            num = entry.model_version_policy.latest.num_versions if choice == "latest" else 1
            policy = VersionPolicy(kind="latest", num_versions=num or 1)
        models.append(ModelConfig(name=entry.name, base_path=entry.base_path,
                                  version_policy=policy,
                                  version_labels=tuple(sorted(entry.version_labels.items())),
                                  check_contract=check_contract))
    if not models:
        raise ServingConfigError("model config lists no models")
    return tuple(models)


def parse_batching_parameters(text: str) -> BatchingConfig:
    """Read a ``BatchingParameters`` text proto (unset fields keep this server's defaults).

    Raises:
        ServingConfigError: the text does not parse or the values are invalid.
    """
    params = BatchingParameters()
    try:
        text_format.Parse(text, params)
    except text_format.ParseError as err:
        raise ServingConfigError(f"invalid batching parameters: {err}") from None
    defaults = BatchingConfig()
    values = {}
    for name in ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches",
                 "num_batch_threads"):
        values[name] = getattr(params, name).value if params.HasField(name) else getattr(defaults, name)
    return BatchingConfig(allowed_batch_sizes=tuple(params.allowed_batch_sizes), **values)
