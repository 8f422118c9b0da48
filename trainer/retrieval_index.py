"""Typed settings of the serving model's retrieval index: brute force (the default) or ScaNN.

Brute force scores every catalog item with one matrix product and runs on the stock TF Serving
binary. ScaNN (`trainer.scann_serving_model`) searches a tree of `num_leaves` partitions with
asymmetric-hashing scores, visiting `leaves_to_search` of them per query, and re-scores the best
`reorder` candidates exactly; its SavedModel holds ScaNN's custom ops, which only a server that
has imported `scann` (the project's model server does) can load.
"""

from __future__ import annotations

import dataclasses

from core.config_loader import check, one_of

KINDS = ("brute_force", "scann")


@dataclasses.dataclass(frozen=True)
class RetrievalIndexConfig:
    """How the serving model finds the two-tower's best candidates.

    Attributes:
      kind: 'brute_force' (exact, stock ops) or 'scann' (approximate, ScaNN's custom ops).
      num_leaves: ScaNN partitions (k-means centres) of the catalog; at most the catalog size.
      leaves_to_search: partitions scored per query (more: higher recall, slower).
      reorder: candidates re-scored exactly with the float embeddings (0: none; at least the
        number retrieved when set).
      dimensions_per_block: dimensions per asymmetric-hashing block (more: smaller, coarser).
      training_iterations: k-means iterations of the partitioning.
      seen_headroom: at most this many candidates are retrieved beyond `candidates_to_rank`
        (no more than the longest seen list), so that removing a user's seen items still leaves
        `candidates_to_rank` of them.
    """

    kind: str = "brute_force"
    num_leaves: int = 1000
    leaves_to_search: int = 100
    reorder: int = 2000  # benchmarks/ann.py: at 500 recall@100 levels off below 0.95 on trained vectors
    dimensions_per_block: int = 2
    training_iterations: int = 12
    seen_headroom: int = 200

    def __post_init__(self) -> None:
        check("retrieval_index", [
            (one_of(self.kind, KINDS), f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}"),
            *((getattr(self, n) >= 1, f"{n} must be >= 1, got {getattr(self, n)!r}")
              for n in ("num_leaves", "leaves_to_search", "dimensions_per_block", "training_iterations")),
            *((getattr(self, n) >= 0, f"{n} must be >= 0, got {getattr(self, n)!r}") for n in ("reorder", "seen_headroom")),
            (self.leaves_to_search <= self.num_leaves,
             f"leaves_to_search ({self.leaves_to_search}) must not exceed num_leaves ({self.num_leaves})"),
        ])

    @property
    def approximate(self) -> bool:
        """Whether the index is ScaNN (approximate, custom ops) rather than brute force."""
        return self.kind == "scann"
