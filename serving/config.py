"""Typed, frozen configuration of the model server.

Every setting of the server lives in one of these dataclasses; the CLI, the stock TF Serving
config generator (``serving.tfs_config``) and the tests all build the same objects.  Each
``__post_init__`` validates its own fields and raises ``ServingConfigError`` naming the field,
so a bad flag or config file is reported before anything starts.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Mapping, Optional, Tuple

from core.config_loader import ConfigError

# Model names are path segments of the REST API and keys of the gRPC ModelSpec; the server
# never joins a requested name with a path, but configured names are still kept simple.
_MODEL_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
_LABEL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]{0,63}$")

VERSION_POLICIES = ("latest", "specific", "all")
WORKER_MODES = ("thread", "process")
PROMETHEUS_PATH = "/monitoring/prometheus/metrics"


class ServingConfigError(ConfigError):
    """A server setting is invalid; the message names the field."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ServingConfigError(message)


def validate_model_name(name: str) -> str:
    """Check that ``name`` is a safe model name.

    Args:
        name: the model name from a flag or config file.

    Returns:
        The name unchanged.

    Raises:
        ServingConfigError: the name is empty, too long, or has characters other than
            letters, digits, '_', '.', '-' (or is made only of dots).
    """
    _require(isinstance(name, str) and bool(_MODEL_NAME_RE.match(name)) and set(name) != {"."},
             f"model name {name!r} must match {_MODEL_NAME_RE.pattern}")
    return name


@dataclasses.dataclass(frozen=True)
class BatchingConfig:
    """Dynamic batching, with TF Serving's parameter names and meanings.

    ``num_batch_threads`` is the number of model workers that run batches in parallel;
    ``max_enqueued_batches * max_batch_size`` rows may wait per model before requests are
    refused with RESOURCE_EXHAUSTED.
    """

    max_batch_size: int = 32
    batch_timeout_micros: int = 2000
    num_batch_threads: int = 2
    max_enqueued_batches: int = 16
    allowed_batch_sizes: Tuple[int, ...] = ()

    def __post_init__(self) -> None:
        _require(self.max_batch_size >= 1, "max_batch_size must be >= 1")
        _require(self.batch_timeout_micros >= 0, "batch_timeout_micros must be >= 0")
        _require(self.num_batch_threads >= 1, "num_batch_threads must be >= 1")
        _require(self.max_enqueued_batches >= 1, "max_enqueued_batches must be >= 1")
        sizes = tuple(int(s) for s in self.allowed_batch_sizes)
        object.__setattr__(self, "allowed_batch_sizes", sizes)
        if sizes:
            _require(all(a < b for a, b in zip(sizes, sizes[1:])) and sizes[0] >= 1,
                     "allowed_batch_sizes must be positive and strictly increasing")
            _require(sizes[-1] == self.max_batch_size,
                     "the last of allowed_batch_sizes must equal max_batch_size")

    @property
    def queue_capacity_rows(self) -> int:
        """Rows that may wait per model (``max_enqueued_batches * max_batch_size``)."""
        return self.max_enqueued_batches * self.max_batch_size


@dataclasses.dataclass(frozen=True)
class SchedulingConfig:
    """What TF Serving lacks: priority classes, model worker kind, worker queue depth, shedding.

    ``priority_classes`` are ordered lowest first; ``worker_queue_depth`` is how many batches
    a worker may hold at once (1 keeps every waiting request under priority control);
    ``overload_lag_ms`` is the front-end lag at which the lowest class is shed at admission
    (each further multiple sheds the next class, up to ``shed_max_class`` or, when that is
    empty, the classes below ``default_priority``; 0 disables it, see ``serving.admission``).
    ``urgent_workers`` adds model workers that only run batches led by the highest class and
    ``urgent_max_batch_size`` caps those batches (on every worker when there are no lanes), so
    urgent work does not wait behind full heavy batches; regular workers still take the highest
    class first, in full batches (``serving.scheduler``).  ``inflight_limit`` (per front-end process; 0: none)
    refuses class ``c`` of ``C`` at the door once ``((c + 1) / C) ** 2`` of that many requests are
    waiting for answers, so low classes are refused first and before the scheduler's queue or
    the pipe to the model process fills.  ``tf_intra_op_threads``/``tf_inter_op_threads`` cap the
    threads each model worker's TensorFlow runtime uses (0: TensorFlow's default, one per
    core), so that model compute cannot starve the request path of CPU.
    """

    priority_classes: Tuple[str, ...] = ("low", "normal", "high")
    default_priority: str = "normal"
    worker_mode: str = "thread"
    worker_queue_depth: int = 1
    overload_lag_ms: float = 20.0
    tf_intra_op_threads: int = 0
    tf_inter_op_threads: int = 0
    urgent_workers: int = 0
    urgent_max_batch_size: int = 0
    shed_max_class: str = ""
    inflight_limit: int = 0

    def __post_init__(self) -> None:
        classes = tuple(self.priority_classes)
        object.__setattr__(self, "priority_classes", classes)
        _require(len(classes) >= 1 and len(set(classes)) == len(classes),
                 "priority_classes must be non-empty and distinct")
        _require(all(isinstance(c, str) and _LABEL_RE.match(c) for c in classes),
                 "priority class names must be simple words")
        _require(self.default_priority in classes,
                 f"default_priority {self.default_priority!r} is not in priority_classes")
        _require(self.worker_mode in WORKER_MODES, f"worker_mode must be one of {WORKER_MODES}")
        _require(self.worker_queue_depth >= 1, "worker_queue_depth must be >= 1")
        _require(math.isfinite(self.overload_lag_ms) and self.overload_lag_ms >= 0,
                 "overload_lag_ms must be >= 0 (0 disables front-end shedding)")
        _require(self.tf_intra_op_threads >= 0 and self.tf_inter_op_threads >= 0,
                 "TensorFlow thread counts must be >= 0 (0 keeps TensorFlow's default)")
        _require(isinstance(self.urgent_workers, int) and 0 <= self.urgent_workers <= 64,
                 "urgent_workers must be an integer in [0, 64]")
        _require(isinstance(self.urgent_max_batch_size, int) and self.urgent_max_batch_size >= 0,
                 "urgent_max_batch_size must be >= 0 (0: no cap)")
        _require(isinstance(self.inflight_limit, int) and self.inflight_limit >= 0,
                 "inflight_limit must be >= 0 (0: no limit)")
        _require(self.shed_max_class == "" or self.shed_max_class in classes[:-1],
                 f"shed_max_class {self.shed_max_class!r} must be one of {list(classes[:-1])} "
                 "(the highest class is never shed) or empty")

    @property
    def shed_levels(self) -> int:
        """How many of the lowest classes front-end lag may shed: up to ``shed_max_class``, or
        (empty) the classes below ``default_priority``."""
        if self.shed_max_class:
            return self.priority_classes.index(self.shed_max_class) + 1
        return self.priority_classes.index(self.default_priority)


@dataclasses.dataclass(frozen=True)
class LimitsConfig:
    """Request limits; anything beyond them is refused with a clear error."""

    max_body_bytes: int = 4 * 1024 * 1024
    max_json_depth: int = 32
    max_tensor_elements: int = 1_000_000
    reject_non_finite: bool = True
    header_timeout_s: float = 10.0  # a REST request's line and headers, from the first byte
    idle_timeout_s: float = 30.0  # a REST connection with nothing arriving is closed

    def __post_init__(self) -> None:
        _require(self.max_body_bytes >= 1024, "max_body_bytes must be >= 1024")
        for name in ("header_timeout_s", "idle_timeout_s"):
            value = getattr(self, name)
            _require(math.isfinite(value) and value > 0, f"{name} must be > 0")
        _require(2 <= self.max_json_depth <= 512, "max_json_depth must be in [2, 512]")
        _require(self.max_tensor_elements >= 1, "max_tensor_elements must be >= 1")


@dataclasses.dataclass(frozen=True)
class VersionPolicy:
    """Which integer versions under the base path are served: TF Serving's three policies."""

    kind: str = "latest"
    num_versions: int = 1
    versions: Tuple[int, ...] = ()

    def __post_init__(self) -> None:
        _require(self.kind in VERSION_POLICIES, f"version policy must be one of {VERSION_POLICIES}")
        object.__setattr__(self, "versions", tuple(sorted({int(v) for v in self.versions})))
        if self.kind == "latest":
            _require(self.num_versions >= 1, "latest policy needs num_versions >= 1")
        if self.kind == "specific":
            _require(bool(self.versions) and min(self.versions) >= 0,
                     "specific policy needs one or more non-negative versions")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """One served model: a name, its base path of integer version folders, policy and labels.

    ``check_contract`` requires the recommender contract (``serving_default`` taking a string
    user id and returning item ids and scores); a version without it fails to load.
    """

    name: str
    base_path: str
    version_policy: VersionPolicy = VersionPolicy()
    version_labels: Tuple[Tuple[str, int], ...] = ()
    check_contract: bool = True

    def __post_init__(self) -> None:
        validate_model_name(self.name)
        _require(isinstance(self.base_path, str) and bool(self.base_path),
                 f"model {self.name!r} needs a base_path")
        labels = self.version_labels
        if isinstance(labels, Mapping):
            labels = tuple(sorted(labels.items()))
        labels = tuple((str(k), int(v)) for k, v in labels)
        object.__setattr__(self, "version_labels", labels)
        for label, version in labels:
            _require(bool(_LABEL_RE.match(label)), f"version label {label!r} is not a simple word")
            _require(version >= 0, f"version label {label!r} needs a non-negative version")
        _require(len({k for k, _ in labels}) == len(labels), "version labels must be distinct")

    @property
    def labels(self) -> dict:
        """The version labels as a dict ``label -> version``."""
        return dict(self.version_labels)


@dataclasses.dataclass(frozen=True)
class ServerConfig:
    """Everything ``ModelServer`` needs.  Ports 0 bind a free port; ``rest_port=None`` disables
    the REST front end.  ``frontend_processes`` > 1 serves gRPC and REST from that many
    processes sharing the ports (SO_REUSEPORT) in front of this process's one model worker
    pool (``serving.frontends``); 1 serves them from this process.
    """

    models: Tuple[ModelConfig, ...]
    host: str = "127.0.0.1"
    grpc_port: int = 8500
    rest_port: Optional[int] = 8501
    poll_interval_s: float = 1.0
    enable_batching: bool = True
    batching: BatchingConfig = BatchingConfig()
    scheduling: SchedulingConfig = SchedulingConfig()
    limits: LimitsConfig = LimitsConfig()
    rest_api_timeout_ms: int = 30_000
    drain_grace_s: float = 10.0
    max_warmup_records: int = 1000
    load_timeout_s: float = 300.0
    frontend_processes: int = 1

    def __post_init__(self) -> None:
        models = tuple(self.models)
        object.__setattr__(self, "models", models)
        _require(len(models) >= 1, "at least one model must be configured")
        names = [m.name for m in models]
        _require(len(set(names)) == len(names), f"model names must be distinct: {names}")
        _require(0 <= self.grpc_port <= 65535, "grpc_port must be in [0, 65535]")
        _require(self.rest_port is None or 0 <= self.rest_port <= 65535,
                 "rest_port must be in [0, 65535] or None")
        _require(math.isfinite(self.poll_interval_s) and self.poll_interval_s > 0,
                 "poll_interval_s must be > 0")
        _require(self.rest_api_timeout_ms >= 1, "rest_api_timeout_ms must be >= 1")
        _require(self.drain_grace_s >= 0, "drain_grace_s must be >= 0")
        _require(self.max_warmup_records >= 0, "max_warmup_records must be >= 0")
        _require(self.load_timeout_s > 0, "load_timeout_s must be > 0")
        _require(isinstance(self.frontend_processes, int) and 1 <= self.frontend_processes <= 64,
                 "frontend_processes must be an integer in [1, 64]")

    def model(self, name: str) -> ModelConfig:
        """The configured model called ``name`` (KeyError when absent)."""
        for model in self.models:
            if model.name == name:
                return model
        raise KeyError(name)
