"""The quick guard evaluation: no online version is exported if quality drops too far.

The held-out slice is up to `guard_users` users of the base data's eval split (drawn once, with
a seed) and, for each, their eval items outside their base training items. Its metric is
Recall@K (`evaluation.metrics`, hits / min(K, relevant)) of the retrieval scores
(query embedding x candidate embeddings) as the version would serve them: each user's items
seen so far (base training and applied events) are excluded, and eval items the user has since
consumed no longer count as relevant. It takes milliseconds in numpy. The reference is the base model's value on the same slice; a candidate update
passes when its value is at least ``reference * (1 - guard_max_drop)``. Without eval data the
slice is empty and every update passes (the learner says so when it starts).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Dict, List, Sequence

import numpy as np

from evaluation import metrics


@dataclasses.dataclass(frozen=True)
class GuardResult:
    """One guard evaluation."""

    value: float
    reference: float
    passed: bool

    def describe(self, k: int) -> str:
        """A one-line summary for the progress log."""
        verdict = "pass" if self.passed else "BLOCKED"
        return f"guard recall@{k} {self.value:.4f} (reference {self.reference:.4f}): {verdict}"


class Guard:
    """See the module docstring.

    Args:
      eval_users / eval_items: raw ids of the base eval interactions.
      user_row / item_row: raw id -> row of the learner's tables (at start).
      seen: catalog rows each user row had seen in the base training data.
      k: the recall cutoff.
      max_drop: the allowed relative drop.
      max_users: size of the slice.
      seed: seed of the user sample.
    """

    def __init__(self, eval_users: Sequence[str], eval_items: Sequence[str], user_row: Dict[str, int],
                 item_row: Dict[str, int], seen: Sequence[set], k: int, max_drop: float,
                 max_users: int, seed: int) -> None:
        relevant: Dict[int, set] = {}
        for user, item in zip(eval_users, eval_items):
            row, col = user_row.get(str(user)), item_row.get(str(item))
            if row is not None and col is not None and col not in seen[row]:
                relevant.setdefault(row, set()).add(col)
        rows = np.array(sorted(relevant), dtype=np.int64)
        if len(rows) > max_users:
            rows = np.sort(np.random.default_rng(seed).choice(rows, size=max_users, replace=False))
        self.rows = rows
        self.relevant: List[set] = [relevant[r] for r in rows]
        self.k = k
        self.max_drop = max_drop
        self.reference = math.nan

    @property
    def empty(self) -> bool:
        """Whether the slice holds no user (the guard then passes everything)."""
        return len(self.rows) == 0

    def recall(self, user_embeddings: np.ndarray, candidate_embeddings: np.ndarray, seen: Sequence[set]) -> float:
        """Recall@K of the slice (NaN when empty or when no relevant item is left).

        Args:
          user_embeddings / candidate_embeddings: indexed by table rows.
          seen: catalog rows each user row has seen so far.
        """
        if self.empty:
            return math.nan
        scores = user_embeddings[self.rows] @ candidate_embeddings.T
        relevant = []
        for position, row in enumerate(self.rows):
            scores[position, list(seen[row])] = -np.inf
            relevant.append(np.array(sorted(self.relevant[position] - seen[row]), np.int64))
        k = min(self.k, scores.shape[1])
        top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        hits, n_relevant = metrics.hit_matrix(top, relevant)
        per_user = metrics.recall_per_user(hits, n_relevant)
        return float(np.nanmean(per_user)) if np.any(n_relevant > 0) else math.nan

    def set_reference(self, user_embeddings: np.ndarray, candidate_embeddings: np.ndarray, seen: Sequence[set]) -> float:
        """Measures the base model; its value is the reference of every later check."""
        self.reference = self.recall(user_embeddings, candidate_embeddings, seen)
        return self.reference

    def check(self, user_embeddings: np.ndarray, candidate_embeddings: np.ndarray, seen: Sequence[set]) -> GuardResult:
        """Evaluates an update (with the seen items of its tables) against the reference."""
        value = self.recall(user_embeddings, candidate_embeddings, seen)
        if math.isnan(value) or math.isnan(self.reference):
            return GuardResult(value, self.reference, True)
        return GuardResult(value, self.reference, value >= self.reference * (1.0 - self.max_drop))
