"""Typed, frozen configuration of a pipeline run: the stages' configs composed, and loaded.

`create_pipeline(cfg)` is a pure function of a `PipelineConfig`; runners build the config from
command-line flags and an optional JSON file (`load_config`) and own every path. Each stage's
config lives beside its stage (`trainer.config`, `compression.config`, `evaluation.config`,
`ingest.config`); this module only composes them and adds the Beam and pipeline settings.
`core.config_loader` checks every value's type and every rule before any work starts.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any, Dict, Mapping, Optional, Tuple

from compression.config import CompressionConfig
from core.config_loader import ConfigError, check, from_dict, one_of, read_json_object
from evaluation.config import EvaluationConfig
from ingest.config import SyntheticDataConfig
from pipeline.vertex_training import VertexTrainerJob
from trainer.candidate_ranker_config import CandidateRankerConfig
from trainer.config import TrainerConfig
from trainer.item_item_config import ItemItemConfig
from trainer.retrieval_index import SCANN_MISSING, RetrievalIndexConfig, scann_installed
from trainer.tuner_config import TunerConfig

__all__ = ["BeamConfig", "PipelineConfig", "ConfigError", "load_config", "to_dict",
           "TrainerConfig", "EvaluationConfig", "CompressionConfig", "SyntheticDataConfig", "TunerConfig"]

DIRECT_RUNNING_MODES = ("in_memory", "multi_threading", "multi_processing")
SPLITS = ("time", "random")


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

    def __post_init__(self) -> None:
        check("beam", [
            (self.direct_num_workers >= 0, f"direct_num_workers must be >= 0, got {self.direct_num_workers}"),
            (one_of(self.direct_running_mode, DIRECT_RUNNING_MODES),
             f"direct_running_mode must be one of {', '.join(DIRECT_RUNNING_MODES)}, got {self.direct_running_mode!r}"),
            (self.max_num_workers >= 0, f"max_num_workers must be >= 0, got {self.max_num_workers}"),
            (self.parallelism >= 0, f"parallelism must be >= 0, got {self.parallelism}"),
        ])

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
    split: str = "time"  # time | random (also sets trainer.split: the label slice is cut the same way)
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
    # The served order: candidates of the two-tower, item-item, popularity and recent popularity
    # sources, merged and ranked by a learned ranker (BuildServingModel trains it).
    candidate_ranker: CandidateRankerConfig = CandidateRankerConfig()
    item_item: ItemItemConfig = ItemItemConfig()
    # How the served model finds the two-tower's candidates: brute force (stock ops, the default)
    # or a ScaNN index (custom ops; only the plain two-tower retrieval, see `_index_rules`).
    retrieval_index: RetrievalIndexConfig = RetrievalIndexConfig()
    # The optional Tuner node before the Trainer (`recsys run --tune`), or saved best
    # hyperparameters the Trainer reuses without tuning (`tuner.hyperparameters_file`).
    tuner: TunerConfig = TunerConfig()
    # The Trainer as a Vertex AI CustomJob on worker pools (`pipeline.vertex_training`). Set by
    # the Kubeflow runner from its config's `vertex_training`, never read from a pipeline file.
    vertex_trainer: Optional[VertexTrainerJob] = None

    def __post_init__(self) -> None:
        check("", [
            (one_of(self.split, SPLITS), f"split must be 'time' or 'random', got {self.split!r}"),
            (self.span_window >= 1, f"span_window must be >= 1, got {self.span_window}"),
            (not (self.candidate_ranker.enabled and "item_item" in self.candidate_ranker.sources)
             or self.item_item.enabled,
             "candidate_ranker.sources lists 'item_item' while item_item.enabled is false: enable item_item "
             "or remove 'item_item' from candidate_ranker.sources"),
            self.vertex_trainer.strategy_rule(self.trainer.strategy) if self.vertex_trainer else (True, ""),
            *self._index_rules(),
        ])
        if self.trainer.split != self.split:  # the Trainer cuts its label slice the way the run is split
            object.__setattr__(self, "trainer", dataclasses.replace(self.trainer, split=self.split))

    def _index_rules(self) -> Tuple[Tuple[bool, str], ...]:
        """A ScaNN index needs scann, and serves only the plain two-tower retrieval: with the
        learned ranker or the item-item source the other sources score every catalog item and
        read the two-tower score of any item, so the index would save no time."""
        if not self.retrieval_index.approximate:
            return ()
        refused = "retrieval_index.kind 'scann' serves only the two-tower's own candidates: set"
        return (
            (scann_installed(), SCANN_MISSING),
            (not self.candidate_ranker.enabled, f"{refused} candidate_ranker.enabled false (the ranker's sources "
                                                "score every catalog item, so the index saves no time)"),
            (not self.item_item.enabled, f"{refused} item_item.enabled false (the item-item source scores every "
                                         "catalog item, so the index saves no time)"),
        )

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

    def with_compression_sweep(self) -> "PipelineConfig":
        """A copy whose compression stage builds every variant (`compression.sweep`).

        Raises:
          ConfigError: the compression stage is off, or its config lists variants or TFLite
            modes explicitly (a sweep builds them all).
        """
        check("", [(self.compress, "compression.sweep needs the compression stage (compress is false)")])
        try:
            return dataclasses.replace(self, compression=dataclasses.replace(self.compression, sweep=True))
        except ConfigError as err:
            raise ConfigError(f"compression.{err}") from err

    def with_tuning(self) -> "PipelineConfig":
        """A copy with the Tuner node on (`tuner.enabled`).

        Raises:
          ConfigError: the config also names saved hyperparameters to reuse.
        """
        return dataclasses.replace(self, tuner=dataclasses.replace(self.tuner, enabled=True))


def load_config(path: Optional[str] = None, overrides: Optional[Mapping[str, Any]] = None) -> PipelineConfig:
    """Reads a JSON config file (keys as in `PipelineConfig`, nested objects for sub-configs).

    Args:
      path: JSON file, or None for the defaults.
      overrides: top-level keys applied after the file.

    Returns:
      The frozen config, every value checked.

    Raises:
      ConfigError: the file is missing, not JSON or not an object, or any key is unknown, any
        value of the wrong type or out of range (all of them named, with their key paths).
    """
    values: Dict[str, Any] = read_json_object(path) if path is not None else {}
    values.update(overrides or {})
    if "vertex_trainer" in values:
        where = f"{path}: " if path else ""
        raise ConfigError(f"{where}vertex_trainer: not a pipeline setting; switch the Trainer to Vertex AI "
                          "with vertex_training in the Kubeflow config")
    try:
        return from_dict(PipelineConfig, values)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}" if path else str(err)) from err


def to_dict(cfg: PipelineConfig) -> Dict[str, Any]:
    """The config as plain JSON-compatible values."""
    return dataclasses.asdict(cfg)
