"""The Trainer's inputs with the label slice held out: fit part, label slice, whole train, eval.

`training_inputs` reads the train and eval files once and returns `HoldoutInputs`: the batches
of the fit part (each example's history from the fit part only), of the label slice (each user's
latest fit-part items as history, what a model fitted on the fit part would serve with), of the
whole train split and of the eval split (histories as `trainer.inputs.add_histories` makes them),
the items' sampling probabilities of the fit part and of the whole train split, the
`RetrievalValidation` of the label slice and the (user, item, rating) triples the bias models
are fitted and measured on. The in-memory input builds it here; the streamed one in
`trainer.streaming.holdout_inputs`.
"""

from __future__ import annotations

import logging
from typing import Dict, Optional, Sequence, Union

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from core import features as F
from trainer import history, holdout, inputs, streaming
from trainer.config import TrainerConfig
from trainer.towers import Vocabularies

Patterns = Union[str, Sequence[str]]

logger = logging.getLogger(__name__)


def ratings_of(arrays: Dict[str, np.ndarray]) -> holdout.Ratings:
    """The (user, item, rating) triples of feature arrays."""
    return arrays[F.USER_ID_XF], arrays[F.ITEM_ID_XF], arrays[F.RATING_XF].astype(np.float64)


def training_inputs(train_patterns: Patterns, eval_patterns: Patterns, tf_transform_output: tft.TFTransformOutput,
                    vocab: Vocabularies, cfg: TrainerConfig, examples: Optional[int] = None) -> holdout.HoldoutInputs:
    """The inputs of `run_fn`, in memory or streamed (`cfg.input_mode`, see `trainer.streaming`).

    Args:
      examples: the number of training examples when already counted (else counted here).
    """
    examples = streaming.count_records(train_patterns) if examples is None else examples
    if streaming.streams(cfg, examples):
        return streaming.holdout_inputs(train_patterns, eval_patterns, tf_transform_output, vocab, cfg)
    logger.info("holding %d training examples in memory", examples)
    train = inputs.load_arrays(train_patterns, tf_transform_output)
    return from_arrays(train, inputs.load_arrays(eval_patterns, tf_transform_output), vocab, cfg)


def from_arrays(train: Dict[str, np.ndarray], eval_: Dict[str, np.ndarray], vocab: Vocabularies,
                cfg: TrainerConfig) -> holdout.HoldoutInputs:
    """The in-memory `HoldoutInputs` of the train and eval splits' feature arrays (histories are
    added here, in place).

    Raises:
      ValueError: the fit part or the label slice would be empty.
    """
    num_users = vocab.users - F.OOV_BUCKETS
    fit, label = holdout.cut(train, holdout.slice_mask(train, cfg.split, cfg.validation_fraction))
    holdout.check_cut(len(fit[F.USER_ID_XF]), len(label[F.USER_ID_XF]))
    inputs.add_histories(fit, label, num_users)
    inputs.add_histories(train, eval_, num_users)
    tables = holdout.EntityTables(vocab)
    tables.update(train)
    latest = history.latest_histories(fit[F.USER_ID_XF], fit[F.ITEM_ID_XF], fit[F.TIMESTAMP_XF], num_users)
    validation = holdout.retrieval_validation(
        (fit[F.USER_ID_XF], fit[F.ITEM_ID_XF]), (label[F.USER_ID_XF], label[F.ITEM_ID_XF]), latest, tables,
        timestamp=float(fit[F.TIMESTAMP_XF].max()), max_users=cfg.validation_max_users, seed=cfg.seed)

    def probabilities(arrays: Dict[str, np.ndarray]) -> np.ndarray:
        counts = np.bincount(arrays[F.ITEM_ID_XF], minlength=vocab.items)[: vocab.items]
        return inputs.probabilities_from_counts(counts.astype(np.float64))

    def batches(arrays: Dict[str, np.ndarray], shuffle: bool = False) -> tf.data.Dataset:
        return inputs.array_dataset(arrays, cfg.batch_size, shuffle=shuffle, seed=cfg.seed)

    counts = {"fit_part": len(fit[F.USER_ID_XF]), "label_slice": len(label[F.USER_ID_XF]),
              "train": len(train[F.USER_ID_XF]), "eval": len(eval_[F.USER_ID_XF])}
    return holdout.HoldoutInputs(
        fit=batches(fit, shuffle=True), label=batches(label), train=batches(train, shuffle=True), eval=batches(eval_),
        fit_probabilities=probabilities(fit), train_probabilities=probabilities(train), validation=validation,
        fit_ratings=ratings_of(fit), train_ratings=ratings_of(train), mode="memory", counts=counts,
        fit_source=holdout.ExampleSource(arrays=fit, examples=counts["fit_part"]),
        train_source=holdout.ExampleSource(arrays=train, examples=counts["train"]))
