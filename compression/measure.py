"""Measurements of an exported variant: bytes, gzip bytes, parameters, non-zeros, latency, quality.

* Sizes: bytes on disk of every file of a SavedModel (or a TFLite file), and the size of a
  deterministic gzip (level 9) of a tar of the same files, i.e. what a download costs. These
  walk and tar local files: measure a local export (`components.compress_model` exports into a
  local temporary folder and copies the result to its artifact URI afterwards).
* Parameters: the numeric tensors of the SavedModel's checkpoint (`variables/`), grouped by
  the module attribute they hang from, so a report can say what dominates; tensors embedded
  in the graph (`saved_model.pb`: the per-user and catalog tables) are counted in bytes.
* Latency: median wall time of the `serving_default` signature at given batch sizes.
* Quality: the serving model's signatures judged with the evaluation step's own code
  (`evaluation.model_eval` recommenders + `evaluation.protocol`), on the split
  given, so every variant is compared on the same users and the same metrics.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import os
import statistics
import tarfile
import time
from typing import Callable, Dict, Optional, Sequence

import numpy as np

from evaluation import model_eval, protocol
from evaluation.data import InteractionData

CHECKPOINT_META = ("_CHECKPOINTABLE_OBJECT_GRAPH", "save_counter")
GRAPH_FILE = "saved_model.pb"


@dataclasses.dataclass(frozen=True)
class EvalSplit:
    """The train and eval interactions in one index space (see `model_eval.index_splits`)."""

    train: InteractionData
    eval: InteractionData

    @classmethod
    def read(cls, train_patterns: Sequence[str], eval_patterns: Sequence[str],
             catalog_ids: Sequence[str]) -> "EvalSplit":
        """Reads raw interaction examples of both splits, as the evaluation step does."""
        train, eval_ = model_eval.index_splits(
            model_eval.read_interactions(train_patterns),
            model_eval.read_interactions(eval_patterns), catalog_ids,
        )
        return cls(train, eval_)


def _files(path: str) -> Sequence[str]:
    if os.path.isfile(path):
        return [path]
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{path} does not exist")
    out = []
    for root, dirs, files in os.walk(path):
        dirs.sort()
        out.extend(os.path.join(root, name) for name in sorted(files))
    return out


def disk_bytes(path: str) -> int:
    """Bytes of the local file at `path`, or of every file under the local directory `path`."""
    return sum(os.path.getsize(f) for f in _files(path))


def gzip_bytes(path: str) -> int:
    """Bytes of a deterministic gzip (level 9) of a tar of `path` (a local file or directory)."""
    base = path if os.path.isdir(path) else os.path.dirname(path)
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=9, mtime=0) as zipped:
        with tarfile.open(fileobj=zipped, mode="w") as tar:
            for name in _files(path):
                info = tar.gettarinfo(name, arcname=os.path.relpath(name, base))
                info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
                with open(name, "rb") as handle:
                    tar.addfile(info, handle)
    return buffer.tell()


@dataclasses.dataclass(frozen=True)
class ParameterStats:
    """Numeric checkpoint tensors of a SavedModel.

    Attributes:
      parameters: number of scalars.
      nonzeros: scalars that are not exactly zero.
      bytes_by_group: raw bytes per top-level attribute (e.g. 'query_tower',
        'candidate_embeddings'), plus 'graph (saved_model.pb)' for the graph and its
        embedded constant tables.
    """

    parameters: int
    nonzeros: int
    bytes_by_group: Dict[str, int]

    def dominant(self) -> str:
        """The group with the most bytes."""
        return max(self.bytes_by_group, key=self.bytes_by_group.get)


def parameter_stats(saved_model_dir: str) -> ParameterStats:
    """Counts parameters and non-zeros of a SavedModel and groups its bytes.

    Raises:
      FileNotFoundError: `saved_model_dir` has no checkpoint.
    """
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    prefix = os.path.join(saved_model_dir, "variables", "variables")
    if not tf.io.gfile.glob(prefix + ".index"):
        raise FileNotFoundError(f"{saved_model_dir} holds no variables checkpoint")
    reader = tf.train.load_checkpoint(prefix)
    parameters = nonzeros = 0
    groups: Dict[str, int] = {}
    for key, dtype in sorted(reader.get_variable_to_dtype_map().items()):
        if key.split("/")[0] in CHECKPOINT_META or not (dtype.is_floating or dtype.is_integer):
            continue
        value = reader.get_tensor(key)
        parameters += value.size
        nonzeros += int(np.count_nonzero(value))
        group = key.split("/")[0]
        groups[group] = groups.get(group, 0) + value.nbytes
    groups["graph (saved_model.pb)"] = tf.io.gfile.stat(os.path.join(saved_model_dir, GRAPH_FILE)).length
    return ParameterStats(parameters, nonzeros, groups)


def median_latency_ms(fn: Callable[[], object], repeats: int, warmup: int = 2) -> float:
    """Median wall time of `fn()` in milliseconds over `repeats` calls (after `warmup` calls)."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def serving_latency(loaded: object, user_ids: Sequence[str], batch_sizes: Sequence[int],
                    repeats: int) -> Dict[int, float]:
    """Median latency (ms) of `serving_default` at each batch size, users drawn from `user_ids`.

    Args:
      loaded: a SavedModel loaded with `tf.saved_model.load`.
    """
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    from core import features as F  # pylint: disable=import-outside-toplevel

    if not len(user_ids):
        raise ValueError("latency needs at least one user id")
    fn = loaded.signatures[F.SERVING_SIGNATURE]
    out = {}
    for size in batch_sizes:
        batch = tf.constant([str(user_ids[i % len(user_ids)]) for i in range(size)])
        out[int(size)] = median_latency_ms(lambda b=batch: fn(**{F.SERVING_INPUT_USER: b}), repeats)
    return out


def evaluate_serving(loaded: object, split: EvalSplit, cutoffs: Sequence[int],
                     max_users: Optional[int]) -> Dict[str, float]:
    """Two-stage top-K metrics, retrieval-only recall/NDCG and RMSE of a serving SavedModel.

    The same recommenders, protocol and user sample as `evaluation.model_eval.evaluate`
    (without its baselines, which do not depend on the model).

    Args:
      loaded: the serving SavedModel, loaded with `tf.saved_model.load`.

    Returns:
      metric -> value: the two-stage metrics under their own names, `retrieval_recall_at_K` /
      `retrieval_ndcg_at_K`, `rmse` and `mae`.
    """
    from core import features as F  # pylint: disable=import-outside-toplevel

    users, items = split.train.user_index, split.train.item_index
    two_stage = model_eval.signature_recommender(loaded, F.SERVING_SIGNATURE, users, items)
    metrics = dict(protocol.evaluate_top_k(two_stage, split.train, split.eval, cutoffs, max_users))
    retrieval = model_eval.signature_recommender(loaded, "retrieve", users, items)
    only = protocol.evaluate_top_k(retrieval, split.train, split.eval, cutoffs, max_users)
    for k in cutoffs:
        metrics[f"retrieval_recall_at_{k}"] = only[f"recall_at_{k}"]
        metrics[f"retrieval_ndcg_at_{k}"] = only[f"ndcg_at_{k}"]
    rater = model_eval.signature_rater(loaded, users, items)
    metrics.update(protocol.evaluate_ratings(rater, split.eval))
    return metrics
