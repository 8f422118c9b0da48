"""Typed, frozen configuration of a pipeline run.

`create_pipeline(cfg)` is a pure function of a `PipelineConfig`; runners build the config from
command-line flags and an optional JSON file (`load_config`) and own every path.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Any, Callable, Dict, Mapping, Optional, Tuple, Type, TypeVar

from trainer.compression.config import CompressionConfig

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration file or value is invalid; the message names the key."""


@dataclasses.dataclass(frozen=True)
class SyntheticDataConfig:
    """Size and shape of the embedded synthetic MovieLens-like world."""

    num_users: int = 1500
    num_items: int = 800
    num_interactions: int = 40_000
    num_tastes: int = 8
    eval_fraction: float = 0.2
    seed: int = 42


INPUT_MODES = ("auto", "memory", "stream")


@dataclasses.dataclass(frozen=True)
class TrainerConfig:
    """Hyperparameters of the two-tower retrieval and the ranking model."""

    embedding_dim: int = 32
    tower_layers: Tuple[int, ...] = (64,)
    epochs: int = 5
    batch_size: int = 512
    learning_rate: float = 0.05
    temperature: float = 0.1
    logq_correction: bool = True
    remove_accidental_hits: bool = True
    ranking_layers: Tuple[int, ...] = (64, 32)
    ranking_cross_layers: int = 1
    ranking_low_rank: Optional[int] = None
    ranking_epochs: int = 3
    ranking_learning_rate: float = 0.003
    ranking_embedding_l2: float = 1e-4
    # Multitask (rating + retrieval), as in the TFRS multitask tutorial: one model trained for
    # `epochs` (Adagrad at `learning_rate`) whose ranking network is built on the two towers
    # (no separate ranking fit, no ranking embeddings of its own).
    multitask: bool = False  # False: retrieval fit, then a separate DCN ranking fit (the default)
    multitask_rating_weight: float = 1.0  # weight of the rating (mean squared error) loss
    multitask_retrieval_weight: float = 1.0  # weight of the in-batch softmax retrieval loss
    candidates_to_rank: int = 100
    ranking_weight: float = 0.05  # final score = retrieval score + weight * predicted rating
    top_k: int = 100
    strategy: str = "auto"  # auto | default | mirrored | multi_worker | tpu
    seed: int = 7
    # Hardware acceleration (trainer.distribution validates and logs these).
    tpu_address: str = ""  # TPU name or grpc://host:port; 'auto' then picks TPUStrategy
    mixed_precision: str = "none"  # none | auto (float16 on GPU, bfloat16 on TPU/CPU) | mixed_float16 | mixed_bfloat16
    jit_compile: bool = False  # XLA-compile the train step
    steps_per_execution: int = 1  # train steps fused into one compiled call
    lr_scaling: str = "none"  # none | linear | sqrt: learning rates x (batch_size / lr_base_batch_size)^p
    lr_base_batch_size: int = 512  # the batch size the learning rates were tuned at
    # Continuous training: epochs when the run starts from the previous blessed model's weights.
    warm_start_epochs: int = 1
    warm_start_ranking_epochs: int = 1
    # Input (trainer.streaming): 'memory' holds the transformed data as arrays (fastest, memory
    # grows with the data), 'stream' re-reads the files each epoch with bounded memory, 'auto'
    # streams above `stream_above_examples` training examples.
    input_mode: str = "auto"
    stream_above_examples: int = 2_000_000
    shuffle_buffer: int = 500_000  # serialized records in the streamed input's shuffle buffer

    def __post_init__(self) -> None:
        for name in ("multitask_rating_weight", "multitask_retrieval_weight"):
            if getattr(self, name) < 0:
                raise ConfigError(f"trainer.{name} must be >= 0, got {getattr(self, name)}")
        if self.input_mode not in INPUT_MODES:
            raise ConfigError(f"trainer.input_mode must be one of {', '.join(INPUT_MODES)}, got {self.input_mode!r}")
        for name in ("stream_above_examples", "shuffle_buffer"):
            if getattr(self, name) < 1:
                raise ConfigError(f"trainer.{name} must be >= 1, got {getattr(self, name)}")
        if self.multitask and not (self.multitask_rating_weight or self.multitask_retrieval_weight):
            raise ConfigError("trainer.multitask_rating_weight and trainer.multitask_retrieval_weight "
                              "are both 0: the multitask model would learn nothing")


@dataclasses.dataclass(frozen=True)
class EvaluationConfig:
    """Evaluation gate: the pushed model must clear these floors."""

    cutoffs: Tuple[int, ...] = (10, 20, 50, 100)
    gate_metric: str = "recall_at_20"
    min_value: float = 0.0
    max_relative_drop: float = 0.05
    max_eval_users: int = 5000


@dataclasses.dataclass(frozen=True)
class BeamConfig:
    """Apache Beam settings shared by every Beam-powered component."""

    runner: str = "DirectRunner"
    direct_num_workers: int = 1
    direct_running_mode: str = "in_memory"  # in_memory | multi_threading | multi_processing
    extra_args: Tuple[str, ...] = ()
    # Production runners (pipeline.beam_args.runner_args turns these into flags).
    project: str = ""  # DataflowRunner: GCP project
    region: str = ""  # DataflowRunner: region, e.g. europe-west1
    temp_location: str = ""  # DataflowRunner: gs:// scratch path
    max_num_workers: int = 0  # DataflowRunner autoscaling ceiling (0: service default)
    machine_type: str = ""  # DataflowRunner worker machine type
    flink_master: str = ""  # FlinkRunner: host:port of the Flink JobManager
    spark_master_url: str = ""  # SparkRunner: spark://host:port
    parallelism: int = 0  # FlinkRunner parallelism (0: cluster default)
    environment_type: str = ""  # portable runners: DOCKER | EXTERNAL | PROCESS | LOOPBACK
    environment_config: str = ""  # portable runners: worker pool address (EXTERNAL) or command
    sdk_container_image: str = ""  # worker image (Dataflow / DOCKER environments): the pipeline image

    def pipeline_args(self) -> Tuple[str, ...]:
        """Arguments handed to `tfx.dsl.Pipeline(beam_pipeline_args=...)` (`pipeline.beam_args`).

        Raises:
          ValueError: unknown runner, or a setting the runner needs is missing or invalid.
        """
        from pipeline import beam_args

        return beam_args.runner_args(self)


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """Everything `create_pipeline` needs; paths are absolute or relative to the caller's cwd."""

    pipeline_name: str = "recsys"
    pipeline_root: str = "output/pipeline"
    data_root: str = "output/data"
    serving_model_dir: str = "output/serving_model"
    metadata_path: str = "output/metadata.sqlite"
    split: str = "time"  # time | random
    span_window: int = 1  # number of newest spans read by the interactions ExampleGen
    enable_cache: bool = True
    # Continuous training: the Trainer starts from the latest blessed model's networks (their
    # embedding rows remapped through the old and new vocabularies) and trains for the
    # `trainer.warm_start_*epochs`; without a blessed model it trains from scratch.
    warm_start: bool = False
    # CompressModel between the Trainer and BuildServingModel (pruning, QAT, int8, distillation).
    compress: bool = True
    # Transform's pre- and post-transform statistics (TFDV, written beside the transformed
    # examples). StatisticsGen already profiles the raw data; on the DirectRunner these
    # statistics hold the transformed splits in memory while they wait for the transform graph.
    transform_statistics: bool = False
    trainer: TrainerConfig = TrainerConfig()
    compression: CompressionConfig = CompressionConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    beam: BeamConfig = BeamConfig()
    synthetic: SyntheticDataConfig = SyntheticDataConfig()

    def __post_init__(self) -> None:
        if self.split not in ("time", "random"):
            raise ConfigError(f"split must be 'time' or 'random', got {self.split!r}")
        if self.span_window < 1:
            raise ConfigError(f"span_window must be >= 1, got {self.span_window}")

    def with_paths(self, output_dir: str) -> "PipelineConfig":
        """A copy whose every path lies under `output_dir`."""
        root = pathlib.Path(output_dir).resolve()
        return dataclasses.replace(
            self,
            pipeline_root=str(root / "pipeline"),
            data_root=str(root / "data"),
            serving_model_dir=str(root / "serving_model"),
            metadata_path=str(root / "metadata.sqlite"),
        )


_TUPLE_FIELDS = {"tower_layers", "ranking_layers", "cutoffs", "extra_args"}


def _build(cls: Type[T], values: Mapping[str, Any], where: str) -> T:
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs: Dict[str, Any] = {}
    for key, value in values.items():
        if key not in fields:
            raise ConfigError(f"{where}: unknown key {key!r} (known: {', '.join(sorted(fields))})")
        default = getattr(cls(), key)
        if dataclasses.is_dataclass(default):
            if not isinstance(value, Mapping):
                raise ConfigError(f"{where}.{key}: expected an object")
            kwargs[key] = _build(type(default), value, f"{where}.{key}")
        elif isinstance(default, tuple) or (key in _TUPLE_FIELDS and value is not None):
            if not isinstance(value, (list, tuple)):
                raise ConfigError(f"{where}.{key}: expected a list")
            kwargs[key] = tuple(value)
        else:
            kwargs[key] = value
    return cls(**kwargs)


def from_dict(cls: Type[T], values: Mapping[str, Any], where: str = "config") -> T:
    """Builds config dataclass `cls` from plain values (lists become tuples).

    Raises:
      ConfigError: a key is unknown or a nested value has the wrong kind.
    """
    return _build(cls, values, where)


def read_json_object(path: str, label: str = "config", error: Type[ValueError] = ConfigError) -> Dict[str, Any]:
    """The JSON object in file `path` (a `label` file, as errors name it).

    Raises:
      error: the file is missing, not JSON, or not a JSON object.
    """
    file = pathlib.Path(path)
    if not file.is_file():
        raise error(f"{label} file {path} does not exist")
    try:
        values = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise error(f"{label} file {path}: not valid JSON ({err})") from err
    if not isinstance(values, dict):
        raise error(f"{label} file {path}: top level must be an object")
    return values


def build_config(cls: Type[T], values: Mapping[str, Any], where: str, error: Type[ValueError]) -> T:
    """`pipeline.config.from_dict`, its errors raised as `error` (a package's own config error).

    Raises:
      error: a key is unknown, a nested value has the wrong kind, or a value the wrong type.
    """
    try:
        return from_dict(cls, values, where)
    except ConfigError as err:
        raise error(str(err)) from err
    except TypeError as err:  # e.g. a string where __post_init__ compares a number
        raise error(f"{where}: {err}") from err


def load_json_config(path: Optional[str], cls: Type[T], label: str, error: Type[ValueError],
                     build: Optional[Callable[[Dict[str, Any], str], T]] = None) -> T:
    """Config `cls` from the JSON file `path` (a `label` file, as errors name it); defaults when None.

    Args:
      build: makes `cls` from the file's object and `path` (`build_config` when None).

    Raises:
      error: the file is missing, not JSON, not a JSON object, or invalid.
    """
    if path is None:
        return cls()
    values = read_json_object(path, label, error)
    return build_config(cls, values, path, error) if build is None else build(values, path)


def load_config(path: Optional[str] = None, overrides: Optional[Mapping[str, Any]] = None) -> PipelineConfig:
    """Reads a JSON config file (keys as in `PipelineConfig`, nested objects for sub-configs).

    Args:
      path: JSON file, or None for the defaults.
      overrides: top-level keys applied after the file.

    Returns:
      The frozen config.

    Raises:
      ConfigError: the file is missing, not JSON, or names an unknown key.
    """
    values: Dict[str, Any] = read_json_object(path) if path is not None else {}
    values.update(overrides or {})
    return _build(PipelineConfig, values, path or "config")


def to_dict(cfg: PipelineConfig) -> Dict[str, Any]:
    """The config as plain JSON-compatible values."""
    return dataclasses.asdict(cfg)
