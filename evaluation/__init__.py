"""Framework-free evaluation of recommenders: data indexing, metrics, baselines, protocol,
slices, blessing gate and reports. The TFX component ``components.evaluate_model`` (through ``evaluation.model_eval``) calls these
plain functions."""

from evaluation.baselines import BiasRatingModel, EASERecommender, PopularityRecommender
from evaluation.data import (
    IdIndex,
    InteractionData,
    from_splits,
    group_by_user,
    unseen_eval_items,
)
from evaluation.gate import Blessing, decide_blessing
from evaluation.protocol import (
    compare_side_by_side,
    evaluate_ratings,
    evaluate_slices,
    evaluate_top_k,
    evaluate_top_k_unexcluded,
)
from evaluation.slices import slice_items_by_popularity, slice_users_by_activity

__all__ = [
    "BiasRatingModel", "Blessing", "EASERecommender", "IdIndex", "InteractionData",
    "PopularityRecommender", "compare_side_by_side", "decide_blessing", "evaluate_ratings",
    "evaluate_slices", "evaluate_top_k", "evaluate_top_k_unexcluded", "from_splits",
    "group_by_user", "slice_items_by_popularity", "slice_users_by_activity", "unseen_eval_items",
]
