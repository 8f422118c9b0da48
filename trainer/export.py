"""Saving and loading of trained networks, and export of the serving SavedModel.

The Trainer writes the functional networks (`save_trained`); the serving-model component loads
them (`load_trained`), builds a `ServingModel` around them and writes it with `export_serving`,
which is atomic: the SavedModel is written to a temporary sibling directory and renamed last.
"""

from __future__ import annotations

import dataclasses
import os
import uuid
from typing import Callable, Dict, Optional

import tensorflow as tf

from trainer import layers  # noqa: F401 - registers the custom layers for load_model
from trainer.serving_model import ServingModel

QUERY_TOWER = "query_tower"
CANDIDATE_TOWER = "candidate_tower"
RANKING_MODEL = "ranking_model"
NETWORKS = (QUERY_TOWER, CANDIDATE_TOWER, RANKING_MODEL)


@dataclasses.dataclass(frozen=True)
class Networks:
    """The three functional networks of a trained recommender."""

    query_tower: tf.keras.Model
    candidate_tower: tf.keras.Model
    ranking_model: tf.keras.Model

    def as_dict(self) -> Dict[str, tf.keras.Model]:
        return {QUERY_TOWER: self.query_tower, CANDIDATE_TOWER: self.candidate_tower, RANKING_MODEL: self.ranking_model}


def save_trained(networks: Networks, model_dir: str) -> None:
    """Writes each network as a Keras SavedModel under `model_dir/<name>`."""
    for name, network in networks.as_dict().items():
        network.save(os.path.join(model_dir, name), include_optimizer=False)


def load_trained(model_dir: str) -> Networks:
    """Reads the networks written by `save_trained`."""
    missing = [n for n in NETWORKS if not tf.io.gfile.exists(os.path.join(model_dir, n))]
    if missing:
        raise FileNotFoundError(f"{model_dir} lacks the trained network(s) {', '.join(missing)}")
    loaded = {n: tf.keras.models.load_model(os.path.join(model_dir, n), compile=False) for n in NETWORKS}
    return Networks(loaded[QUERY_TOWER], loaded[CANDIDATE_TOWER], loaded[RANKING_MODEL])


def export_serving(
    module: ServingModel, export_dir: str, finalize: Optional[Callable[[str], None]] = None
) -> str:
    """Saves `module` with its signatures to `export_dir`, atomically (temp dir, then rename).

    Args:
      module: the serving model.
      export_dir: the directory to create.
      finalize: called with the temporary directory before the rename (e.g. to add
        `assets.extra/tf_serving_warmup_requests`).

    Returns:
      `export_dir`.

    Raises:
      FileExistsError: `export_dir` already exists (versions are never overwritten).
    """
    if tf.io.gfile.exists(export_dir):
        raise FileExistsError(f"{export_dir} exists; a serving model is never overwritten")
    parent = export_dir.rstrip("/").rsplit("/", 1)[0] if "://" in export_dir else os.path.dirname(os.path.abspath(export_dir))
    tf.io.gfile.makedirs(parent)
    tmp = os.path.join(parent, f".tmp-{os.path.basename(export_dir)}-{uuid.uuid4().hex[:8]}")
    try:
        tf.saved_model.save(module, tmp, signatures=module.signatures(), options=module.save_options())
        if finalize is not None:
            finalize(tmp)
        tf.io.gfile.rename(tmp, export_dir)
    finally:
        if tf.io.gfile.isdir(tmp):
            tf.io.gfile.rmtree(tmp)
    return export_dir
