"""Typed, frozen configuration of online learning: event ingestion, span rolling, the learner.

Each dataclass validates its own fields in ``__post_init__`` and raises `OnlineConfigError`
naming the field, so a bad flag or config file is reported before anything starts. A file is
read by `load_json_config` and built by `build_config` (`pipeline.config.from_dict`, raising
the caller's own error); `kubeflow.config` loads its file with them too.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Optional

from core.config_loader import ConfigError, build_config, load_json_config


class OnlineConfigError(ConfigError):
    """An online-learning setting is invalid; the message names the field."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise OnlineConfigError(message)


@dataclasses.dataclass(frozen=True)
class EventLogConfig:
    """The durable event log.

    Attributes:
      segment_bytes: a new segment file is started once the active one reaches this size.
      max_batch_events: most events accepted in one append (one HTTP request or CLI call).
      max_body_bytes: largest request body the HTTP handler reads.
      max_future_s: timestamps more than this far ahead of the receiving clock are refused.
    """

    segment_bytes: int = 64 * 1024 * 1024
    max_batch_events: int = 1000
    max_body_bytes: int = 1024 * 1024
    max_future_s: int = 86_400

    def __post_init__(self) -> None:
        _require(self.segment_bytes >= 4096, "log.segment_bytes must be >= 4096")
        _require(self.max_batch_events >= 1, "log.max_batch_events must be >= 1")
        _require(self.max_body_bytes >= 1024, "log.max_body_bytes must be >= 1024")
        _require(self.max_future_s >= 0, "log.max_future_s must be >= 0")


@dataclasses.dataclass(frozen=True)
class RollerConfig:
    """Rolling of the log into new ExampleGen spans.

    Attributes:
      min_events: a span is rolled only once this many new events are in the log.
      eval_fraction: the newest fraction of a rolled span's events goes to its eval split.
      lookback_spans: newest spans searched for the side features of users the events name.
    """

    min_events: int = 1000
    eval_fraction: float = 0.2
    lookback_spans: int = 2

    def __post_init__(self) -> None:
        _require(self.min_events >= 1, "roller.min_events must be >= 1")
        _require(0.0 < self.eval_fraction < 1.0, "roller.eval_fraction must be in (0, 1)")
        _require(self.lookback_spans >= 1, "roller.lookback_spans must be >= 1")


@dataclasses.dataclass(frozen=True)
class LearnerConfig:
    """The online learner.

    Attributes:
      poll_interval_s: pause between reads of the log when it has nothing new.
      export_interval_s: a version is exported at most this long after the first event it
        holds was applied...
      export_every_events: ...or as soon as this many events are pending, whichever is first.
      max_events_per_update: most new events applied in one optimisation round.
      steps_per_update: optimiser steps per round.
      replay_ratio: replayed past interactions per new event in every step's batch, so the
        amount of training grows with the number of events, however they are grouped...
      replay_batch: ...but at most this many per step.
      replay_size: the replay buffer keeps this many most recent interactions.
      learning_rate: Adagrad learning rate of the online steps.
      reserve_users / reserve_items: embedding rows reserved for ids outside the Transform
        vocabularies (see `online.networks`); ids beyond the reserve use the OOV row.
      guard_users: eval users in the guard slice.
      guard_k: cutoff of the guard's Recall@K.
      guard_max_drop: an update whose guard recall falls more than this fraction below the
        reference is not exported (and its weight changes are undone).
      keep_checkpoints: learner checkpoints kept (one per exported version).
      seed: seed of replay sampling and of the guard's user sample.
    """

    poll_interval_s: float = 0.2
    export_interval_s: float = 2.0
    export_every_events: int = 500
    max_events_per_update: int = 512
    steps_per_update: int = 2
    replay_ratio: float = 1.0
    replay_batch: int = 512
    replay_size: int = 50_000
    # 0.001: at 0.01 the first update of the default pipeline's distilled int8 student lost
    # more than the guard allows (see the README's online learning section).
    learning_rate: float = 0.001
    reserve_users: int = 10_000
    reserve_items: int = 2_000
    guard_users: int = 500
    guard_k: int = 20
    guard_max_drop: float = 0.05
    keep_checkpoints: int = 5
    seed: int = 11

    def __post_init__(self) -> None:
        _require(math.isfinite(self.replay_ratio) and self.replay_ratio >= 0, "learner.replay_ratio must be >= 0")
        for name in ("poll_interval_s", "export_interval_s", "learning_rate"):
            value = getattr(self, name)
            _require(math.isfinite(value) and value > 0, f"learner.{name} must be > 0")
        for name in ("export_every_events", "max_events_per_update", "steps_per_update",
                     "replay_size", "guard_users", "guard_k", "keep_checkpoints"):
            _require(getattr(self, name) >= 1, f"learner.{name} must be >= 1")
        for name in ("replay_batch", "reserve_users", "reserve_items"):
            _require(getattr(self, name) >= 0, f"learner.{name} must be >= 0")
        _require(0.0 <= self.guard_max_drop < 1.0, "learner.guard_max_drop must be in [0, 1)")


@dataclasses.dataclass(frozen=True)
class OnlineConfig:
    """Everything online learning needs besides paths (which the CLI owns)."""

    log: EventLogConfig = EventLogConfig()
    roller: RollerConfig = RollerConfig()
    learner: LearnerConfig = LearnerConfig()


def from_dict(values: Mapping[str, Any], where: str = "online config") -> OnlineConfig:
    """Builds an `OnlineConfig` from plain values: {"log": {...}, "roller": {...}, "learner": {...}}.

    Raises:
      OnlineConfigError: a key is unknown or a value is invalid.
    """
    return build_config(OnlineConfig, values, where, OnlineConfigError)


def load(path: Optional[str]) -> OnlineConfig:
    """`from_dict` of the JSON file `path`, or the defaults when None (raises `OnlineConfigError`)."""
    return load_json_config(path, OnlineConfig, "online config", OnlineConfigError)
