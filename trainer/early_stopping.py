"""Early stopping on a held-out metric, with the best epoch's weights restored.

`BestEpoch` is a Keras callback: after each epoch it reads a metric (computed by a function it is
given, e.g. `RecallAtK`, or taken from the epoch's logs, e.g. `val_rmse`), writes it into the
logs (so TensorBoard and the History record it), keeps the weights of the best epoch so far and
stops the fit once `patience` epochs in a row have not improved on it. At the end of the fit the
best weights are put back, also when the epoch ceiling ended the fit. With `evaluate_before` the
untrained state counts as epoch 0 (a network that starts at a baseline, such as the residual
rating network at the bias model, then never ends worse than it on the held-out data).

`RecallAtK` is the retrieval metric: full-catalog Recall@K of held-out users (relevant = their
held-out items; each user's fit-part items excluded from the ranking), the project's definition
(hits / min(K, |relevant|), averaged over users with a relevant item).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Dict, List, Optional

import numpy as np
import tensorflow as tf

USER_BATCH = 1024  # users scored at once (a [batch, items] score matrix)


@dataclasses.dataclass(frozen=True)
class RetrievalValidation:
    """Held-out users and the catalog, ready for the towers.

    Attributes:
      query_inputs: the query tower's inputs, one row per validation user.
      item_inputs: the candidate tower's inputs, one row per catalog item (column).
      excluded: (indptr [users + 1], columns) of the items each user must not be recommended.
      relevant: (indptr [users + 1], columns) of each user's held-out items.
    """

    query_inputs: Dict[str, np.ndarray]
    item_inputs: Dict[str, np.ndarray]
    excluded: tuple
    relevant: tuple

    @property
    def users(self) -> int:
        return len(self.relevant[0]) - 1


def recall_at_k(scores: np.ndarray, excluded: tuple, relevant: tuple, k: int) -> np.ndarray:
    """Per-user Recall@k of a [users, items] score matrix (NaN for users without relevant items).

    Args:
      scores: float [users, items]; modified in place (excluded items set to -inf).
      excluded / relevant: (indptr [users + 1], columns) per user.
      k: cutoff.
    """
    users, items = scores.shape
    counts = np.diff(excluded[0])
    scores[np.repeat(np.arange(users), counts), excluded[1][excluded[0][0]:excluded[0][-1]]] = -np.inf
    k = min(k, items)
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < items else np.tile(np.arange(items), (users, 1))
    n_relevant = np.diff(relevant[0])
    rows = np.repeat(np.arange(users), n_relevant)
    relevant_keys = rows * items + relevant[1][relevant[0][0]:relevant[0][-1]]
    top_keys = np.arange(users)[:, None] * items + top
    top_valid = np.take_along_axis(scores, top, axis=1) > -np.inf
    hits = (np.isin(top_keys, relevant_keys) & top_valid).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_relevant > 0, hits / np.minimum(k, n_relevant), np.nan)


class RecallAtK:
    """Callable: the full-catalog Recall@k of the validation users under the model's towers."""

    def __init__(self, validation: RetrievalValidation, k: int) -> None:
        self.validation, self.k = validation, k

    def __call__(self, model: tf.keras.Model) -> float:
        v = self.validation
        query_tower, candidate_tower = model.query_tower, model.candidate_tower
        items = candidate_tower.predict({n: v.item_inputs[n] for n in candidate_tower.input_names},
                                        batch_size=8192, verbose=0)
        values: List[np.ndarray] = []
        for start in range(0, v.users, USER_BATCH):
            stop = min(start + USER_BATCH, v.users)
            batch = {n: v.query_inputs[n][start:stop] for n in query_tower.input_names}
            queries = query_tower.predict(batch, batch_size=8192, verbose=0)
            scores = queries.astype(np.float32) @ items.astype(np.float32).T
            values.append(recall_at_k(scores, _rows(v.excluded, start, stop), _rows(v.relevant, start, stop), self.k))
        per_user = np.concatenate(values) if values else np.array([])
        valid = ~np.isnan(per_user)
        return float(per_user[valid].mean()) if valid.any() else float("nan")


def _rows(csr: tuple, start: int, stop: int) -> tuple:
    """Rows start..stop of an (indptr, columns) pair, as a pair whose indptr starts at 0."""
    indptr, columns = csr
    return indptr[start:stop + 1] - indptr[start], columns[indptr[start]:indptr[stop]]


class BestEpoch(tf.keras.callbacks.Callback):
    """Early stopping on a held-out metric; restores the best epoch's weights (see module doc).

    Args:
      monitor: the metric's name in the logs (written there when `compute` is given).
      mode: 'max' or 'min' (whether higher or lower is better).
      patience: epochs without improvement before the fit stops (0: never stops early; the
        best epoch is still restored at the end).
      compute: called with the model after each epoch to compute the metric; None reads it from
        the epoch's logs (e.g. `val_rmse` of the validation data).
      evaluate_before: computes the metric of the untrained model (epoch 0), or None.

    Attributes (after the fit):
      curve: the metric after each epoch (epoch 1 first).
      best_epoch: the epoch whose weights the model holds (0: the initial weights).
      best: its metric.
      initial: the metric of epoch 0, or None.
    """

    def __init__(self, monitor: str, mode: str, patience: int,
                 compute: Optional[Callable[[tf.keras.Model], float]] = None,
                 evaluate_before: Optional[Callable[[tf.keras.Model], float]] = None) -> None:
        super().__init__()
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        self.monitor, self.mode, self.patience = monitor, mode, patience
        self._compute, self._evaluate_before = compute, evaluate_before
        self.curve: List[float] = []
        self.best_epoch, self.best, self.initial = 0, math.nan, None
        self._best_weights = None
        self._waited = 0

    def _better(self, value: float) -> bool:
        if math.isnan(value):
            return False
        if math.isnan(self.best):
            return True
        return value > self.best if self.mode == "max" else value < self.best

    def on_train_begin(self, logs=None) -> None:
        self.curve, self.best_epoch, self.best, self._waited = [], 0, math.nan, 0
        self._best_weights = None
        if self._evaluate_before is not None:
            self.initial = float(self._evaluate_before(self.model))
            self.best, self._best_weights = self.initial, self.model.get_weights()

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        logs = logs if logs is not None else {}
        if self._compute is not None:
            value = float(self._compute(self.model))
            logs[self.monitor] = value
        else:
            if self.monitor not in logs:
                raise KeyError(f"early stopping monitors {self.monitor!r}, which the fit does not log "
                               f"(it logs {sorted(logs)})")
            value = float(logs[self.monitor])
        self.curve.append(value)
        if self._better(value):
            self.best, self.best_epoch, self._waited = value, epoch + 1, 0
            self._best_weights = self.model.get_weights()
        else:
            self._waited += 1
            if self.patience and self._waited >= self.patience:
                self.model.stop_training = True

    def on_train_end(self, logs=None) -> None:
        if self._best_weights is not None:
            self.model.set_weights(self._best_weights)

    def summary(self) -> Dict[str, object]:
        """The fit's early-stopping record (JSON-ready)."""
        return {"metric": self.monitor, "mode": self.mode, "patience": self.patience, "best_epoch": self.best_epoch,
                "best": self.best, "initial": self.initial, "epochs_run": len(self.curve), "curve": self.curve}
