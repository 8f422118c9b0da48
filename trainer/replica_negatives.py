"""In-batch softmax loss with negatives gathered across replicas.

Under a `tf.distribute` strategy each replica holds only its share of the global batch. Scored
against its local candidates alone, a query would see B/N - 1 negatives instead of B - 1: a
different, easier loss than one device with batch B (a known tensorflow-recommenders pitfall).

`in_batch_softmax_loss` all-gathers the candidate side (embeddings and, aligned with them,
ids and sampling probabilities) from every replica and scores the local queries against all B
candidates, the label of local row i being column offset + i, where offset is this replica's
position in the global batch. On one replica it equals `tfrs.tasks.Retrieval`'s loss (same
temperature, logQ correction and accidental-hit removal; tested), computed with a sparse
softmax cross-entropy instead of dense one-hot labels, which is faster.

Gradients: `ReplicaContext.all_gather` is differentiable (its gradient sums the upstream
gradients of all replicas and keeps this replica's slice). The loss is a SUM over the local
queries and Keras sums gradients across replicas, so the summed per-replica gradients are the
gradient of the single-device loss over the global batch.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

# What tensorflow-recommenders adds to removed candidates' logits: their softmax weight is 0.
MIN_LOGIT = float(np.finfo(np.float32).min) / 100.0


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


def gather_across_replicas(
    candidates: tf.Tensor, aligned: Sequence[Optional[tf.Tensor]] = ()
) -> Tuple[List[Optional[tf.Tensor]], tf.Tensor]:
    """Candidate embeddings (and aligned per-candidate tensors) of the whole global batch.

    Outside a multi-replica context the inputs come back unchanged with offset 0, so the same
    model code runs on one device and on many.

    Args:
      candidates: [local_batch, dim] candidate embeddings of this replica.
      aligned: tensors whose first axis matches `candidates` (ids, sampling probabilities);
        None entries stay None.

    Returns:
      ([candidates, *aligned] each of first dimension global_batch in replica order, the
      scalar int32 offset of this replica's rows in them).

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
        return [candidates, *aligned], tf.constant(0, tf.int32)
    # One all_gather per tensor: a batched gather would pack tensors of different dtypes. Each
    # goes through tf.identity, an op placed on this replica's device: an input tensor taken as
    # is (say the ids) has no device in a multi-worker step, and the gather would refuse it.
    gathered = [None if t is None else context.all_gather(tf.identity(t), axis=0) for t in [candidates, *aligned]]
    return gathered, replica_offset(context, tf.shape(candidates)[0])


def in_batch_softmax_loss(
    query: tf.Tensor,
    candidates: tf.Tensor,
    candidate_ids: Optional[tf.Tensor] = None,
    sampling_probability: Optional[tf.Tensor] = None,
    temperature: Optional[float] = None,
    remove_accidental_hits: bool = False,
    cross_replica: bool = True,
) -> tf.Tensor:
    """Sum over the local queries of the softmax loss against the in-batch candidates.

    Args:
      query: [local_batch, dim] query embeddings; row i's positive is candidate row i.
      candidates: [local_batch, dim] candidate embeddings.
      candidate_ids: [local_batch] item ids (needed to remove accidental hits).
      sampling_probability: [local_batch] sampling probability of each candidate (logQ
        correction: log p is subtracted from its logits); None for no correction.
      temperature: logits are divided by it (None or 0: no scaling).
      remove_accidental_hits: drop negatives that are the query's own positive item.
      cross_replica: gather the candidates of every replica (False: local negatives only).

    Returns:
      Scalar float32 loss.

    Raises:
      ValueError: accidental-hit removal without candidate ids.
    """
    if remove_accidental_hits and candidate_ids is None:
        raise ValueError("removing accidental hits needs the candidate ids")
    offset = tf.constant(0, tf.int32)
    if cross_replica:
        (candidates, candidate_ids, sampling_probability), offset = gather_across_replicas(
            candidates, [candidate_ids, sampling_probability]
        )
    scores = tf.matmul(query, candidates, transpose_b=True)
    if temperature:
        scores = scores / temperature
    if sampling_probability is not None:
        scores -= tf.math.log(tf.clip_by_value(sampling_probability, 1e-6, 1.0))[tf.newaxis, :]
    labels = tf.range(tf.shape(query)[0], dtype=tf.int32) + offset
    if remove_accidental_hits:
        columns = tf.range(tf.shape(candidates)[0], dtype=tf.int32)
        positive_ids = tf.gather(candidate_ids, labels)
        hits = tf.equal(positive_ids[:, tf.newaxis], candidate_ids[tf.newaxis, :])
        hits = tf.logical_and(hits, tf.not_equal(columns[tf.newaxis, :], labels[:, tf.newaxis]))
        scores = tf.where(hits, MIN_LOGIT, scores)
    return tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=scores))
