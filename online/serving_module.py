"""The serving module of online versions: `ServingModel`'s signatures over variable tables.

`trainer.serving_model.ServingModel` bakes its tables into the graph as constants and holds the
Keras networks, so each export re-traces and re-serialises everything (tens of seconds on two
cores). The online learner exports every few seconds, so its versions use this module instead:
the same signatures with the same inputs, outputs and semantics (a test checks them against
`ServingModel` on one set of networks and tables), but

* every table is a variable (and the id tables mutable hash tables), assigned before each
  export: the functions are traced once and a version is written in about a second;
* the query embedding of each known user is precomputed (`serving_default`, `retrieve` and
  `retrieve_unfiltered` are a lookup and a matrix product), and the networks are held as
  `FrozenNetwork`s for the signatures that run them (`recommend_with_features`, `rank`, and
  the re-ranking stage when `ranking_weight` is set);
* request-time user features are transformed by lookup tables computed once through the
  Transform graph (`request_feature_maps`), not by the Transform layer itself.
"""

from __future__ import annotations

from typing import Dict, Mapping

import numpy as np
import tensorflow as tf

from online.networks import FrozenNetwork
from trainer import features as F
from trainer.serving_model import ServingOptions, ServingTables

REQUEST_FEATURES = {F.USER_GENDER: F.USER_GENDER_XF, F.USER_OCCUPATION: F.USER_OCCUPATION_XF}
_UNSEEN = "\x00unseen-value"


def _string_spec(name: str, shape=(None,)) -> tf.TensorSpec:
    return tf.TensorSpec(shape, tf.string, name=name)


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


class OnlineServingModel(tf.Module):
    """See the module docstring; `update` loads new tables, `signatures` feeds the export.

    Args:
      query_tower / ranking_model: the networks (trained in place by the learner).
      vocabularies: raw request feature -> its Transform vocabulary (gender, occupation).
      transform_layer: the Transform layer, used here once to build the request lookups.
      tables: the first tables (they fix K: min(top_k, catalog size)).
      options: top-K and two-stage settings.
    """

    def __init__(self, query_tower, ranking_model, vocabularies: Mapping[str, np.ndarray],
                 transform_layer, tables: ServingTables, options: ServingOptions) -> None:
        super().__init__(name="online_recommender")
        n_items = len(tables.item_keys)
        self._k = min(options.top_k, n_items)
        self._n_candidates = max(self._k, min(options.candidates_to_rank, n_items))
        self._ranking_weight = options.ranking_weight
        self._timestamp = options.context_timestamp
        self.query_net = FrozenNetwork(query_tower)
        self.ranking_net = FrozenNetwork(ranking_model)
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
        self.unknown_row = tf.Variable(tf.constant(0, tf.int64), trainable=False, name="unknown_row")
        self.user_table = tf.lookup.experimental.MutableHashTable(tf.string, tf.int64, -1, name="user_rows")
        self.item_table = tf.lookup.experimental.MutableHashTable(tf.string, tf.int64, -1, name="item_rows")
        self.request_tables = {}
        for raw, name in REQUEST_FEATURES.items():
            keys = np.asarray(vocabularies[raw], dtype=object).astype(bytes)
            values = transform_layer({raw: tf.constant(keys)[:, None]})[name].numpy().astype(np.int64)
            unseen = int(transform_layer({raw: tf.constant([[_UNSEEN]])})[name].numpy()[0])
            self.request_tables[raw] = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(tf.constant(keys), tf.constant(values)), unseen)
        ages = np.arange(F.MAX_AGE + 2, dtype=np.int64)
        self.age_buckets = tf.constant(transform_layer({F.USER_AGE: tf.constant(ages[:, None])})[F.USER_AGE_XF].numpy().astype(np.int64))

    # ---- loading new tables --------------------------------------------------------------
    def _query_inputs(self, feats: Dict[str, tf.Tensor], n) -> Dict[str, tf.Tensor]:
        feats = dict(feats)
        feats[F.TIMESTAMP_XF] = tf.fill([n], tf.constant(self._timestamp, tf.float32))
        return feats

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
            variable.assign(np.asarray(value, dtype=object).astype(bytes))
        self.seen_values.assign(tables.seen_values.astype(np.int64))
        self.seen_row_splits.assign(tables.seen_row_splits.astype(np.int64))
        self.popular_rows.assign(tables.popular_rows[: self._k].astype(np.int32))
        self.popular_scores.assign(tables.popular_scores[: self._k].astype(np.float32))
        self.unknown_row.assign(len(tables.user_keys))
        _replace(self.user_table, tables.user_keys)
        _replace(self.item_table, tables.item_keys)

    # ---- building blocks (as in ServingModel) ----------------------------------------------
    def _user_rows(self, user_id: tf.Tensor) -> tf.Tensor:
        rows = tf.reshape(self.user_table.lookup(user_id), tf.shape(user_id))
        return tf.where(rows >= 0, rows, tf.fill(tf.shape(rows), self.unknown_row.read_value()))

    def _known_user_features(self, rows: tf.Tensor) -> Dict[str, tf.Tensor]:
        feats = {k: tf.gather(v, rows) for k, v in self.user_features.items()}
        return self._query_inputs(feats, tf.shape(rows)[0])

    def _seen_mask(self, rows: tf.Tensor) -> tf.Tensor:
        seen = tf.gather(tf.RaggedTensor.from_row_splits(self.seen_values, self.seen_row_splits), rows)
        batch_index = tf.cast(seen.value_rowids(), tf.int64)
        indices = tf.stack([batch_index, seen.flat_values], axis=1)
        shape = tf.stack([tf.shape(rows, out_type=tf.int64)[0], tf.shape(self.item_keys, out_type=tf.int64)[0]])
        return tf.scatter_nd(indices, tf.ones_like(batch_index, tf.int32), shape) > 0

    def _rank_rows(self, user_feats: Dict[str, tf.Tensor], item_rows: tf.Tensor) -> tf.Tensor:
        batch, width = tf.shape(item_rows)[0], tf.shape(item_rows)[1]
        flat_rows = tf.reshape(item_rows, [-1])
        inputs = {k: tf.repeat(v, width, axis=0) for k, v in user_feats.items()}
        inputs.update({k: tf.gather(v, flat_rows) for k, v in self.item_features.items()})
        return tf.reshape(self.ranking_net(inputs), [batch, width])

    def _two_stage(self, query, user_feats, exclude, rerank: bool = True):
        scores = tf.matmul(query, self.candidate_embeddings, transpose_b=True)
        if exclude is not None:
            scores = tf.where(exclude, tf.fill(tf.shape(scores), -1e9), scores)
        retrieval_scores, rows = tf.math.top_k(scores, k=self._n_candidates)
        combined = retrieval_scores
        if rerank and self._ranking_weight:
            combined = retrieval_scores + self._ranking_weight * self._rank_rows(user_feats, rows)
        final_scores, order = tf.math.top_k(combined, k=self._k)
        return tf.gather(rows, order, batch_dims=1), final_scores

    def _with_fallback(self, known, final_rows, final_scores):
        batch = tf.shape(known)[0]
        popular_rows = tf.tile(tf.expand_dims(self.popular_rows, 0), [batch, 1])
        popular_scores = tf.tile(tf.expand_dims(self.popular_scores, 0), [batch, 1])
        known = tf.expand_dims(known, 1)
        return {
            F.SERVING_OUTPUT_ITEMS: tf.gather(self.item_keys, tf.where(known, final_rows, popular_rows)),
            F.SERVING_OUTPUT_SCORES: tf.where(known, final_scores, popular_scores),
        }

    def _known(self, user_id, rerank: bool, exclude_seen: bool = True):
        rows = self._user_rows(user_id)
        feats = self._known_user_features(rows)
        exclude = self._seen_mask(rows) if exclude_seen else None
        top, scores = self._two_stage(tf.gather(self.user_embeddings, rows), feats, exclude, rerank)
        return self._with_fallback(rows != self.unknown_row.read_value(), top, scores)

    # ---- signatures ------------------------------------------------------------------------
    @tf.function(input_signature=[_string_spec(F.USER_ID)])
    def recommend(self, user_id: tf.Tensor) -> Dict[str, tf.Tensor]:
        return self._known(user_id, rerank=True)

    @tf.function(input_signature=[_string_spec(F.USER_ID)])
    def retrieve(self, user_id: tf.Tensor) -> Dict[str, tf.Tensor]:
        return self._known(user_id, rerank=False)

    @tf.function(input_signature=[_string_spec(F.USER_ID)])
    def retrieve_unfiltered(self, user_id: tf.Tensor) -> Dict[str, tf.Tensor]:
        return self._known(user_id, rerank=False, exclude_seen=False)

    @tf.function(input_signature=[_string_spec(F.USER_ID), tf.TensorSpec([None], tf.int64, name=F.USER_AGE),
                                  _string_spec(F.USER_GENDER), _string_spec(F.USER_OCCUPATION)])
    def recommend_with_features(self, user_id, user_age, user_gender, user_occupation):
        rows = self._user_rows(user_id)
        feats = self._known_user_features(rows)
        feats[F.USER_AGE_XF] = tf.gather(self.age_buckets, tf.clip_by_value(user_age, 0, F.MAX_AGE + 1))
        for raw, value in ((F.USER_GENDER, user_gender), (F.USER_OCCUPATION, user_occupation)):
            feats[REQUEST_FEATURES[raw]] = self.request_tables[raw].lookup(value)
        top, scores = self._two_stage(self.query_net(feats), feats, self._seen_mask(rows))
        return self._with_fallback(tf.ones_like(user_id, tf.bool), top, scores)

    @tf.function(input_signature=[_string_spec(F.USER_ID), _string_spec(F.ITEM_ID, (None, None))])
    def rank(self, user_id: tf.Tensor, item_id: tf.Tensor) -> Dict[str, tf.Tensor]:
        item_rows = tf.reshape(self.item_table.lookup(item_id), tf.shape(item_id))
        known_item = item_rows >= 0
        ratings = self._rank_rows(self._known_user_features(self._user_rows(user_id)), tf.maximum(item_rows, 0))
        return {F.SERVING_OUTPUT_SCORES: tf.where(known_item, ratings, tf.zeros_like(ratings)), "known_items": known_item}

    @tf.function(input_signature=[_string_spec(F.ITEM_ID)])
    def lookup_items(self, item_id: tf.Tensor) -> Dict[str, tf.Tensor]:
        rows = tf.reshape(self.item_table.lookup(item_id), tf.shape(item_id))
        known, safe = rows >= 0, tf.maximum(rows, 0)
        empty = tf.fill(tf.shape(item_id), "")
        return {F.ITEM_TITLE: tf.where(known, tf.gather(self.item_titles, safe), empty),
                F.ITEM_GENRES: tf.where(known, tf.gather(self.item_genres, safe), empty)}

    def signatures(self) -> Dict[str, tf.types.experimental.ConcreteFunction]:
        """Signature map for `tf.saved_model.save` (the same names as `ServingModel`'s)."""
        return {
            F.SERVING_SIGNATURE: self.recommend.get_concrete_function(),
            "retrieve": self.retrieve.get_concrete_function(),
            "retrieve_unfiltered": self.retrieve_unfiltered.get_concrete_function(),
            "recommend_with_features": self.recommend_with_features.get_concrete_function(),
            "rank": self.rank.get_concrete_function(),
            "lookup_items": self.lookup_items.get_concrete_function(),
        }


def _replace(table: tf.lookup.experimental.MutableHashTable, keys: np.ndarray) -> None:
    """Makes `table` map exactly `keys[i] -> i`."""
    keys = tf.constant(np.asarray(keys, dtype=object).astype(bytes))
    old_keys, _ = table.export()
    stale = tf.sparse.to_dense(tf.sets.difference(old_keys[None, :], keys[None, :]), default_value="")[0]
    if int(tf.size(stale)):
        table.remove(stale)
    table.insert(keys, tf.range(tf.size(keys, out_type=tf.int64), dtype=tf.int64))
