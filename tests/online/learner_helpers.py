"""Helpers shared by the online learner tests: a learner on the tiny base, events in its log."""

from __future__ import annotations

import time

from online.config import LearnerConfig
from online.event_log import EventLog
from online.events import Event
from tests.online.conftest import K


def start_learner(workspace, tiny_base, **overrides):
    """A started learner on the tiny base model, with settings for mechanics tests."""
    from online.learner import LearnerPaths, OnlineLearner
    from trainer.config import TrainerConfig
    from trainer.serving_model import ServingOptions

    # Mechanics tests: a lenient guard (the guard test sets its own) and a fixed replay of 64 rows.
    values = dict(export_every_events=1000, export_interval_s=3600.0, reserve_users=20, reserve_items=10,
                  steps_per_update=4, replay_ratio=64.0, replay_batch=64, learning_rate=0.1, guard_users=100,
                  guard_k=K, guard_max_drop=0.5, poll_interval_s=0.05, max_events_per_update=64)
    values.update(overrides)
    trained_dir = values.pop("trained_dir", tiny_base.trained_dir)
    ranker_dir = values.pop("ranker_dir", "")
    pushed_model_dir = values.pop("pushed_model_dir", "")
    paths = LearnerPaths(str(workspace / "log"), str(workspace / "data"), str(workspace / "serving"),
                         str(workspace / "state"), trained_dir, tiny_base.transform_dir, ranker_dir, pushed_model_dir)
    learner = OnlineLearner(paths, LearnerConfig(**values), TrainerConfig(), ServingOptions(top_k=K, candidates_to_rank=10))
    learner.start()
    return learner


def append_events(workspace, events):
    """Appends events to the workspace's event log."""
    EventLog(str(workspace / "log")).append(events, time.time())


def rating_event(n, user, item, rating=5.0, **side):
    """Rating event number `n` of `user` on `item`."""
    return Event(f"t{n}-{user}-{item}", user, item, "rating", rating, 2_000_000 + n, tuple(side.items()))
