"""`recsys recommend`: top-N items for a user from a pushed model directory or a live server."""

from __future__ import annotations

import os
from typing import List, Tuple

from core import features as F
from core import version_dirs
from core.custom_ops import load_saved_model

Recommendation = Tuple[str, float, str, str]  # item id, score, title, genres


def resolve_version_dir(model_dir: str) -> str:
    """`model_dir` itself when it holds a SavedModel, else its newest integer version."""
    if os.path.exists(os.path.join(model_dir, "saved_model.pb")):
        return model_dir
    if not os.path.isdir(model_dir):
        raise FileNotFoundError(f"model directory {model_dir} does not exist")
    newest = version_dirs.newest_version_dir(model_dir)
    if newest is None:
        raise FileNotFoundError(f"{model_dir} holds no SavedModel and no integer version directory")
    return newest


def recommend_from_saved_model(model_dir: str, user_id: str, k: int) -> List[Recommendation]:
    """Loads the newest version under `model_dir` and returns the user's top-`k` items."""
    import tensorflow as tf

    loaded = load_saved_model(resolve_version_dir(model_dir))
    out = loaded.signatures[F.SERVING_SIGNATURE](**{F.SERVING_INPUT_USER: tf.constant([user_id])})
    items = out[F.SERVING_OUTPUT_ITEMS].numpy()[0][:k]
    scores = out[F.SERVING_OUTPUT_SCORES].numpy()[0][:k]
    info = loaded.signatures["lookup_items"](**{F.ITEM_ID: tf.constant(items)})
    titles = info[F.ITEM_TITLE].numpy()
    genres = info[F.ITEM_GENRES].numpy()
    return [
        (item.decode(), float(score), title.decode(), genre.decode())
        for item, score, title, genre in zip(items, scores, titles, genres)
    ]


def recommend_from_server(server: str, model_name: str, user_id: str, k: int) -> List[Recommendation]:
    """Asks a running model server (TF Serving gRPC API) for the user's top-`k` items."""
    import numpy as np

    from serving.client import RecommendationClient

    with RecommendationClient(server) as client:
        [(items, scores)] = client.recommend([user_id], model_name=model_name)
        items, scores = items[:k], scores[:k]
        info = client.predict(model_name, {F.ITEM_ID: np.array(items, dtype=object)}, signature="lookup_items")
    titles = [t.decode() if isinstance(t, bytes) else str(t) for t in info[F.ITEM_TITLE]]
    genres = [g.decode() if isinstance(g, bytes) else str(g) for g in info[F.ITEM_GENRES]]
    return list(zip(items, scores, titles, genres))


def format_table(user_id: str, recommendations: List[Recommendation]) -> str:
    """A readable table of recommendations."""
    lines = [f"Top {len(recommendations)} for user {user_id}:", f"{'#':>3}  {'score':>8}  {'item':<10}  title  [genres]"]
    for rank, (item, score, title, genres) in enumerate(recommendations, 1):
        lines.append(f"{rank:>3}  {score:8.4f}  {item:<10}  {title or '?'}  [{genres}]")
    return "\n".join(lines)
