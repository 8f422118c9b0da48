"""An executor for TFX's stock Pusher that publishes each version atomically.

The stock filesystem push copies files into `<base>/<version>/` in place, so a model server
polling the base directory can see a half-copied version. This executor copies into a hidden
temporary sibling and renames it last, and never reuses or goes back on a version number: the
new version is max(unix time, newest existing version + 1), so pushes in the same second, or
after an online learner's versions, still sort last.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Dict, List, Optional

from tfx import types
from tfx.components.pusher import component as pusher_component
from tfx.components.pusher import executor as pusher_executor
from tfx.dsl.components.base import executor_spec
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils, proto_utils

from core import version_dirs

SOURCE_MARKER = "source_model"


def _source_marker(version_dir: str) -> str:
    return os.path.join(version_dir, "assets.extra", SOURCE_MARKER)


def already_published(model_path: str, base_directory: str) -> Optional[str]:
    """The newest version directory when it was published from `model_path`, else None."""
    newest = version_dirs.newest_version_dir(base_directory)
    if newest is None:
        return None
    marker = _source_marker(newest)
    if os.path.exists(marker):
        with open(marker, encoding="utf-8") as handle:
            if handle.read().strip() == os.path.abspath(model_path):
                return newest
    return None


def publish_atomically(model_path: str, base_directory: str, now: float) -> str:
    """Copies `model_path` to `<base_directory>/<new version>` via a temp dir and a rename.

    The copy records its source in `assets.extra/source_model` (TF Serving ignores it); a model
    that is already the newest version is not published again.

    Returns:
      The published directory.
    """
    previous = already_published(model_path, base_directory)
    if previous is not None:
        logging.info("model %s is already the newest version %s", model_path, previous)
        return previous

    def mark_source(copy_dir: str) -> None:
        os.makedirs(os.path.dirname(_source_marker(copy_dir)), exist_ok=True)
        with open(_source_marker(copy_dir), "w", encoding="utf-8") as handle:
            handle.write(os.path.abspath(model_path) + "\n")

    version = version_dirs.publish_atomically(model_path, base_directory, now, prepare=mark_source)
    target = os.path.join(base_directory, str(version))
    logging.info("published model version %d at %s", version, target)
    return target


class AtomicPushExecutor(pusher_executor.Executor):
    """Stock Pusher semantics (blessing check, MLMD properties) with an atomic publish."""

    def Do(  # noqa: N802 - TFX executor API
        self,
        input_dict: Dict[str, List[types.Artifact]],
        output_dict: Dict[str, List[types.Artifact]],
        exec_properties: Dict[str, Any],
    ) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        model_push = artifact_utils.get_single_instance(
            output_dict[standard_component_specs.PUSHED_MODEL_KEY]
        )
        if not self.CheckBlessing(input_dict):
            self._MarkNotPushed(model_push)
            return
        model_path = self.GetModelPath(input_dict)
        destination = pusher_pb2.PushDestination()
        proto_utils.json_to_proto(
            exec_properties[standard_component_specs.PUSH_DESTINATION_KEY], destination
        )
        if destination.WhichOneof("destination") != "filesystem":
            raise NotImplementedError("AtomicPushExecutor pushes to a filesystem destination only")
        target = publish_atomically(model_path, destination.filesystem.base_directory, time.time())
        io_utils.copy_dir(model_path, model_push.uri)
        self._MarkPushed(model_push, pushed_destination=target, pushed_version=os.path.basename(target))


class AtomicPusher(pusher_component.Pusher):
    """TFX's Pusher (same inputs, outputs and MLMD types) with `AtomicPushExecutor`."""

    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(AtomicPushExecutor)
