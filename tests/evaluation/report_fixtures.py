"""Evaluation results shared by the report tests."""

import math

RESULTS = {"two_tower": {"recall_at_10": 0.2, "recall_at_100": 0.5, "ndcg_at_10": 0.1},
           "popularity": {"recall_at_10": 0.1, "recall_at_100": 0.3, "ndcg_at_10": math.nan}}
SLICES = {"cold": {"two_tower": {"recall_at_10": 0.05}, "popularity": {"recall_at_10": 0.04}}}
BLESSING = {"blessed": True, "reason": "recall_at_10 = 0.2000 reaches the floor 0.1000"}
