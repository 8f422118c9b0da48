"""The fit part and the label slice of the train split, and what early stopping scores them with.

`trainer.label_slice` decides which train interactions form the label slice; this module cuts
in-memory feature arrays with it (`cut`), gathers each user's and each item's features from the
examples (`EntityTables`, fed batch by batch so the streamed input can use it too) and builds the
`trainer.early_stopping.RetrievalValidation` of the label slice: its users (a seeded sample of at
most `max_users`) queried with their latest fit-part history, the catalog of every train item,
each user's fit-part items excluded and their label-slice items (not in the fit part) relevant.
`HoldoutInputs` is what the Trainer reads (built in memory by `trainer.holdout_inputs`, streamed
by `trainer.streaming.holdout_inputs`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import numpy as np
import tensorflow as tf

from core import features as F
from trainer.early_stopping import RetrievalValidation
from trainer.label_slice import label_slice_mask
from trainer.towers import Vocabularies

Ratings = Tuple[np.ndarray, np.ndarray, np.ndarray]  # users, items, ratings
USER_COLUMNS = (F.USER_AGE_XF, F.USER_GENDER_XF, F.USER_OCCUPATION_XF)
ITEM_COLUMNS = (F.ITEM_GENRES_XF, F.ITEM_TITLE_XF, F.ITEM_YEAR_XF)


@dataclasses.dataclass(frozen=True)
class ExampleSource:
    """What a training split's batches are made from: what `trainer.multi_worker` shards by worker.

    Attributes:
      arrays: every transformed feature with its history (in-memory input), or None.
      patterns: the training files (streamed input), or None.
      timeline: their `trainer.streaming.Timeline`, keeping the split's records (streamed input).
      examples: number of examples in the split.
    """

    arrays: Optional[Dict[str, np.ndarray]] = None
    patterns: Optional[Union[str, Sequence[str]]] = None
    timeline: Optional[Any] = None
    examples: int = 0


@dataclasses.dataclass(frozen=True)
class HoldoutInputs:
    """What the fit-part fit, the early stopping and the refit on the whole train split read.

    `fit` and `train` are the one-process batches; on a cluster `trainer.multi_worker` replaces
    them with per-worker inputs made from `fit_source` and `train_source`.
    """

    fit: Union[tf.data.Dataset, Any]
    label: tf.data.Dataset
    train: Union[tf.data.Dataset, Any]
    eval: tf.data.Dataset
    fit_probabilities: np.ndarray
    train_probabilities: np.ndarray
    validation: RetrievalValidation
    fit_ratings: Ratings
    train_ratings: Ratings
    mode: str  # 'memory' or 'stream'
    counts: Dict[str, int]  # examples in the fit part, the label slice, train and eval
    fit_source: Optional[ExampleSource] = None
    train_source: Optional[ExampleSource] = None


def check_cut(fit_examples: int, label_examples: int) -> None:
    """Raises ValueError unless both the fit part and the label slice hold examples."""
    if not fit_examples or not label_examples:
        raise ValueError(f"the label slice ({label_examples} examples) and the fit part ({fit_examples}) must "
                         "both be non-empty; the train split is too small to hold out a label slice")


def slice_mask(arrays: Dict[str, np.ndarray], split: str, fraction: float) -> np.ndarray:
    """True for the examples of `arrays` in the label slice (`trainer.label_slice`)."""
    return label_slice_mask(arrays[F.USER_ID_XF], arrays[F.ITEM_ID_XF], arrays[F.TIMESTAMP_XF], split, fraction)


def cut(arrays: Dict[str, np.ndarray], mask: np.ndarray) -> Tuple[Dict[str, np.ndarray], Dict[str, np.ndarray]]:
    """(fit part, label slice): the examples of `arrays` where `mask` is False, and where it is True."""
    return ({name: value[~mask] for name, value in arrays.items()},
            {name: value[mask] for name, value in arrays.items()})


class EntityTables:
    """Each user's side features and each item's features, as the examples carry them.

    Fed batches of transformed examples (`update`); a later example overwrites an earlier one of
    the same id (the features of an id are the same in every example of a span).
    """

    def __init__(self, vocab: Vocabularies) -> None:
        self.users = {name: np.zeros(vocab.users, np.int64) for name in USER_COLUMNS}
        self.items: Dict[str, np.ndarray] = {}
        self.item_seen = np.zeros(vocab.items, bool)
        self._num_items = vocab.items

    def update(self, batch: Dict[str, np.ndarray]) -> None:
        users, items = batch[F.USER_ID_XF], batch[F.ITEM_ID_XF]
        for name in USER_COLUMNS:
            self.users[name][users] = batch[name]
        for name in ITEM_COLUMNS:
            values = batch[name]
            if name not in self.items:
                self.items[name] = np.zeros((self._num_items,) + values.shape[1:], values.dtype)
            self.items[name][items] = values
        self.item_seen[items] = True


def _csr(rows: np.ndarray, columns: np.ndarray, n_rows: int) -> Tuple[np.ndarray, np.ndarray]:
    order = np.lexsort((columns, rows))
    rows, columns = rows[order], columns[order]
    keep = np.r_[True, (np.diff(rows) != 0) | (np.diff(columns) != 0)] if len(rows) else np.zeros(0, bool)
    rows, columns = rows[keep], columns[keep]
    return np.searchsorted(rows, np.arange(n_rows + 1)).astype(np.int64), columns.astype(np.int64)


def retrieval_validation(
    fit_pairs: Tuple[np.ndarray, np.ndarray],
    label_pairs: Tuple[np.ndarray, np.ndarray],
    latest: np.ndarray,
    tables: EntityTables,
    timestamp: float,
    max_users: int,
    seed: int = 0,
) -> RetrievalValidation:
    """The label slice's users, queried as the serving model would query them after the fit part.

    Args:
      fit_pairs / label_pairs: (user indices, item indices) of the fit part and the label slice.
      latest: [num_users + 1, HISTORY_LENGTH] each user's latest fit-part items
        (`trainer.history.latest_histories`).
      tables: every train user's and item's features.
      timestamp: the transformed timestamp of the queries (the newest fit-part time).
      max_users: at most this many users (a seeded sample of those with a relevant item).
      seed: the sample's seed.

    Returns:
      The `RetrievalValidation`; catalog = every item of the train split.
    """
    catalog = np.flatnonzero(tables.item_seen)
    column = np.full(len(tables.item_seen), -1, np.int64)
    column[catalog] = np.arange(len(catalog))
    fit_users, fit_items = fit_pairs
    label_users, label_items = label_pairs
    seen = np.zeros(0, np.int64)
    if len(fit_users):
        seen = np.unique(fit_users.astype(np.int64) * len(column) + fit_items)
    label_keys = label_users.astype(np.int64) * len(column) + label_items
    new = ~np.isin(label_keys, seen)
    users = np.unique(label_users[new])
    if len(users) > max_users:
        users = np.sort(np.random.default_rng(seed).choice(users, max_users, replace=False))

    def pairs(u: np.ndarray, i: np.ndarray, keep: np.ndarray):
        keep = keep & np.isin(u, users) & (column[i] >= 0)
        return _csr(np.searchsorted(users, u[keep]), column[i[keep]], len(users))

    query = {F.USER_ID_XF: users.astype(np.int64),
             F.USER_HISTORY: latest[np.minimum(users, len(latest) - 1)],
             F.TIMESTAMP_XF: np.full(len(users), timestamp, np.float32)}
    query.update({name: values[users] for name, values in tables.users.items()})
    items = {F.ITEM_ID_XF: catalog.astype(np.int64)}
    items.update({name: values[catalog] for name, values in tables.items.items()})
    return RetrievalValidation(query_inputs=query, item_inputs=items,
                               excluded=pairs(fit_users, fit_items, np.ones(len(fit_users), bool)),
                               relevant=pairs(label_users, label_items, new))
