"""Quality lab: candidate sources, baselines and a learned ranker, side by side, in minutes.

A research bench for the recommendation model's design (issue 14), measured on the project's
own protocol (`evaluation`: full-catalog ranking, each user's train items excluded,
relevant items = the user's eval items not in train) without running the pipeline.

Data, split as the pipeline splits it:

* ml-latest-small is imported with the project's importer (`ingest.import_any`), the
  synthetic default world is generated with `ingest.generate_synthetic` and the default
  `SyntheticDataConfig`, each into a temporary folder; the serialized Examples are read back.
* temporal split: the importer's own train/eval folders (newest 20 % of interactions by time).
* random split: what ExampleGen's hash split does to the same records. ImportExampleGen reads
  each record as bytes and TFX's `_PartitionFn` puts it into bucket
  ``int(sha256(record).hexdigest(), 16) % 10``; buckets 0-7 are train, 8-9 eval
  (`pipeline.pipeline.interactions_output_config`). That is reproduced byte for byte here.

Models (each scores the whole catalog for every user; top-K lists exclude train items):
popularity, recent popularity (exponentially decayed counts), EASE (lambda sweep), item kNN
(co-occurrence cosine with shrinkage, top-k neighbours), the two-tower exactly as the Trainer
builds it today (`trainer.towers`, `trainer.model.RetrievalModel`, today's TrainerConfig), the
two-tower tuned (Adam, history-dominated query tower, early stopping on a validation Recall@20
from a slice of train), and the learned ranker over merged candidates (see `ranker_*`).

Usage:
    python -m benchmarks.quality_lab [--datasets ml-random,ml-time,synthetic] [--quick]
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import json
import os
import pathlib
import sys
import tempfile
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import scipy.sparse

ML_LATEST_SMALL = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "ml-latest-small"
RESULTS = pathlib.Path(__file__).resolve().parent / "results"
CUTOFFS = (10, 20, 100)
COLUMNS = ("recall_at_20", "ndcg_at_10", "user_hit_rate_at_100", "hit100_interactions")
SOURCE_EASE_ITEMS = 4000  # the EASE candidate source models the 4000 most popular items
INNER_FRACTION = 0.2  # share of the train split held out as the ranker's / early stopping's labels


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Dataset:
    """One split of one data set, integer-indexed, with the side features the towers use."""

    name: str
    train: "object"  # evaluation.data.InteractionData
    eval: "object"
    item_side: Dict[str, np.ndarray]  # per item index: genres [I, MAX_GENRES], title [I, T], year [I]
    user_side: Dict[str, np.ndarray]  # per user index: age, gender, occupation buckets
    sizes: Dict[str, int]             # vocabulary sizes of the side features
    inner_split: str                  # "time" or "random": how the train split is cut again


def _tfx_is_train(records: Sequence[bytes]) -> np.ndarray:
    """Whether TFX's ExampleGen puts each serialized record into train, with the pipeline's split config.

    Calls TFX's own partition function (`_PartitionFn`: sha256 of the record bytes modulo the
    bucket total, bisected into the cumulative buckets) with `interactions_output_config("random")`.
    """
    from tfx.components.example_gen.base_example_gen_executor import _PartitionFn

    from pipeline.pipeline import interactions_output_config

    split_config = interactions_output_config("random").split_config
    buckets = list(np.cumsum([s.hash_buckets for s in split_config.splits]))
    assert [s.name for s in split_config.splits] == ["train", "eval"]
    return np.array([_PartitionFn(r, len(buckets), buckets, split_config) == 0 for r in records])


def _read_split(files: Sequence[str]) -> Tuple[List[bytes], Dict[str, np.ndarray]]:
    import tensorflow as tf

    from core import features as F

    spec = {
        F.USER_ID: tf.io.FixedLenFeature([], tf.string), F.ITEM_ID: tf.io.FixedLenFeature([], tf.string),
        F.RATING: tf.io.FixedLenFeature([], tf.float32), F.TIMESTAMP: tf.io.FixedLenFeature([], tf.int64),
        F.USER_AGE: tf.io.FixedLenFeature([], tf.int64), F.USER_GENDER: tf.io.FixedLenFeature([], tf.string),
        F.USER_OCCUPATION: tf.io.FixedLenFeature([], tf.string), F.ITEM_TITLE: tf.io.FixedLenFeature([], tf.string),
        F.ITEM_GENRES: tf.io.FixedLenFeature([], tf.string), F.ITEM_YEAR: tf.io.FixedLenFeature([], tf.int64),
    }
    raw: List[bytes] = []
    columns: Dict[str, List[np.ndarray]] = {name: [] for name in spec}
    if not files:
        return raw, {name: np.zeros(0) for name in spec}
    for batch in tf.data.TFRecordDataset(list(files), compression_type="GZIP").batch(20000):
        raw.extend(batch.numpy().tolist())
        parsed = tf.io.parse_example(batch, spec)
        for name in spec:
            columns[name].append(parsed[name].numpy())
    return raw, {name: np.concatenate(parts) for name, parts in columns.items()}


def _import(source: Optional[str], out_dir: str) -> None:
    from ingest.config import SyntheticDataConfig
    from ingest import generate_synthetic, import_any

    if source is None:
        generate_synthetic(out_dir, SyntheticDataConfig())
    else:
        import_any(source, out_dir)


def load(source: Optional[str], split: str, name: str) -> Dataset:
    """Imports `source` (None: the synthetic default) and splits it as the pipeline does."""
    from evaluation.data import InteractionData
    from core import features as F

    with tempfile.TemporaryDirectory(prefix="quality-lab-") as tmp:
        _import(source, tmp)
        parts = {s: _read_split(sorted(glob.glob(f"{tmp}/interactions/span-0/{s}/*.tfrecord.gz")))
                 for s in (F.TRAIN_SPLIT, F.EVAL_SPLIT)}
    raw = parts[F.TRAIN_SPLIT][0] + parts[F.EVAL_SPLIT][0]
    cols = {k: np.concatenate([parts[F.TRAIN_SPLIT][1][k], parts[F.EVAL_SPLIT][1][k]]) for k in parts[F.TRAIN_SPLIT][1]}
    if split == "time":
        is_train = np.r_[np.ones(len(parts[F.TRAIN_SPLIT][0]), bool), np.zeros(len(parts[F.EVAL_SPLIT][0]), bool)]
    else:
        is_train = _tfx_is_train(raw)
    # Indices: train ids first (first-seen order), then eval-only ids, as evaluation.data does.
    order = np.r_[np.flatnonzero(is_train), np.flatnonzero(~is_train)]
    user_ids, user_idx = _index(cols[F.USER_ID], order)
    item_ids, item_idx = _index(cols[F.ITEM_ID], order)
    n_users, n_items = len(user_ids), len(item_ids)

    def data(mask: np.ndarray) -> InteractionData:
        return InteractionData(user_idx[mask], item_idx[mask], cols[F.RATING][mask].astype(np.float64),
                               cols[F.TIMESTAMP][mask], n_users, n_items)

    item_side, user_side, sizes = _side_features(cols, user_idx, item_idx, n_users, n_items)
    return Dataset(name, data(is_train), data(~is_train), item_side, user_side, sizes,
                   inner_split=split)


def _index(ids: np.ndarray, order: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(distinct ids in first-seen order along `order`, index of every row)."""
    _, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    pos = np.empty(len(ids), np.int64)
    pos[order] = np.arange(len(order))
    first_pos = np.full(len(first), len(ids), np.int64)
    np.minimum.at(first_pos, inverse, pos)
    rank = np.argsort(np.argsort(first_pos, kind="stable"), kind="stable")
    return np.unique(ids)[np.argsort(rank)], rank[inverse]


def _vocab(values: Sequence[str]) -> Dict[str, int]:
    """Token -> index + 1 (0 pads), most frequent first, as tft.compute_and_apply_vocabulary ranks."""
    tokens, counts = np.unique(np.asarray(values, dtype=object).astype(str), return_counts=True)
    ordered = tokens[np.lexsort((tokens, -counts))]
    return {t: i + 1 for i, t in enumerate(ordered)}


def _side_features(cols, user_idx, item_idx, n_users, n_items):
    """The towers' transformed side features, built as `trainer.preprocessing` builds them."""
    import re

    from core import features as F

    first_item = np.full(n_items, -1, np.int64)
    first_item[item_idx[::-1]] = np.arange(len(item_idx))[::-1]
    titles = [cols[F.ITEM_TITLE][r].decode() for r in first_item]
    genres = [cols[F.ITEM_GENRES][r].decode().split(F.GENRE_SEPARATOR) for r in first_item]
    title_tokens = [re.sub(r"[^a-z0-9]+", " ", re.sub(r"\(\d{4}\)\s*$", " ", t.lower())).split() for t in titles]
    genre_vocab = _vocab([g for gs in genres for g in gs])
    token_vocab = _vocab([t for ts in title_tokens for t in ts])
    token_vocab = {t: i for t, i in token_vocab.items() if i <= F.TITLE_VOCAB_SIZE}

    def padded(lists, vocab, width):
        out = np.zeros((len(lists), width), np.int64)
        for row, tokens in enumerate(lists):
            ids = [vocab.get(t, len(vocab) + 1) for t in tokens][:width]
            out[row, :len(ids)] = ids
        return out

    year = cols[F.ITEM_YEAR][first_item]
    known = year[year > 0]
    bounds = np.quantile(known, np.linspace(0, 1, F.YEAR_BUCKETS + 1)[1:-1]) if known.size else np.zeros(0)
    year_bucket = np.where(year > 0, np.searchsorted(bounds, year, side="right") + 1, 0)
    first_user = np.full(n_users, -1, np.int64)
    first_user[user_idx[::-1]] = np.arange(len(user_idx))[::-1]
    age = cols[F.USER_AGE][first_user]
    age_bucket = np.searchsorted(np.array([F.MIN_AGE, *F.AGE_BUCKET_BOUNDARIES], float), age, side="right")
    gender_vocab = _vocab([g.decode() for g in cols[F.USER_GENDER]])
    occupation_vocab = _vocab([o.decode() for o in cols[F.USER_OCCUPATION]])
    gender = np.array([gender_vocab[g.decode()] - 1 for g in cols[F.USER_GENDER][first_user]])
    occupation = np.array([occupation_vocab[o.decode()] - 1 for o in cols[F.USER_OCCUPATION][first_user]])
    item_side = {F.ITEM_GENRES_XF: padded(genres, genre_vocab, F.MAX_GENRES),
                 F.ITEM_TITLE_XF: padded(title_tokens, token_vocab, F.MAX_TITLE_TOKENS),
                 F.ITEM_YEAR_XF: year_bucket.astype(np.int64)}
    user_side = {F.USER_AGE_XF: age_bucket.astype(np.int64), F.USER_GENDER_XF: gender.astype(np.int64),
                 F.USER_OCCUPATION_XF: occupation.astype(np.int64)}
    sizes = {"genres": len(genre_vocab) + 2, "title_tokens": len(token_vocab) + 2,
             "genders": len(gender_vocab) + 1, "occupations": len(occupation_vocab) + 1}
    return item_side, user_side, sizes


def inner_split(data, how: str, fraction: float = INNER_FRACTION, seed: int = 0):
    """Cuts a train split again: (fit part, label part), the newest `fraction` or a random one."""
    from evaluation.data import InteractionData

    n = len(data)
    if how == "time":
        order = np.lexsort((np.arange(n), data.timestamps))
        labels = np.zeros(n, bool)
        labels[order[n - int(round(fraction * n)):]] = True
    else:
        labels = np.random.default_rng(seed).random(n) < fraction

    def part(mask):
        return InteractionData(data.users[mask], data.items[mask], data.ratings[mask], data.timestamps[mask],
                               data.n_users, data.n_items)

    return part(~labels), part(labels)


def user_item_matrix(data) -> scipy.sparse.csr_matrix:
    """Binary users x items matrix of a split."""
    m = scipy.sparse.csr_matrix((np.ones(len(data), np.float32), (data.users, data.items)),
                                shape=(data.n_users, data.n_items))
    m.data[:] = 1.0
    return m


# ---------------------------------------------------------------------------------------------
# Candidate sources: each returns a dense float32 score matrix [n_users, n_items]
# ---------------------------------------------------------------------------------------------

def popularity_scores(train) -> np.ndarray:
    counts = np.bincount(train.items, minlength=train.n_items).astype(np.float32)
    return np.broadcast_to(counts, (train.n_users, train.n_items))


def recent_popularity(train, half_life_days: float) -> np.ndarray:
    """Counts decayed by age: weight 2^(-(newest - t) / half_life)."""
    age_days = (train.timestamps.max() - train.timestamps) / 86400.0
    weights = np.power(0.5, age_days / half_life_days)
    return np.bincount(train.items, weights=weights, minlength=train.n_items).astype(np.float32)


def ease_scores(train, l2: float, max_items: int = 10000) -> np.ndarray:
    """EASE (the project's baseline class) on the `max_items` most popular items."""
    from evaluation.baselines import EASERecommender

    model = EASERecommender(l2=l2, max_items=max_items).fit(train)
    out = np.zeros((train.n_users, train.n_items), np.float32)
    out[:, model.item_ids] = model.scores(np.arange(train.n_users))
    return out


def knn_scores(train, neighbours: int, shrink: float, alpha: float = 0.5, block: int = 1024) -> np.ndarray:
    """Item kNN: sim(i,j) = c_ij / (n_i^alpha n_j^(1-alpha) + shrink), top-k per item, score = X S.

    c_ij is the number of users with both items, n_i the item's users; the similarity is built
    a block of items at a time (dense BLAS products), keeping each item's top-k neighbours.
    """
    x = user_item_matrix(train)
    xd = x.toarray()
    n = xd.sum(axis=0)
    rows, cols, vals = [], [], []
    k = min(neighbours, train.n_items - 1)
    for start in range(0, train.n_items, block):
        idx = np.arange(start, min(start + block, train.n_items))
        co = xd[:, idx].T @ xd
        co[np.arange(idx.size), idx] = 0.0
        sim = co / (np.power(n[idx, None], alpha) * np.power(n[None, :], 1 - alpha) + shrink + 1e-9)
        top = np.argpartition(-sim, k, axis=1)[:, :k]
        rows.append(np.repeat(idx, k))
        cols.append(top.ravel())
        vals.append(np.take_along_axis(sim, top, 1).ravel())
    s = scipy.sparse.csr_matrix((np.concatenate(vals).astype(np.float32), (np.concatenate(rows), np.concatenate(cols))),
                                shape=(train.n_items, train.n_items))
    return np.asarray((x @ s).toarray(), dtype=np.float32)


# ---------------------------------------------------------------------------------------------
# Two-tower, as the Trainer builds it (trainer.towers / trainer.model)
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class TowerConfig:
    """The two-tower knobs studied here; the defaults are today's TrainerConfig."""

    embedding_dim: int = 32
    tower_layers: Tuple[int, ...] = (64,)
    epochs: int = 5
    batch_size: int = 512
    optimizer: str = "adagrad"
    learning_rate: float = 0.05
    temperature: float = 0.1
    logq: bool = True
    use_user_id: bool = True       # False: history-dominated query tower (no user-id embedding)
    l2: float = 0.0                # L2 on every embedding table (per example)
    early_stopping: bool = False   # pick the epoch on a validation Recall@20 (patience 2)
    max_epochs: int = 30


def _tower_inputs(ds: Dataset, data, users: np.ndarray, items: np.ndarray, timestamps: np.ndarray,
                  histories: np.ndarray, cfg: TowerConfig, t_range: Tuple[int, int]) -> Dict[str, np.ndarray]:
    from core import features as F

    lo, hi = t_range
    feats = {
        F.USER_ID_XF: users if cfg.use_user_id else np.zeros_like(users),
        F.USER_HISTORY: histories,
        F.TIMESTAMP_XF: ((timestamps - lo) / max(hi - lo, 1)).astype(np.float32),
        F.ITEM_ID_XF: items,
    }
    for name, values in ds.user_side.items():
        feats[name] = values[users]
    for name, values in ds.item_side.items():
        feats[name] = values[items]
    return feats


def two_tower(ds: Dataset, train, cfg: TowerConfig, valid=None, fixed_epochs: Optional[int] = None,
              seed: int = 7) -> Tuple[np.ndarray, Dict[str, object]]:
    """Trains the two-tower on `train`; returns (scores [U, I], info incl. the chosen epoch count)."""
    import tensorflow as tf

    from core import features as F
    from trainer import history, towers
    from trainer import model as models
    from trainer.inputs import probabilities_from_counts

    tf.keras.utils.set_random_seed(seed)
    vocab = towers.Vocabularies(
        users=(train.n_users + 1) if cfg.use_user_id else 1, items=train.n_items + 1,
        genders=ds.sizes["genders"], occupations=ds.sizes["occupations"], genres=ds.sizes["genres"],
        title_tokens=ds.sizes["title_tokens"], age_buckets=len(F.AGE_BUCKET_BOUNDARIES) + 2,
        year_buckets=F.YEAR_BUCKETS + 2)
    query = towers.build_query_tower(vocab, cfg.embedding_dim, cfg.tower_layers)
    candidate = towers.build_candidate_tower(vocab, cfg.embedding_dim, cfg.tower_layers)
    if cfg.l2:
        for tower in (query, candidate):
            for layer in tower.layers:
                if isinstance(layer, tf.keras.layers.Embedding):
                    tower.add_loss(lambda layer=layer: cfg.l2 * tf.reduce_sum(tf.square(layer.embeddings))
                                   / float(len(train)) * cfg.batch_size)
    counts = np.bincount(train.items, minlength=train.n_items + 1)
    model = models.RetrievalModel(query, candidate,
                                  item_probabilities=probabilities_from_counts(counts) if cfg.logq else None,
                                  temperature=cfg.temperature, remove_accidental_hits=True)
    opt = (tf.keras.optimizers.Adagrad(cfg.learning_rate) if cfg.optimizer == "adagrad"
           else tf.keras.optimizers.Adam(cfg.learning_rate))
    model.compile(optimizer=opt)
    t_range = (int(train.timestamps.min()), int(train.timestamps.max()))
    hist = history.example_histories(train.users, train.items, train.timestamps)
    feats = _tower_inputs(ds, train, train.users, train.items, train.timestamps, hist, cfg, t_range)
    dataset = tf.data.Dataset.from_tensor_slices(feats).shuffle(len(train), seed=seed,
                                                                 reshuffle_each_iteration=True)
    dataset = dataset.batch(cfg.batch_size).prefetch(2)
    latest = history.latest_histories(train.users, train.items, train.timestamps, train.n_users)[:train.n_users]
    all_users = np.arange(train.n_users)
    all_items = np.arange(train.n_items)

    def score() -> np.ndarray:
        uf = _tower_inputs(ds, train, all_users, np.zeros_like(all_users), np.full(train.n_users, t_range[1]),
                           latest, cfg, t_range)
        itf = _tower_inputs(ds, train, np.zeros_like(all_items), all_items, np.zeros_like(all_items),
                            np.zeros((train.n_items, F.HISTORY_LENGTH), np.int64), cfg, t_range)
        q = query.predict({n: uf[n] for n in query.input_names}, batch_size=4096, verbose=0)
        c = candidate.predict({n: itf[n] for n in candidate.input_names}, batch_size=4096, verbose=0)
        return (q @ c.T).astype(np.float32)

    epochs = fixed_epochs or cfg.epochs
    info: Dict[str, object] = {"curve": []}
    if cfg.early_stopping and valid is not None and fixed_epochs is None:
        best, best_epoch, best_weights, waited = -1.0, 0, None, 0
        for epoch in range(1, cfg.max_epochs + 1):
            model.fit(dataset, epochs=1, verbose=0)
            value = evaluate(score(), train, valid)["recall_at_20"]
            info["curve"].append(round(value, 4))
            if value > best:
                best, best_epoch, waited = value, epoch, 0
                best_weights = [query.get_weights(), candidate.get_weights()]
            else:
                waited += 1
                if waited >= 2:
                    break
        query.set_weights(best_weights[0])
        candidate.set_weights(best_weights[1])
        info["epochs"] = best_epoch
        return score(), info
    model.fit(dataset, epochs=epochs, verbose=0)
    info["epochs"] = epochs
    return score(), info


# ---------------------------------------------------------------------------------------------
# Evaluation (the project's protocol)
# ---------------------------------------------------------------------------------------------

def evaluate(scores: np.ndarray, train, eval_data) -> Dict[str, float]:
    """Seen-excluded full-catalog metrics of a score matrix, plus the eval-interaction hit rate@100."""
    from evaluation.data import group_by_user
    from evaluation.metrics import top_k_from_scores
    from evaluation.protocol import evaluate_top_k, evaluate_top_k_unexcluded

    indptr, seen = group_by_user(train)

    def recommend(users: np.ndarray, k: int) -> np.ndarray:
        exclude = [seen[indptr[u]:indptr[u + 1]] for u in users]
        return top_k_from_scores(scores[users], k, exclude=exclude)

    out = evaluate_top_k(recommend, train, eval_data, cutoffs=CUTOFFS)
    out["hit100_interactions"] = evaluate_top_k_unexcluded(recommend, eval_data, k=100)[
        "top100_interaction_hit_rate"]
    return out


# ---------------------------------------------------------------------------------------------
# Learned ranker over merged candidates
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class RankerConfig:
    """The ranker's recipe."""

    per_source: int = 100          # candidates taken from each source
    layers: Tuple[int, ...] = (64, 32)  # deep layers after one DCN-v2 cross layer
    max_epochs: int = 40
    patience: int = 4              # early stopping on the validation lists' Recall@20
    bags: int = 5                  # networks, each validated on its own fifth of the lists; logits averaged
    learning_rate: float = 1e-3
    batch_users: int = 32
    raw_scores: bool = False       # also feed each source's raw score (its scale drifts between fits)
    seed: int = 0


def _ranks(scores: np.ndarray, exclude_mask: np.ndarray, depth: int) -> np.ndarray:
    """Rank (0 = best) of every item in each row's list with seen items removed; `depth` beyond the list."""
    s = np.where(exclude_mask, -np.inf, scores)
    top = np.argpartition(-s, depth, axis=1)[:, :depth]
    order = np.take_along_axis(top, np.argsort(-np.take_along_axis(s, top, 1), axis=1, kind="stable"), 1)
    ranks = np.full(scores.shape, depth, np.int32)
    np.put_along_axis(ranks, order, np.arange(depth, dtype=np.int32)[None, :].repeat(len(s), 0), 1)
    return ranks


def candidate_features(sources: Dict[str, np.ndarray], train, cfg: RankerConfig
                       ) -> Tuple[np.ndarray, np.ndarray, List[str]]:
    """Merged candidates and their features.

    Candidates: the union of each source's top `per_source` items with the user's train items
    removed. Features per (user, candidate): for each source, its score, the score standardised
    over the user's candidates, and log(1 + rank in that source's list) (rank = per_source when
    the source did not list it); item log-popularity; user log-activity.

    Returns:
        (candidates int [U, C] padded with -1, features float32 [U, C, F], feature names).
    """
    seen = user_item_matrix(train).toarray() > 0
    n_users, n_items = seen.shape
    ranks = {name: _ranks(s, seen, cfg.per_source) for name, s in sources.items()}
    in_any = np.zeros_like(seen)
    for r in ranks.values():
        in_any |= r < cfg.per_source
    width = int(in_any.sum(axis=1).max())
    cands = np.full((n_users, width), -1, np.int64)
    counts = in_any.sum(axis=1)
    rows, cols = np.nonzero(in_any)
    pos = np.arange(len(rows)) - np.repeat(np.r_[0, np.cumsum(counts)[:-1]], counts)
    cands[rows, pos] = cols
    valid = cands >= 0
    safe = np.where(valid, cands, 0)
    pop = np.log1p(np.bincount(train.items, minlength=n_items)).astype(np.float32)
    activity = np.log1p(seen.sum(axis=1)).astype(np.float32)
    feats, names = [], []
    for name, s in sources.items():
        v = np.take_along_axis(s, safe, 1)
        m = np.where(valid, v, np.nan)
        mean, std = np.nanmean(m, axis=1, keepdims=True), np.nanstd(m, axis=1, keepdims=True) + 1e-6
        if cfg.raw_scores:
            feats.append(v)
            names.append(f"{name}_score")
        feats += [(v - mean) / std, np.log1p(np.take_along_axis(ranks[name], safe, 1))]
        names += [f"{name}_z", f"{name}_logrank"]
    feats += [pop[safe], np.broadcast_to(activity[:, None], safe.shape)]
    names += ["item_log_pop", "user_log_activity"]
    x = np.stack(feats, axis=-1).astype(np.float32)
    x[~valid] = 0.0
    return cands, x, names


def train_ranker(x: np.ndarray, cands: np.ndarray, labels_csr: Tuple[np.ndarray, np.ndarray], cfg: RankerConfig):
    """Fits the project's ranker (`trainer.candidate_ranker`: `cfg.bags` listwise DCN-v2 networks,
    early stopping per fold of users) on these lists; label-slice items are the positives.

    Returns:
        (the served Keras model: standardisation + mean logit of the bags, info).
    """
    from trainer.candidate_ranker import train_ranker as fit
    from trainer.candidate_ranker_config import CandidateRankerConfig

    indptr, items = labels_csr
    valid = cands >= 0
    labels = np.zeros(cands.shape, bool)
    for u in range(min(cands.shape[0], len(indptr) - 1)):
        labels[u] = np.isin(cands[u], items[indptr[u]:indptr[u + 1]]) & valid[u]
    settings = CandidateRankerConfig(per_source=cfg.per_source, layers=cfg.layers, bags=cfg.bags,
                                     max_epochs=cfg.max_epochs, patience=cfg.patience,
                                     learning_rate=cfg.learning_rate, users_per_batch=cfg.batch_users, seed=cfg.seed)
    ranker = fit(x, valid, labels, [f"f{i}" for i in range(x.shape[-1] // 2)], 0.0, settings, log=lambda _: None)
    return ranker.model, {"epochs": ranker.report["bag_epochs"], "lists": ranker.report["lists"],
                          "valid_recall_at_20": ranker.report["bag_recall_at_20"]}


def ranker_scores(model, x: np.ndarray, cands: np.ndarray, n_items: int, fallback: np.ndarray) -> np.ndarray:
    """A full score matrix: ranked candidates on top (the ranker's logit), others by `fallback`."""
    valid = cands >= 0
    logits = np.concatenate([model(x[i:i + 256], training=False).numpy() for i in range(0, len(x), 256)])
    out = np.broadcast_to(fallback, (cands.shape[0], n_items)).astype(np.float32).copy()
    out -= out.max() + 1.0  # every non-candidate below every candidate
    z = np.where(valid, logits, -np.inf)
    z = z - np.nanmax(np.where(valid, z, np.nan), axis=1, keepdims=True)  # <= 0
    lo = out.max() + 1.0
    rows = np.repeat(np.arange(cands.shape[0]), valid.sum(axis=1))
    out[rows, cands[valid]] = lo + 1000.0 + z[valid]
    return out


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------

class ScoreCache:
    """Score matrices kept on disk between runs (`--cache DIR`), so ranker studies skip the sources."""

    def __init__(self, root: Optional[str], dataset: str) -> None:
        self.root = pathlib.Path(root) / dataset if root else None

    def get(self, key: str, make: Callable[[], Tuple[np.ndarray, Dict]]) -> Tuple[np.ndarray, Dict]:
        if self.root is None:
            return make()
        path = self.root / f"{key}.npz"
        if path.exists():
            saved = np.load(path, allow_pickle=True)
            return saved["scores"], saved["info"].item()
        scores, info = make()
        self.root.mkdir(parents=True, exist_ok=True)
        np.savez(path, scores=scores, info=np.array(info, dtype=object))
        return scores, info


def run_dataset(ds: Dataset, quick: bool, log: Callable[[str], None],
                cache: ScoreCache, sweep: bool = False) -> Tuple[Dict[str, Dict[str, float]], Dict]:
    """Every model on one split; returns (results by model, notes).

    `sweep` adds the two-tower variants that lost (no logQ correction, with the user-id
    embedding) and a ranker over EASE and the popularities only; `quick` keeps one setting per
    model.
    """
    from evaluation.baselines import BiasRatingModel
    from evaluation.data import group_by_user

    results: Dict[str, Dict[str, float]] = {}
    notes: Dict[str, object] = {}
    train, test = ds.train, ds.eval
    fit, label = inner_split(train, ds.inner_split)

    def record(name: str, scores: np.ndarray) -> Dict[str, float]:
        t = time.time()
        results[name] = evaluate(scores, train, test)
        log(f"  {name:<34} R@20 {results[name]['recall_at_20']:.4f}  N@10 {results[name]['ndcg_at_10']:.4f}"
            f"  HR@100 {results[name]['user_hit_rate_at_100']:.4f}  ({time.time() - t:.1f}s eval)")
        return results[name]

    def pick(name: str, grid: Sequence, make: Callable) -> Tuple[object, np.ndarray, np.ndarray]:
        """Chooses a hyperparameter on the inner (fit -> label) split, then refits on all of train.

        Returns (the value, its scores fitted on the fit part, its scores fitted on train)."""
        best, best_value, best_scores = None, -1.0, None
        for value in grid:
            scores = cache.get(f"{name}_{value}_fit", lambda value=value: (make(fit, value), {}))[0]
            r = evaluate(scores, fit, label)["recall_at_20"]
            log(f"    {name} {value}: inner R@20 {r:.4f}")
            if r > best_value:
                best, best_value, best_scores = value, r, scores
        notes[f"{name}_chosen"] = best
        return best, best_scores, cache.get(f"{name}_{best}_train", lambda: (make(train, best), {}))[0]

    t0 = time.time()
    pop = popularity_scores(train)
    record("popularity", pop)
    half, recent_fit, recent = pick("recent_pop_half_life_days", (7, 30, 180, 1000) if not quick else (30,),
                        lambda d, v: np.broadcast_to(recent_popularity(d, v), (d.n_users, d.n_items)))
    record("recent_popularity", recent)
    ease_grid = (100, 300) if not quick else (300,)
    for l2 in ease_grid:  # the baseline's lambda sweep, on the test split (an upper bound for EASE)
        record(f"ease_l2_{l2}", cache.get(f"ease_l2_{l2}_train", lambda l2=l2: (ease_scores(train, l2), {}))[0])
    notes["ease_best_test"] = max(ease_grid, key=lambda l2: results[f"ease_l2_{l2}"]["recall_at_20"])
    knn_grid = [(100, 0.0), (100, 20.0), (400, 20.0)] if not quick else [(100, 20.0)]
    knn_choice, knn_fit, knn = pick("knn", knn_grid, lambda d, v: knn_scores(d, v[0], v[1]))
    record("item_knn", knn)
    # The EASE source of the ranker: the most popular SOURCE_EASE_ITEMS items (inversion cost ~ n^3),
    # lambda picked on the inner split.
    l2_choice, ease_fit, ease_picked = pick(f"ease{SOURCE_EASE_ITEMS}_l2", (100, 300, 1000) if not quick else (300,),
                                            lambda d, v: ease_scores(d, v, SOURCE_EASE_ITEMS))
    record(f"ease{SOURCE_EASE_ITEMS}_source", ease_picked)
    log(f"  sources done in {time.time() - t0:.0f}s")

    t0 = time.time()
    today = TowerConfig()
    tt_today, _ = cache.get("two_tower_today", lambda: two_tower(ds, train, today))
    record("two_tower_today", tt_today)
    log(f"  two-tower (today) in {time.time() - t0:.0f}s")
    tuned = TowerConfig(optimizer="adam", learning_rate=3e-3, temperature=0.05, embedding_dim=64,
                        use_user_id=False, early_stopping=True)
    variants = {"two_tower_tuned": tuned}
    if sweep:
        variants.update({
            "two_tower_tuned_no_logq": dataclasses.replace(tuned, logq=False),
            "two_tower_tuned_with_user_id": dataclasses.replace(tuned, use_user_id=True),
        })
    tt_fit = None
    for name, cfg in variants.items():
        t0 = time.time()
        inner_scores, info = cache.get(f"{name}_inner", lambda cfg=cfg: two_tower(ds, fit, cfg, valid=label))
        scores, _ = cache.get(name, lambda cfg=cfg, n=info["epochs"]: two_tower(ds, train, cfg, fixed_epochs=n))
        notes[f"{name}_epochs"] = info["epochs"]
        notes[f"{name}_curve"] = info["curve"]
        record(name, scores)
        log(f"    {name}: {info['epochs']} epochs chosen (inner curve {info['curve']}), {time.time() - t0:.0f}s")
        if name == "two_tower_tuned":
            tt_fit, tt_full = inner_scores, scores

    # The ranker: sources fitted on the fit part, labels from the label part; then refit on train.
    t0 = time.time()
    rcfg = RankerConfig()
    fit_sources = {"two_tower": tt_fit, "ease": ease_fit, "item_knn": knn_fit,
                   "popularity": popularity_scores(fit), "recent_popularity": recent_fit}
    full_sources = {"two_tower": tt_full, "ease": ease_picked, "item_knn": knn,
                    "popularity": pop, "recent_popularity": recent}
    combos = {"ranker_all_sources": list(full_sources)}
    if not quick:
        combos["ranker_without_two_tower"] = [s for s in full_sources if s != "two_tower"]
    if sweep:
        combos["ranker_ease_pop_only"] = ["ease", "popularity", "recent_popularity"]
    for name, keys in combos.items():
        cands_fit, x_fit, feature_names = candidate_features({k: fit_sources[k] for k in keys}, fit, rcfg)
        model, info = train_ranker(x_fit, cands_fit, group_by_user(label), rcfg)
        notes[f"{name}_training"] = info
        log(f"    {name}: {info}")
        cands, x, _ = candidate_features({k: full_sources[k] for k in keys}, train, rcfg)
        record(name, ranker_scores(model, x, cands, train.n_items, pop[0]))
        notes[f"{name}_features"] = feature_names
        notes[f"{name}_mean_candidates"] = float((cands >= 0).sum(axis=1).mean())
    log(f"  rankers in {time.time() - t0:.0f}s")

    bias = BiasRatingModel().fit(train)
    results["bias_model"] = {"rmse": float(np.sqrt(np.mean((bias.predict(test.users, test.items) - test.ratings) ** 2)))}
    return results, notes


def table(name: str, results: Dict[str, Dict[str, float]]) -> str:
    lines = [f"### {name}", "", "| model | " + " | ".join(COLUMNS) + " |", "|---|" + "---:|" * len(COLUMNS)]
    for model, values in results.items():
        if "recall_at_20" not in values:
            continue
        lines.append(f"| {model} | " + " | ".join(f"{values[c]:.4f}" for c in COLUMNS) + " |")
    if "bias_model" in results:
        lines.append(f"\nbias model rating RMSE: {results['bias_model']['rmse']:.4f}")
    return "\n".join(lines)


def verdicts(name: str, results: Dict[str, Dict[str, float]]) -> List[str]:
    model = results.get("ranker_all_sources")
    if model is None:
        return []
    ease = max((v for k, v in results.items() if k.startswith("ease_l2_")), key=lambda v: v["recall_at_20"])
    singles = [v for k, v in results.items() if not k.startswith("ranker") and "recall_at_20" in v]
    best = {m: max(v[m] for v in singles) for m in ("recall_at_20", "ndcg_at_10")}
    pop = results["popularity"]
    checks = [("R@20 >= best EASE", model["recall_at_20"], ease["recall_at_20"]),
              ("N@10 >= best EASE", model["ndcg_at_10"], ease["ndcg_at_10"]),
              ("R@20 >= 1.05x best single", model["recall_at_20"], 1.05 * best["recall_at_20"]),
              ("N@10 >= 1.05x best single", model["ndcg_at_10"], 1.05 * best["ndcg_at_10"]),
              ("R@20 >= 1.05x popularity", model["recall_at_20"], 1.05 * pop["recall_at_20"]),
              ("HR@100 >= 1.3x popularity", model["user_hit_rate_at_100"], 1.3 * pop["user_hit_rate_at_100"]),
              ("int-HR@100 >= 1.3x popularity", model["hit100_interactions"], 1.3 * pop["hit100_interactions"])]
    return [f"{name:<10} {label:<30} {v:.4f} vs {t:.4f} ({v / t:.2f}x) {'MET' if v >= t else 'MISSED'}"
            for label, v, t in checks]


def plot(all_results: Dict[str, Dict[str, Dict[str, float]]], path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in all_results if all_results[n]]
    fig, axes = plt.subplots(1, len(names), figsize=(6 * len(names), 6), squeeze=False)
    for ax, name in zip(axes[0], names):
        res = {k: v for k, v in all_results[name].items() if "recall_at_20" in v}
        keys = list(res)
        ax.barh(range(len(keys)), [res[k]["recall_at_20"] for k in keys],
                color=["tab:red" if k.startswith("ranker") else "tab:blue" for k in keys])
        ax.set_yticks(range(len(keys)), keys, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("Recall@20 (train items excluded)")
        ax.set_title(name)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


DATASETS = {"ml-random": ("ml", "random"), "ml-time": ("ml", "time"), "synthetic": (None, "time")}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--quick", action="store_true", help="one setting per model (a smoke run)")
    parser.add_argument("--output", default=str(RESULTS))
    parser.add_argument("--cache", help="keep score matrices in this folder between runs")
    parser.add_argument("--sweep", action="store_true", help="also the two-tower variants that lost")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(2)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    out = pathlib.Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    all_results, all_notes = {}, {}
    start = time.time()
    for name in [n for n in args.datasets.split(",") if n]:
        source, split = DATASETS[name]
        if source == "ml":
            if not (ML_LATEST_SMALL / "ratings.csv").exists():
                print(f"[{name}] skipped: {ML_LATEST_SMALL} not found")
                continue
            source = str(ML_LATEST_SMALL)
        t = time.time()
        ds = load(source, split, name)
        print(f"[{name}] {len(ds.train)} train / {len(ds.eval)} eval interactions, {ds.train.n_users} users, "
              f"{ds.train.n_items} items (loaded in {time.time() - t:.0f}s)", flush=True)
        all_results[name], all_notes[name] = run_dataset(ds, args.quick, lambda s: print(s, flush=True),
                                                         ScoreCache(args.cache, name), args.sweep)
        print(f"[{name}] done in {time.time() - t:.0f}s", flush=True)
    print()
    for name, results in all_results.items():
        print(table(name, results))
        print()
    for name, results in all_results.items():
        print("\n".join(verdicts(name, results)))
    print(f"\ntotal {time.time() - start:.0f}s")
    (out / "quality_lab.json").write_text(json.dumps({"results": all_results, "notes": all_notes}, indent=1,
                                                     sort_keys=True, default=str))
    plot(all_results, out / "quality_lab.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
