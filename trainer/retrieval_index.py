"""Typed settings of the serving model's retrieval index: brute force (the default) or ScaNN.

Brute force scores every catalog item with one matrix product and runs on the stock TF Serving
binary. ScaNN (`trainer.scann_serving_model`) searches a tree of `num_leaves` partitions with
asymmetric-hashing scores, visiting `leaves_to_search` of them per query, and re-scores the best
`reorder` candidates exactly; its SavedModel holds ScaNN's custom ops, which only a process that
has imported `scann` (the project's model server, `recsys recommend` and the evaluator do,
`core.custom_ops`) can load. Left unset, `num_leaves` and `leaves_to_search` follow the catalog's
size (`resolve_leaves`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional, Tuple

from core import custom_ops
from core.config_loader import check, one_of
from core.custom_ops import CUSTOM_OP_PACKAGES

KINDS = ("brute_force", "scann")
# Automatic leaves_to_search covers this many times the items a query asks for: k-means leaves
# are uneven, and a query whose searched leaves hold fewer items than it asks for gets padding.
COVERAGE = 3
SCANN_NAMESPACE = "Scann"  # op namespace of ScaNN's custom ops (`core.custom_ops`)
SCANN_MISSING = (f"retrieval_index.kind 'scann' needs the scann package: "
                 f"pip install {CUSTOM_OP_PACKAGES[SCANN_NAMESPACE][1]}")


def scann_installed() -> bool:
    """Whether the `scann` package can be imported (without importing it)."""
    return custom_ops.installed(SCANN_NAMESPACE)


@dataclasses.dataclass(frozen=True)
class RetrievalIndexConfig:
    """How the serving model finds the two-tower's best candidates.

    Attributes:
      kind: 'brute_force' (exact, stock ops) or 'scann' (approximate, ScaNN's custom ops).
      num_leaves: ScaNN partitions (k-means centres) of the catalog; at most the catalog size
        (None: the square root of the catalog size, rounded).
      leaves_to_search: partitions scored per query (more: higher recall, slower; None: a tenth
        of `num_leaves`, or more on a small catalog: see `resolve_leaves`).
      reorder: candidates re-scored exactly with the float embeddings (0: none; at least the
        number retrieved when set).
      dimensions_per_block: dimensions per asymmetric-hashing block (more: smaller, coarser).
      training_iterations: k-means iterations of the partitioning.
      seen_headroom: at most this many candidates are retrieved beyond `candidates_to_rank`
        (no more than the longest seen list), so that removing a user's seen items still leaves
        `candidates_to_rank` of them.
    """

    kind: str = "brute_force"
    num_leaves: Optional[int] = None
    leaves_to_search: Optional[int] = None
    reorder: int = 2000  # benchmarks/ann.py: at 500 recall@100 levels off below 0.95 on trained vectors
    dimensions_per_block: int = 2
    training_iterations: int = 12
    seen_headroom: int = 200

    def __post_init__(self) -> None:
        check("retrieval_index", [
            (one_of(self.kind, KINDS), f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}"),
            *((getattr(self, n) is None or getattr(self, n) >= 1, f"{n} must be >= 1, got {getattr(self, n)!r}")
              for n in ("num_leaves", "leaves_to_search", "dimensions_per_block", "training_iterations")),
            *((getattr(self, n) >= 0, f"{n} must be >= 0, got {getattr(self, n)!r}") for n in ("reorder", "seen_headroom")),
            (self.num_leaves is None or self.leaves_to_search is None or self.leaves_to_search <= self.num_leaves,
             f"leaves_to_search ({self.leaves_to_search}) must not exceed num_leaves ({self.num_leaves})"),
        ])

    @property
    def approximate(self) -> bool:
        """Whether the index is ScaNN (approximate, custom ops) rather than brute force."""
        return self.kind == "scann"

    def resolve_leaves(self, n_items: int, retrieved: int = 0) -> Tuple[int, int]:
        """(num_leaves, leaves_to_search) for a catalog of `n_items`, the unset ones automatic:
        num_leaves = round(sqrt(n_items)) (at least 1); leaves_to_search = a tenth of num_leaves,
        or more where needed so that the searched leaves hold `COVERAGE` times the `retrieved`
        items a query asks for on average (at most num_leaves, at least 1).

        Args:
          n_items: catalog size.
          retrieved: neighbours each query asks the index for (0: not known yet).

        Raises:
          ValueError: num_leaves exceeds `n_items`, or leaves_to_search exceeds the automatic
            num_leaves (one line).
        """
        num_leaves = self.num_leaves if self.num_leaves is not None else max(1, round(math.sqrt(n_items)))
        if num_leaves > n_items:
            raise ValueError(f"retrieval_index.num_leaves ({num_leaves}) exceeds the catalog's {n_items} items")
        if self.leaves_to_search is None:
            covering = math.ceil(COVERAGE * retrieved * num_leaves / n_items) if n_items else 1
            leaves_to_search = min(num_leaves, max(1, num_leaves // 10, covering))
        else:
            leaves_to_search = self.leaves_to_search
        if leaves_to_search > num_leaves:
            raise ValueError(f"retrieval_index.leaves_to_search ({leaves_to_search}) exceeds the automatic "
                             f"num_leaves ({num_leaves}) of the catalog's {n_items} items")
        return num_leaves, leaves_to_search
