"""The Trainer on Vertex AI Training: typed worker pools and the custom_config they compile to.

`VertexTrainingConfig` is the switch and the cluster (it is read from the Kubeflow config,
`kubeflow.config.KubeflowConfig.vertex_training`); `VertexTrainerJob` is that config bound to
the pipeline image, which `kubeflow.runner` puts into `PipelineConfig.vertex_trainer` so that
`create_pipeline(cfg)` stays a function of its config. With a job set, the pipeline's Trainer
is TFX's Vertex Training extension (`tfx.extensions.google_cloud_ai_platform.Trainer`): its pod
submits a Vertex AI CustomJob whose worker pools are, in Vertex's fixed order,

  pool 0: the chief (exactly one replica)  -> TF_CONFIG task type 'chief'
  pool 1: the workers                      -> 'worker'
  pool 2: the parameter servers            -> 'ps'

every pool running the pipeline image. Vertex sets TF_CONFIG in each replica, and the Trainer
picks its tf.distribute strategy from it (`trainer.distribution.cluster_strategy_name`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Tuple

from core.config_loader import check

# The strategy each cluster shape asks for, as trainer.distribution.cluster_strategy_name picks
# it from the TF_CONFIG that Vertex sets.
PARAMETER_SERVER = "parameter_server"
MULTI_WORKER = "multi_worker"


@dataclasses.dataclass(frozen=True)
class WorkerPoolConfig:
    """One Vertex worker pool: machine type, accelerators and replica count."""

    machine_type: str = "n1-standard-8"  # a Compute Engine machine type
    replica_count: int = 1  # 0: the pool is not used
    accelerator_type: str = ""  # Vertex's AcceleratorType name, e.g. NVIDIA_TESLA_T4, NVIDIA_L4
    accelerator_count: int = 0

    def __post_init__(self) -> None:
        check("", [
            (self.replica_count >= 0, f"replica_count must be >= 0, got {self.replica_count}"),
            (bool(self.machine_type.strip()), "machine_type must not be empty"),
            (self.accelerator_count >= 0, f"accelerator_count must be >= 0, got {self.accelerator_count}"),
            (bool(self.accelerator_type) == (self.accelerator_count > 0),
             "accelerator_type and accelerator_count > 0 go together (both set or neither)"),
        ])

    def spec(self, image: str) -> Dict[str, Any]:
        """This pool's Vertex `WorkerPoolSpec` (as the CustomJob API's JSON) running `image`."""
        machine: Dict[str, Any] = {"machine_type": self.machine_type}
        if self.accelerator_count:
            machine.update(accelerator_type=self.accelerator_type, accelerator_count=self.accelerator_count)
        return {"machine_spec": machine, "replica_count": self.replica_count, "container_spec": {"image_uri": image}}


def _accelerator_rules(pools: Tuple[Tuple[str, WorkerPoolConfig], ...]) -> List[Tuple[bool, str]]:
    """`check` rules: every pool's accelerator_type is a name of Vertex's AcceleratorType enum."""
    from google.cloud import aiplatform_v1  # the Vertex API's own types (a dependency of TFX)

    known = [a.name for a in aiplatform_v1.AcceleratorType if a.value]
    return [(not pool.accelerator_type or pool.accelerator_type in known,
             f"{name}.accelerator_type {pool.accelerator_type!r} is not a Vertex AcceleratorType "
             f"(one of {', '.join(known)})") for name, pool in pools]


DEFAULT_CHIEF = WorkerPoolConfig(machine_type="n1-standard-8", accelerator_type="NVIDIA_TESLA_T4", accelerator_count=1)


@dataclasses.dataclass(frozen=True)
class VertexTrainingConfig:
    """Whether the Trainer runs as a Vertex AI CustomJob, where, and on which worker pools."""

    enabled: bool = False  # False: the Trainer trains inside its own pipeline pod
    project: str = ""  # GCP project of the CustomJob
    region: str = ""  # Vertex region, e.g. europe-west4
    # A pool given in a JSON config starts from WorkerPoolConfig's defaults (n1-standard-8, one
    # replica, no accelerator), not from the defaults below.
    chief: WorkerPoolConfig = DEFAULT_CHIEF
    workers: WorkerPoolConfig = WorkerPoolConfig(replica_count=0)
    parameter_servers: WorkerPoolConfig = WorkerPoolConfig(replica_count=0)

    def __post_init__(self) -> None:
        check("vertex_training", [
            (not self.enabled or bool(self.project), "project must be set when enabled"),
            (not self.enabled or bool(self.region), "region must be set when enabled"),
            (self.chief.replica_count == 1,
             f"chief.replica_count must be 1 (Vertex's first pool is the one chief), got {self.chief.replica_count}"),
            (not self.parameter_servers.replica_count or self.workers.replica_count > 0,
             "parameter_servers need workers.replica_count >= 1 (under ParameterServerStrategy the chief "
             "coordinates and only workers run training steps)"),
            (not self.parameter_servers.accelerator_count,
             "parameter_servers.accelerator_count must be 0 (parameter servers hold variables and run no steps)"),
            *(_accelerator_rules(self.pools) if self.enabled else ()),
        ])

    @property
    def pools(self) -> Tuple[Tuple[str, WorkerPoolConfig], ...]:
        """(name, pool) of the pools in use, in Vertex's order (chief, workers, parameter servers)."""
        pools = (("chief", self.chief), ("workers", self.workers), ("parameter_servers", self.parameter_servers))
        return tuple((name, pool) for name, pool in pools if pool.replica_count)

    @property
    def cluster_strategy(self) -> str:
        """The strategy the pools' TF_CONFIG makes the Trainer pick; '' for the chief alone."""
        if self.parameter_servers.replica_count:
            return PARAMETER_SERVER
        return MULTI_WORKER if self.workers.replica_count else ""


@dataclasses.dataclass(frozen=True)
class VertexTrainerJob:
    """A `VertexTrainingConfig` that is switched on, bound to the image every pool runs."""

    training: VertexTrainingConfig
    image: str

    def __post_init__(self) -> None:
        check("vertex_trainer", [
            (self.training.enabled, "training.enabled must be true for a Vertex Trainer job"),
            (bool(self.image), "image must be set (the pipeline image runs every worker pool)"),
        ])

    def strategy_rule(self, strategy: str) -> Tuple[bool, str]:
        """A `check` rule: `trainer.strategy` lets the Trainer use the cluster these pools form.

        With workers or parameter servers every replica must pick the cluster's strategy from
        TF_CONFIG ('auto' does); another fixed strategy would train each replica on its own.
        """
        cluster = self.training.cluster_strategy
        return (not cluster or strategy in ("auto", cluster),
                f"trainer.strategy is {strategy!r} but vertex_training's pools form a {cluster} cluster; "
                f"use 'auto' (the Trainer then picks {cluster!r} from TF_CONFIG)")

    def worker_pool_specs(self) -> List[Dict[str, Any]]:
        """The CustomJob's worker pool specs: chief, then workers and parameter servers if used.

        Pools are positional in Vertex, so the parameter servers (pool 2) come after the workers
        (pool 1), which `VertexTrainingConfig` requires whenever there are parameter servers.
        """
        return [pool.spec(self.image) for _, pool in self.training.pools]

    def custom_config(self) -> Dict[str, Any]:
        """The Vertex keys of the Trainer's custom_config (TFX's ENABLE_VERTEX_KEY and friends)."""
        from tfx import v1 as tfx

        vertex = tfx.extensions.google_cloud_ai_platform
        return {
            vertex.ENABLE_VERTEX_KEY: True,
            vertex.VERTEX_REGION_KEY: self.training.region,
            vertex.TRAINING_ARGS_KEY: {
                "project": self.training.project,
                "job_spec": {"worker_pool_specs": self.worker_pool_specs()},
            },
        }
