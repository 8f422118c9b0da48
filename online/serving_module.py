"""The serving module of online versions: `ServingModel`'s signatures over variable tables.

`trainer.serving_model.ServingModel` fixes its tables' shapes when it is built (variables and
asset-backed key tables) and holds the Keras networks, so each export re-traces and re-serialises
everything (tens of seconds on two cores). The online learner exports every few seconds, so its versions use `OnlineServingModel`,
a `ServingModel` whose signatures and building blocks are inherited as they are (same inputs,
outputs and semantics), but

* every table is a variable (and the id tables mutable hash tables), assigned before each
  export: the functions are traced once and a version is written in about a second;
* the query embedding of each known user is precomputed and travels with the user's features
  (`QUERY_EMBEDDING`), and the module's `query_tower` just reads it back: `serving_default`,
  `retrieve` and `retrieve_unfiltered` are a lookup and a matrix product;
* the networks are held as `FrozenNetwork`s for the signatures that run them
  (`recommend_with_features`, `rank`, and the re-ranking stage when `ranking_weight` is set);
* request-time user features are transformed by lookup tables computed once through the
  Transform graph (`request_tables`), not by the Transform layer itself;
* with the pushed model's candidate ranker, `serving_default` merges and ranks the same sources
  as the pushed model. Its item axis has a fixed width (`capacity`, at least the catalog size:
  the catalog rows past the current catalog are never candidates); the source tables are
  variables of that width, assigned by `update`. A catalog that outgrows the capacity needs a
  new module (`fits` says whether it does).
"""

from __future__ import annotations

from typing import Dict, Mapping, Optional

import numpy as np
import tensorflow as tf

from core import features as F
from core.utf8 import to_bytes
from trainer.candidate_ranker import TrainedRanker
from trainer.ease_block import EaseBlock, EaseBlockTables
from trainer.frozen_network import FrozenNetwork
from trainer.item_item_source import ItemItemSource, narrowest_id_dtype
from trainer.serving_model import ServingModel, ServingOptions, ServingTables, string_spec

REQUEST_FEATURES = {F.USER_GENDER: F.USER_GENDER_XF, F.USER_OCCUPATION: F.USER_OCCUPATION_XF}
QUERY_EMBEDDING = "query_embedding"  # the user feature holding a user's query embedding [B, D]
_UNSEEN = "\x00unseen-value"


def request_vocabularies(tf_transform_output) -> Dict[str, np.ndarray]:
    """The Transform vocabularies of the string features a request may carry."""
    names = {F.USER_GENDER: F.GENDER_VOCAB, F.USER_OCCUPATION: F.OCCUPATION_VOCAB}
    return {raw: np.asarray(tf_transform_output.vocabulary_by_name(name), dtype=object) for raw, name in names.items()}


def embed_users(query_tower, user_features: Mapping[str, np.ndarray], context_timestamp: float,
                batch_size: int = 8192) -> np.ndarray:
    """Query embeddings [rows, D] of the users whose table columns are `user_features`."""
    rows = len(next(iter(user_features.values())))
    parts = []
    for start in range(0, rows, batch_size):
        batch = {k: tf.constant(v[start:start + batch_size], tf.int64) for k, v in user_features.items()}
        batch[F.TIMESTAMP_XF] = tf.fill([min(batch_size, rows - start)], tf.constant(context_timestamp, tf.float32))
        parts.append(query_tower({n: batch[n] for n in query_tower.input_names}, training=False).numpy())
    return np.concatenate(parts)


class _PrecomputedQuery:
    """The query tower as `ServingModel` calls it: the embedding already among the features."""

    input_names = [QUERY_EMBEDDING]

    def __call__(self, inputs: Mapping[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        return inputs[QUERY_EMBEDDING]


def _padded(values: np.ndarray, width: int, fill=0) -> np.ndarray:
    """`values` with its first axis padded to `width` with `fill`."""
    values = np.asarray(values)
    pad = np.full((width - len(values),) + values.shape[1:], fill, values.dtype)
    return np.concatenate([values, pad])


class _RowTable(tf.Module):
    """A mutable key -> row table; lookups keep the shape of the keys (-1 for unknown keys)."""

    def __init__(self, name: str) -> None:
        super().__init__(name=name)
        self.table = tf.lookup.experimental.MutableHashTable(tf.string, tf.int64, -1, name=name)

    def lookup(self, keys: tf.Tensor) -> tf.Tensor:
        return tf.reshape(self.table.lookup(keys), tf.shape(keys))

    def replace(self, keys: np.ndarray) -> None:
        """Makes the table map exactly `keys[i] -> i`."""
        keys = tf.constant(to_bytes(np.asarray(keys, dtype=object)))
        old_keys, _ = self.table.export()
        stale = tf.sparse.to_dense(tf.sets.difference(old_keys[None, :], keys[None, :]), default_value="")[0]
        if int(tf.size(stale)):
            self.table.remove(stale)
        self.table.insert(keys, tf.range(tf.size(keys, out_type=tf.int64), dtype=tf.int64))


class OnlineServingModel(ServingModel):
    """See the module docstring; `update` loads new tables, `signatures` feeds the export.

    Args:
      query_tower / ranking_model: the networks (trained in place by the learner).
      vocabularies: raw request feature -> its Transform vocabulary (gender, occupation).
      transform_layer: the Transform layer, used here once to build the request lookups.
      tables: the first tables (they fix K: min(top_k, catalog size)).
      options: top-K and two-stage settings.
      candidate_ranker: the pushed model's ranker (None: candidates in two-tower order); the
        tables then carry the sources it reads.
      capacity: the ranker's item-axis width (at least the catalog size; default twice it).
    """

    def __init__(self, query_tower, ranking_model, vocabularies: Mapping[str, np.ndarray],
                 transform_layer, tables: ServingTables, options: ServingOptions,
                 candidate_ranker: Optional[TrainedRanker] = None, capacity: Optional[int] = None) -> None:
        # Not ServingModel.__init__: its tables have fixed shapes and its key tables are static.
        tf.Module.__init__(self, name="online_recommender")
        n_items = len(tables.item_keys)
        self._k = min(options.top_k, n_items)
        self._n_candidates = max(self._k, min(options.candidates_to_rank, n_items))
        self._ranking_weight = options.ranking_weight
        self._timestamp = options.context_timestamp
        self.query_tower = _PrecomputedQuery()
        self.query_net = FrozenNetwork(query_tower)
        self.ranking_model = FrozenNetwork(ranking_model)
        dim = int(query_tower.output_shape[-1])

        def var(value, dtype, name):
            value = np.asarray(value)
            return tf.Variable(tf.constant(value, dtype), trainable=False, name=name,
                               shape=tf.TensorShape([None] + list(value.shape[1:])))

        self.user_embeddings = var(np.zeros((0, dim)), tf.float32, "user_embeddings")
        self.candidate_embeddings = var(np.zeros((0, dim)), tf.float32, "candidate_embeddings")
        self.user_features = {k: var(v[:0], tf.int64, f"user_{k}") for k, v in tables.user_features.items()}
        self.item_features = {k: var(v[:0], tf.as_dtype(v.dtype), f"item_{k}") for k, v in tables.item_features.items()}
        self.item_keys, self.item_titles, self.item_genres = (
            var(np.array([], object), tf.string, n) for n in ("item_keys", "item_titles", "item_genres"))
        self.seen_values = var(np.zeros(0), tf.int64, "seen_values")
        self.seen_row_splits = var(np.zeros(1), tf.int64, "seen_row_splits")
        self.popular_rows = var(np.zeros(0), tf.int32, "popular_rows")
        self.popular_scores = var(np.zeros(0), tf.float32, "popular_scores")
        self._unknown_row = tf.Variable(tf.constant(0, tf.int64), trainable=False, name="unknown_row")
        self.user_table = _RowTable("user_rows")
        self.item_table = _RowTable("item_rows")
        self.request_tables = {}
        for raw, name in REQUEST_FEATURES.items():
            keys = to_bytes(np.asarray(vocabularies[raw], dtype=object))
            values = transform_layer({raw: tf.constant(keys)[:, None]})[name].numpy().astype(np.int64)
            unseen = int(transform_layer({raw: tf.constant([[_UNSEEN]])})[name].numpy()[0])
            self.request_tables[raw] = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(tf.constant(keys), tf.constant(values)), unseen)
        ages = np.arange(F.MAX_AGE + 2, dtype=np.int64)
        self.age_buckets = tf.constant(transform_layer({F.USER_AGE: tf.constant(ages[:, None])})[F.USER_AGE_XF].numpy().astype(np.int64))
        self.capacity = 0
        if candidate_ranker is not None:
            self._set_online_ranker(candidate_ranker, tables, capacity or 2 * n_items)

    def _set_online_ranker(self, ranker: TrainedRanker, tables: ServingTables, capacity: int) -> None:
        """The ranker and its source variables (fixed width `capacity`; `update` assigns them)."""
        sources = ranker.sources
        if tables.sources is None or ("ease" in sources and tables.ease is None) or (
                "item_item" in sources and tables.item_item is None):
            raise ValueError(f"the candidate ranker reads {list(sources)}, but the tables lack them")
        if capacity < len(tables.item_keys):
            raise ValueError(f"capacity {capacity} is below the catalog size {len(tables.item_keys)}")
        self.capacity = capacity
        self.candidate_ranker = FrozenNetwork(ranker.model)
        self._ranker_sources = tuple(sources)
        self._per_source = ranker.per_source
        self._genre_affinity = ranker.genre_affinity
        zeros = np.zeros(capacity, np.float32)
        self.popularity, self.recent_popularity, self.item_log_count = (
            tf.Variable(zeros, trainable=False, name=name)
            for name in ("popularity", "recent_popularity", "item_log_count"))
        self.user_log_activity = tf.Variable(np.zeros(1, np.float32), trainable=False, name="user_log_activity",
                                             shape=tf.TensorShape([None]))
        if "ease" in sources:
            empty = EaseBlockTables(np.zeros(0, np.int32), np.zeros((0, 0), np.float32))
            self.ease_block = EaseBlock(empty, capacity, resizable=True)
        if "item_item" in sources:
            source = tables.item_item
            width = source.neighbour_ids.shape[1]
            self.item_item = ItemItemSource(np.zeros((capacity, width), np.int64), np.zeros((capacity, width), np.float32),
                                            top_n=1, weights_dtype=source.weights_dtype)
            self.recent_rows = tf.Variable(source.recent_rows.astype(narrowest_id_dtype(capacity)), trainable=False,
                                           name="recent_rows", shape=tf.TensorShape([None, source.recent_rows.shape[1]]))
            self.retrieve_item_item = tf.function(self._retrieve_item_item, input_signature=[string_spec(F.USER_ID)])

    def fits(self, tables: ServingTables) -> bool:
        """Whether `update` can load `tables` (always without a ranker; else the catalog fits)."""
        return self.candidate_ranker is None or len(tables.item_keys) <= self.capacity

    def _ranked_width(self) -> int:
        return self.capacity

    def _ranked_candidates(self, tower_scores: tf.Tensor, exclude: tf.Tensor, history: tf.Tensor,
                           user_rows: tf.Tensor):
        """`ServingModel`'s, with the catalog padded to the capacity (padding rows excluded)."""
        pad = [[0, 0], [0, self.capacity - tf.shape(tower_scores)[1]]]
        tower_scores = tf.ensure_shape(tf.pad(tower_scores, pad), [None, self.capacity])
        exclude = tf.ensure_shape(tf.pad(exclude, pad, constant_values=True), [None, self.capacity])
        rows, scores = super()._ranked_candidates(tower_scores, exclude, history, user_rows)
        return self._in_catalog(rows), scores

    def _in_catalog(self, rows: tf.Tensor) -> tf.Tensor:
        """`rows` with padding rows (only ever in -inf slots) moved onto the catalog's last row."""
        return tf.minimum(rows, tf.cast(tf.shape(self.item_keys)[0] - 1, rows.dtype))

    def _retrieve_item_item(self, user_id: tf.Tensor) -> Dict[str, tf.Tensor]:
        rows = self._user_rows(user_id)
        exclude = self._seen_mask(rows)
        exclude = tf.pad(exclude, [[0, 0], [0, self.capacity - tf.shape(exclude)[1]]], constant_values=True)
        item_scores = self.item_item.candidate_scores(self._history(rows), exclude)
        scores, top = tf.math.top_k(item_scores, k=self._k)
        return self._with_fallback(rows != self._unknown_row, self._in_catalog(top), scores)

    def _update_sources(self, tables: ServingTables) -> None:
        """Assigns the ranker's source variables from `tables` (padded to the capacity)."""
        if not self.fits(tables):
            raise ValueError(f"{len(tables.item_keys)} catalog items exceed the module's capacity {self.capacity}")
        sources = tables.sources
        for variable, values in ((self.popularity, sources.popularity),
                                 (self.recent_popularity, sources.recent_popularity),
                                 (self.item_log_count, sources.item_log_count)):
            variable.assign(_padded(values.astype(np.float32), self.capacity))
        self.user_log_activity.assign(sources.user_log_activity.astype(np.float32))
        if "ease" in self._ranker_sources:
            self.ease_block.assign(tables.ease)
        if "item_item" in self._ranker_sources:
            source, width = tables.item_item, int(self.item_item.neighbour_ids.shape[1])
            ids = np.zeros((len(source.neighbour_ids), width), np.int64)
            weights = np.zeros((len(source.neighbour_ids), width), np.float32)
            k = min(width, source.neighbour_ids.shape[1])
            ids[:, :k], weights[:, :k] = source.neighbour_ids[:, :k], source.neighbour_weights[:, :k]
            self.item_item.neighbour_ids.assign(_padded(ids, self.capacity).astype(self.item_item.neighbour_ids.dtype.as_numpy_dtype))
            self.item_item.neighbour_weights.assign(
                _padded(weights, self.capacity).astype(self.item_item.neighbour_weights.dtype.as_numpy_dtype))
            self.recent_rows.assign(source.recent_rows.astype(self.recent_rows.dtype.as_numpy_dtype))

    def update(self, tables: ServingTables, user_embeddings: np.ndarray, candidate_embeddings: np.ndarray) -> None:
        """Loads new tables and embeddings (eagerly); the next export writes them.

        Args:
          tables: the tables to serve.
          user_embeddings: query embeddings of every user row of `tables` (`embed_users`).
          candidate_embeddings: candidate embeddings of every catalog row.
        """
        self.user_embeddings.assign(user_embeddings.astype(np.float32))
        self.candidate_embeddings.assign(candidate_embeddings.astype(np.float32))
        for k, v in tables.user_features.items():
            self.user_features[k].assign(v.astype(np.int64))
        for k, v in tables.item_features.items():
            self.item_features[k].assign(v)
        for variable, value in ((self.item_keys, tables.item_keys), (self.item_titles, tables.item_titles),
                                (self.item_genres, tables.item_genres)):
            variable.assign(to_bytes(np.asarray(value, dtype=object)))
        self.seen_values.assign(tables.seen_values.astype(np.int64))
        self.seen_row_splits.assign(tables.seen_row_splits.astype(np.int64))
        self.popular_rows.assign(tables.popular_rows[: self._k].astype(np.int32))
        self.popular_scores.assign(tables.popular_scores[: self._k].astype(np.float32))
        self._unknown_row.assign(len(tables.user_keys))
        self.user_table.replace(tables.user_keys)
        self.item_table.replace(tables.item_keys)
        if self.candidate_ranker is not None:
            self._update_sources(tables)

    # ---- what differs from ServingModel's building blocks ---------------------------------
    def _user_rows(self, user_id: tf.Tensor) -> tf.Tensor:
        rows = self.user_table.lookup(user_id)
        return tf.where(rows >= 0, rows, tf.fill(tf.shape(rows), self._unknown_row.read_value()))

    def _known_user_features(self, rows: tf.Tensor) -> Dict[str, tf.Tensor]:
        feats = super()._known_user_features(rows)
        feats[QUERY_EMBEDDING] = tf.gather(self.user_embeddings, rows)
        return feats

    @tf.function(input_signature=ServingModel.recommend_with_features.input_signature)
    def recommend_with_features(self, user_id, user_age, user_gender, user_occupation):
        rows = self._user_rows(user_id)
        feats = self._known_user_features(rows)
        feats[F.USER_AGE_XF] = tf.gather(self.age_buckets, tf.clip_by_value(user_age, 0, F.MAX_AGE + 1))
        for raw, value in ((F.USER_GENDER, user_gender), (F.USER_OCCUPATION, user_occupation)):
            feats[REQUEST_FEATURES[raw]] = self.request_tables[raw].lookup(value)
        feats[QUERY_EMBEDDING] = self.query_net(feats)
        top, scores = self._two_stage(feats, self._seen_mask(rows), history=self._history(rows), user_rows=rows)
        return self._with_fallback(tf.ones_like(user_id, tf.bool), top, scores)
