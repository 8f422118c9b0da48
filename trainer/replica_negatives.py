"""In-batch negatives gathered across replicas, so N replicas train the single-device loss.

Under a `tf.distribute` strategy each replica holds only its share of the global batch. Scored
against its local candidates alone, a query would see B/N - 1 negatives instead of B - 1: a
different, easier loss than one device with batch B (a known tensorflow-recommenders pitfall).

`gather_candidates` all-gathers the candidate side (embeddings and, aligned with them, ids and
sampling probabilities) from every replica and rotates the result so that this replica's own
candidates come first. Row i of the local queries then still meets its positive at column i,
which is where the Retrieval task's diagonal labels put it (the same as labels offset by the
replica's position in the global batch), and every query is scored against all B candidates.

Gradients: `ReplicaContext.all_gather` is differentiable (its gradient sums the upstream
gradients of all replicas and keeps this replica's slice). The Retrieval task's loss is a SUM
over the local queries and Keras sums gradients across replicas, so the summed per-replica
gradients are the gradient of the single-device loss over the global batch.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

import tensorflow as tf


def _distributed_replica_context() -> Optional[tf.distribute.ReplicaContext]:
    """The replica context when running on more than one replica in sync, else None."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return None
    return context


def replica_offset(context: tf.distribute.ReplicaContext, local_size: tf.Tensor) -> tf.Tensor:
    """Position of this replica's first example in the gathered global batch.

    Uses the gathered local sizes rather than replica_id x local size, so that an uneven last
    batch (say 4 + 3 examples) is handled too.

    Args:
      context: the replica context.
      local_size: scalar int32, this replica's number of examples.

    Returns:
      Scalar int32 offset.
    """
    sizes = context.all_gather(tf.reshape(local_size, [1]), axis=0)
    replica = tf.cast(context.replica_id_in_sync_group, tf.int32)
    return tf.reduce_sum(sizes[:replica])


def gather_candidates(
    candidates: tf.Tensor, aligned: Sequence[Optional[tf.Tensor]] = ()
) -> List[Optional[tf.Tensor]]:
    """Candidate embeddings (and aligned per-candidate tensors) of the whole global batch.

    Outside a multi-replica context the inputs come back unchanged, so the same model code runs
    on one device and on many.

    Args:
      candidates: [local_batch, dim] candidate embeddings of this replica.
      aligned: tensors whose first axis matches `candidates` (ids, sampling probabilities);
        None entries stay None.

    Returns:
      [candidates, *aligned], each of first dimension global_batch, rotated so that this
      replica's own rows come first.

    Raises:
      ValueError: an aligned tensor's static first dimension differs from the candidates'.
    """
    candidates = tf.convert_to_tensor(candidates)
    aligned = [None if t is None else tf.convert_to_tensor(t) for t in aligned]
    for tensor in aligned:
        if tensor is not None and not tensor.shape[:1].is_compatible_with(candidates.shape[:1]):
            raise ValueError(
                f"aligned tensor of shape {tensor.shape} does not match candidates {candidates.shape}"
            )
    context = _distributed_replica_context()
    if context is None:
        return [candidates, *aligned]
    present = [candidates] + [t for t in aligned if t is not None]
    # One all_gather per tensor: a batched gather would pack tensors of different dtypes.
    gathered = [context.all_gather(t, axis=0) for t in present]
    offset = replica_offset(context, tf.shape(candidates)[0])
    rotated = iter([tf.roll(t, shift=-offset, axis=0) for t in gathered])
    first = next(rotated)
    return [first] + [None if t is None else next(rotated) for t in aligned]
