"""Trains the candidate ranker: sources fitted on the fit part, labels from the label slice.

The train split's interactions are cut by `trainer.label_slice`. Every source is fitted on the
fit part alone (item-item neighbours, popularity, recent popularity at each candidate half-life,
and the two-tower when the Trainer left networks that never saw the label slice); each label
user's merged candidates and features come from `trainer.candidate_features`, exactly as the
serving model computes them; a candidate is positive when it is one of the user's label-slice
items. The half-life whose recent popularity scores the label slice best is kept. Unknown users'
list (all-time or recent popularity, at any of the half-lives) is chosen the same way on the label
users who have no fit-part interactions: in a temporal run, the users who arrived last.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Callable, Dict, List, Optional

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from core import features as F
from trainer import export, tables
from trainer.candidate_features import candidate_features
from trainer.candidate_ranker import TrainedRanker, train_ranker
from trainer.candidate_ranker_config import CandidateRankerConfig
from trainer.candidate_sources import popularity_tables, recent_popularity
from trainer.ease_block import EaseBlock
from trainer.item_item_config import ItemItemConfig
from trainer.item_item_source import ItemItemSource
from trainer.label_slice import label_slice_mask
from trainer.serving_model import ServingTables

USERS_PER_BATCH = 256
SELECTION_USERS = 2000  # label users that judge the half-life and the unknown users' list
MIN_NEW_USERS = 20  # fewer new label users than this: every label user judges the unknown users' list
COLD_START_MARGIN = 1.02  # recent popularity serves unknown users only when its Recall@20 is above 1.02x popularity's


def _seen_matrix(fit: ServingTables, users: np.ndarray, n_items: int) -> np.ndarray:
    seen = np.zeros((len(users), n_items), bool)
    for i, u in enumerate(users):
        seen[i, fit.seen_values[fit.seen_row_splits[u]:fit.seen_row_splits[u + 1]]] = True
    return seen


def _seen_rows(fit: ServingTables, users: np.ndarray) -> np.ndarray:
    """Every fit-part item of each user, [B, longest] catalog rows padded with -1."""
    lists = [fit.seen_values[fit.seen_row_splits[u]:fit.seen_row_splits[u + 1]] for u in users]
    out = np.full((len(users), max(1, max(len(x) for x in lists))), -1, np.int64)
    for i, x in enumerate(lists):
        out[i, :len(x)] = x
    return out


def _vector_recall_at_20(scores: np.ndarray, fit: ServingTables, users: np.ndarray, labels: List[np.ndarray]) -> float:
    """Mean Recall@20 of one score vector shared by every user, each user's fit-part items excluded."""
    if not len(users):
        return 0.0
    order = np.argsort(-scores, kind="stable")
    recalls = []
    for user, label in zip(users, labels):
        seen = fit.seen_values[fit.seen_row_splits[user]:fit.seen_row_splits[user + 1]]
        head = order[:20 + len(seen)]
        top = head[~np.isin(head, seen)][:20]
        recalls.append(np.isin(label, top).sum() / min(20, len(label)))
    return float(np.mean(recalls))


def _cold_start_half_life(fit: ServingTables, users: np.ndarray, labels: List[np.ndarray], rows: np.ndarray,
                          timestamps: np.ndarray, recent: Dict[float, np.ndarray], log: Callable[[str], None]
                          ) -> Optional[float]:
    """The list unknown users are served: all-time popularity (None) or recent popularity at a half-life.

    Judged by Recall@20 on the label users without fit-part interactions, the ones most like
    unknown users (in a temporal run: the users who arrived in the newest slice), or on every
    label user when fewer than `MIN_NEW_USERS` are new. Recent popularity must beat all-time
    popularity by more than the `COLD_START_MARGIN` factor; short of it popularity is kept.
    """
    new = np.flatnonzero(np.diff(fit.seen_row_splits)[users] == 0)
    judged = new if len(new) >= MIN_NEW_USERS else np.arange(len(users))
    judged = judged[:SELECTION_USERS]
    judged_labels = [labels[i] for i in judged]
    n_items = len(next(iter(recent.values())))  # every recent popularity vector spans the catalog
    all_time = np.bincount(rows, minlength=n_items).astype(np.float64)
    popularity_recall = _vector_recall_at_20(all_time, fit, users[judged], judged_labels)
    best, best_recall = None, popularity_recall
    lines = [f"popularity: {popularity_recall:.4f}"]
    for h, vector in recent.items():
        value = _vector_recall_at_20(vector, fit, users[judged], judged_labels)
        lines.append(f"recent {h:g}: {value:.4f}")
        if value > best_recall and value > COLD_START_MARGIN * popularity_recall:
            best, best_recall = h, value
    who = f"{len(judged)} label users without fit-part interactions" if len(new) >= MIN_NEW_USERS \
        else f"{len(judged)} label users (only {len(new)} without fit-part interactions)"
    chosen = "popularity" if best is None else f"recent popularity at half-life {best:g}"
    log(f"candidate ranker: unknown users' list, Recall@20 on {who}: {', '.join(lines)} -> {chosen}")
    return best


def _two_tower_scorer(networks: export.Networks, fit: ServingTables, timestamp: float
                      ) -> Callable[[np.ndarray], np.ndarray]:
    embeddings = tables.embed_catalog(networks.candidate_tower, fit.item_features)

    def score(users: np.ndarray) -> np.ndarray:
        feats = {k: tf.constant(v[users]) for k, v in fit.user_features.items()}
        feats[F.TIMESTAMP_XF] = tf.fill([len(users)], tf.constant(timestamp, tf.float32))
        query = networks.query_tower({n: feats[n] for n in networks.query_tower.input_names}, training=False)
        return (query.numpy() @ embeddings.T).astype(np.float32)

    return score


def fit_candidate_ranker(
    data: Dict[str, np.ndarray],
    tft_output: tft.TFTransformOutput,
    catalog: Dict[str, np.ndarray],
    item_features: Dict[str, np.ndarray],
    split: str,
    cfg: CandidateRankerConfig,
    item_item: ItemItemConfig,
    fit_networks: Optional[export.Networks] = None,
    context_timestamp: float = 1.0,
    log: Callable[[str], None] = logging.info,
) -> TrainedRanker:
    """The ranker of the candidates of `cfg.sources`, trained on the train split `data`.

    Args:
      data: the train split's `tables.USER_COLUMNS`, concatenated.
      tft_output / catalog / item_features: the Transform output and the catalog (raw and
        transformed).
      split: the run's split ("random" or "time"), which decides how the label slice is cut.
      cfg: the ranker's settings.
      item_item: the item-item source's settings.
      fit_networks: networks trained on the fit part only (the two-tower source), or None
        (then the two-tower is left out of the sources).
      context_timestamp: the transformed timestamp the query tower is given.
      log: progress lines.
    """
    sources = tuple(s for s in cfg.sources if s != "two_tower" or fit_networks is not None)
    if sources != cfg.sources:
        log("candidate ranker: no fit-part networks from the Trainer, so the two-tower is not among its sources")
    in_label = label_slice_mask(data[F.USER_ID_XF], data[F.ITEM_ID_XF], data[F.TIMESTAMP_XF], split,
                                cfg.label_fraction)
    fit_part = {name: column[~in_label] for name, column in data.items()}
    ease = (cfg.ease_items, cfg.ease_l2) if "ease" in sources else None
    fit = tables.build_tables([fit_part], tft_output, catalog, item_features, item_item=item_item, half_life=1.0,
                              ease=ease)
    n_users, n_items = len(fit.user_keys), len(fit.item_keys)
    item_rows = tables.catalog_rows_of_items(tft_output, catalog[F.ITEM_ID])
    label_users = data[F.USER_ID_XF][in_label]
    label_rows = item_rows[data[F.ITEM_ID_XF][in_label]]
    known = (label_users < n_users) & (label_rows >= 0)
    pairs = np.unique(np.stack([label_users[known], label_rows[known]], axis=1), axis=0)
    seen_users = np.repeat(np.arange(len(fit.seen_row_splits) - 1), np.diff(fit.seen_row_splits))
    seen_codes = seen_users.astype(np.int64) * n_items + fit.seen_values
    fit_seen = np.isin(pairs[:, 0].astype(np.int64) * n_items + pairs[:, 1], seen_codes)
    pairs = pairs[~fit_seen]  # positives are items new to the user
    users, starts = np.unique(pairs[:, 0], return_index=True)
    labels = np.split(pairs[:, 1], starts[1:])
    if len(users) > cfg.max_users:
        pick = np.sort(np.random.default_rng(cfg.seed).choice(len(users), cfg.max_users, replace=False))
        users, labels = users[pick], [labels[i] for i in pick]
    log(f"candidate ranker: {len(users)} label users, {len(pairs)} label-slice interactions new to their user, "
        f"sources {', '.join(sources)}")

    fit_users = fit_part[F.USER_ID_XF]
    fit_rows = item_rows[fit_part[F.ITEM_ID_XF]]
    ok = (fit_users < n_users) & (fit_rows >= 0)
    timestamps = fit_part[F.TIMESTAMP_XF][ok]
    sample = np.arange(min(len(users), SELECTION_USERS))
    vectors = {h: recent_popularity(fit_rows[ok], timestamps, n_items, h) for h in cfg.half_lives}
    recalls = {h: _vector_recall_at_20(v, fit, users[sample], [labels[i] for i in sample]) for h, v in vectors.items()}
    half_life = max(recalls, key=recalls.get)
    log("candidate ranker: recent popularity Recall@20 on the label slice by half-life: "
        + ", ".join(f"{h:g}: {r:.4f}" for h, r in recalls.items()) + f" -> {half_life:g}")
    cold_start = _cold_start_half_life(fit, users, labels, fit_rows[ok], timestamps, vectors, log)
    pop = popularity_tables(fit_users[ok], fit_rows[ok], timestamps, n_users, n_items, half_life)
    item_source = ItemItemSource(fit.item_item.neighbour_ids, fit.item_item.neighbour_weights, top_n=1) \
        if "item_item" in sources else None
    ease_source = EaseBlock(fit.ease, n_items) if ease is not None else None
    tower = _two_tower_scorer(fit_networks, fit, context_timestamp) if "two_tower" in sources else None

    item_genre_ids = tf.constant(fit.item_features[F.ITEM_GENRES_XF]) if cfg.genre_affinity else None
    feats, valid, positives = [], [], []
    for start in range(0, len(users), USERS_PER_BATCH):
        batch = users[start:start + USERS_PER_BATCH]
        seen = tf.constant(_seen_rows(fit, batch)) if "ease" in sources or cfg.genre_affinity else None
        scores = []
        for source in sources:
            if source == "two_tower":
                scores.append(tf.constant(tower(batch)))
            elif source == "ease":
                scores.append(ease_source.scores(seen))
            elif source == "item_item":
                item_scores, reached = item_source.scores(tf.constant(fit.item_item.recent_rows[batch]))
                scores.append(tf.where(reached, item_scores, float("-inf")))
            else:
                table = pop.popularity if source == "popularity" else pop.recent_popularity
                scores.append(tf.constant(np.broadcast_to(table, (len(batch), n_items))))
        genres = (seen, item_genre_ids) if cfg.genre_affinity else None
        rows, ok_slots, x = candidate_features(
            scores, tf.constant(_seen_matrix(fit, batch, n_items)), pop.item_log_count,
            pop.user_log_activity[batch], cfg.per_source, n_items, genres,
        )
        rows = rows.numpy()
        feats.append(x.numpy())
        valid.append(ok_slots.numpy())
        positives.append(np.stack([np.isin(r, labels[start + i]) for i, r in enumerate(rows)]))
    ranker = train_ranker(np.concatenate(feats), np.concatenate(valid), np.concatenate(positives), sources,
                          half_life, cfg, log=log, genre_affinity=cfg.genre_affinity)
    return dataclasses.replace(ranker, ease_items=cfg.ease_items, ease_l2=cfg.ease_l2, cold_start_half_life=cold_start,
                               report={**ranker.report, "cold_start_half_life": cold_start})
