"""The two-stage serving model: retrieval over the whole catalog, re-ranking, seen-item removal.

`ServingModel` is a `tf.Module` holding the trained towers, the catalog's candidate embeddings
and the per-user tables known at training time. It is exported as one SavedModel whose
signatures use stock TensorFlow ops only, so plain `tf.saved_model.load` and the stock TF
Serving binary run it. No table is a graph constant: every per-user and per-item table is a
variable (integers in the narrowest type that fits) and the user and item key -> row tables are
read from asset files (`trainer.table_storage`), so `saved_model.pb` has the same size whatever
the number of users and items. The signatures:

* `serving_default(user_id)`: top-K `item_ids` and `scores`, best first, without the items the
  user rated in the training data; unknown users get the most popular items.
* `recommend_with_features(user_id, user_age, user_gender, user_occupation)`: the same for a
  user described at request time (cold start: features but no history).
* `rank(user_id, item_id)`: predicted ratings of a given candidate list (`known_items` says
  which ids are in the catalog; unknown ones score 0).
* `retrieve(user_id)`: retrieval-only top-K (no re-ranking), seen items removed.
* `retrieve_unfiltered(user_id)`: retrieval-only top-K with no seen-item removal (evaluation).
* `retrieve_item_item(user_id)`: the item-item source alone, seen items removed (only when the
  tables carry it; slots it cannot fill score -inf).

With item-item tables (`ServingTables.item_item`), the candidates of `serving_default` and
`recommend_with_features` are the union of the two-tower's top `candidates_to_rank` and the
item-item source's top `item_item_candidates` (scored from the user's `max_history` newest
training items), deduplicated and without seen items; each is ranked by its retrieval score +
`item_item_weight` x its item-item score (0 where the source does not reach it) + the rating
term. With `item_item_weight` 0 the order is the two-tower's, as without the source.
* `lookup_items(item_id)`: catalog titles and genres of item ids (empty for unknown ids).
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Optional

import numpy as np
import tensorflow as tf

from core import features as F
from trainer.candidate_features import candidate_features
from trainer.candidate_ranker import TrainedRanker
from trainer.candidate_sources import PopularityTables
from trainer.config import TrainerConfig
from trainer.ease_block import EaseBlock, EaseBlockTables
from trainer.frozen_network import FrozenNetwork
from trainer.item_item_source import ItemItemSource, narrowest_id_dtype
from trainer.item_item_tables import ItemItemTables
from trainer.table_storage import KeyRowTable, table_variable, widened


@dataclasses.dataclass(frozen=True)
class ServingTables:
    """Per-user and per-item tables computed from the training data and the item catalog.

    Attributes:
      user_keys: raw user ids known at training time, [U].
      user_features: transformed user features, name -> [U + 1] int64 (`F.USER_TRANSFORMED`),
        and `F.USER_HISTORY` -> [U + 1, HISTORY_LENGTH]; the last row describes an unknown user
        (out-of-vocabulary id, unknown side features, empty history).
      seen_row_splits / seen_values: ragged [U + 1, None] catalog rows each user rated in
        training (the unknown user's row is empty).
      item_keys: raw item ids of the catalog, [N].
      item_features: transformed item features of the catalog, name -> [N, ...].
      item_titles / item_genres: raw catalog titles and genres, [N] (for display).
      popular_rows: catalog rows by descending training popularity, [>= K].
      popular_scores: their popularity scores (share of training interactions).
      item_item: the item-item source's neighbour table and recent histories, or None.
      sources: popularity, recent popularity and the ranker's count features, or None.
      ease: the EASE block over the most popular items, or None.
    """

    user_keys: np.ndarray
    user_features: Dict[str, np.ndarray]
    seen_row_splits: np.ndarray
    seen_values: np.ndarray
    item_keys: np.ndarray
    item_features: Dict[str, np.ndarray]
    item_titles: np.ndarray
    item_genres: np.ndarray
    popular_rows: np.ndarray
    popular_scores: np.ndarray
    item_item: Optional[ItemItemTables] = None
    sources: Optional[PopularityTables] = None
    ease: Optional[EaseBlockTables] = None


@dataclasses.dataclass(frozen=True)
class ServingOptions:
    """How the two stages combine."""

    top_k: int = 100
    candidates_to_rank: int = 100
    ranking_weight: float = 0.0  # final score = retrieval score + weight * predicted rating
    context_timestamp: float = 1.0  # transformed timestamp used at serving time
    item_item_candidates: int = 100  # candidates the item-item source adds (when present)
    item_item_weight: float = 0.0  # pre-rank score = retrieval score + weight * item-item score

    @classmethod
    def from_trainer_config(cls, cfg: TrainerConfig) -> "ServingOptions":
        """The options a trainer config asks for (its `top_k`, `candidates_to_rank`, `ranking_weight`)."""
        return cls(top_k=cfg.top_k, candidates_to_rank=cfg.candidates_to_rank, ranking_weight=cfg.ranking_weight)


def string_spec(name: str, shape=(None,)) -> tf.TensorSpec:
    return tf.TensorSpec(shape, tf.string, name=name)


class ServingModel(tf.Module):
    """See the module docstring; build with `ServingModel(...)`, save with `save`."""

    # Without item-item tables (and in subclasses that build their own state) there is no source.
    item_item: Optional[ItemItemSource] = None
    # Without a candidate ranker, candidates are ordered by their retrieval score (+ rating term).
    candidate_ranker: Optional[FrozenNetwork] = None

    def __init__(
        self,
        query_tower: tf.keras.Model,
        ranking_model: tf.keras.Model,
        candidate_embeddings: np.ndarray,
        tables: ServingTables,
        transform_layer: tf.keras.layers.Layer,
        options: ServingOptions,
        candidate_ranker: Optional[TrainedRanker] = None,
    ) -> None:
        super().__init__(name="recommender")
        n_items = len(tables.item_keys)
        self._k = min(options.top_k, n_items)
        self._n_candidates = max(self._k, min(options.candidates_to_rank, n_items))
        self._ranking_weight = options.ranking_weight
        self._timestamp = options.context_timestamp
        # Variables and a call, not Keras objects: the export does not re-serialise the networks.
        self.query_tower = FrozenNetwork(query_tower)
        self.ranking_model = FrozenNetwork(ranking_model)
        self.transform_layer = transform_layer
        self.candidate_embeddings = tf.Variable(
            candidate_embeddings.astype(np.float32), trainable=False, name="candidate_embeddings"
        )
        self._set_tables(tables)
        if tables.item_item is not None:
            source = tables.item_item
            self.item_item = ItemItemSource(
                source.neighbour_ids, source.neighbour_weights, top_n=max(1, options.item_item_candidates),
                weights_dtype=source.weights_dtype,
            )
            self.recent_rows = tf.Variable(
                source.recent_rows.astype(narrowest_id_dtype(n_items)), trainable=False, name="recent_rows"
            )
            self._item_item_weight = options.item_item_weight
            self.retrieve_item_item = tf.function(
                self._retrieve_item_item, input_signature=[string_spec(F.USER_ID)]
            )
        if candidate_ranker is not None:
            self._set_candidate_ranker(candidate_ranker, tables)

    def _set_tables(self, tables: ServingTables) -> None:
        """Stores the per-user and per-item tables out of the graph (`trainer.table_storage`):
        variables (integers in the narrowest type that fits) and asset-backed key -> row tables."""
        n_items = len(tables.item_keys)
        self.item_keys = table_variable(tables.item_keys, "item_keys")
        self.item_features = {k: table_variable(v, f"item_{k}") for k, v in tables.item_features.items()}
        self.item_titles = table_variable(tables.item_titles, "item_titles")
        self.item_genres = table_variable(tables.item_genres, "item_genres")
        self.user_features = {k: table_variable(v, f"user_{k}") for k, v in tables.user_features.items()}
        self.seen_values = table_variable(tables.seen_values, "seen_values", narrowest_id_dtype(n_items))
        splits_dtype = np.int32 if tables.seen_row_splits[-1] <= np.iinfo(np.int32).max else np.int64
        self.seen_row_splits = table_variable(tables.seen_row_splits, "seen_row_splits", np.dtype(splits_dtype))
        self._unknown_row = len(tables.user_keys)
        self.popular_rows = table_variable(tables.popular_rows[: self._k], "popular_rows", narrowest_id_dtype(n_items))
        self.popular_scores = table_variable(tables.popular_scores[: self._k], "popular_scores", np.dtype(np.float32))
        self.user_table = KeyRowTable(tables.user_keys, "user_rows")
        self.item_table = KeyRowTable(tables.item_keys, "item_rows")

    def _set_candidate_ranker(self, ranker: TrainedRanker, tables: ServingTables) -> None:
        """Serves the merged candidates of `ranker.sources`, ordered by the ranker."""
        needs_history = "item_item" in ranker.sources or "ease" in ranker.sources
        if tables.sources is None or (needs_history and tables.item_item is None) or (
                "ease" in ranker.sources and tables.ease is None):
            raise ValueError(f"the candidate ranker reads {list(ranker.sources)}, but the tables lack them")
        self.candidate_ranker = FrozenNetwork(ranker.model)
        self._ranker_sources = tuple(ranker.sources)
        self._per_source = ranker.per_source
        self._genre_affinity = ranker.genre_affinity
        sources = tables.sources
        if "ease" in ranker.sources:
            self.ease_block = EaseBlock(tables.ease, len(tables.item_keys))
        self.popularity = tf.Variable(sources.popularity, trainable=False, name="popularity")
        self.recent_popularity = tf.Variable(sources.recent_popularity, trainable=False, name="recent_popularity")
        self.item_log_count = tf.Variable(sources.item_log_count, trainable=False, name="item_log_count")
        self.user_log_activity = tf.Variable(sources.user_log_activity, trainable=False, name="user_log_activity")

    def _ranked_width(self) -> int:
        """Static width of the ranker's item axis: the catalog size."""
        return int(self.item_keys.shape[0])

    # ---- building blocks ---------------------------------------------------------------
    def _user_rows(self, user_id: tf.Tensor) -> tf.Tensor:
        """Table rows of raw user ids; unknown users map to the last (unknown-user) row."""
        rows = self.user_table.lookup(user_id)
        return tf.where(rows >= 0, rows, tf.fill(tf.shape(rows), tf.constant(self._unknown_row, tf.int64)))

    def _known_user_features(self, rows: tf.Tensor) -> Dict[str, tf.Tensor]:
        feats = {k: widened(tf.gather(v, rows)) for k, v in self.user_features.items()}
        feats[F.TIMESTAMP_XF] = tf.fill(tf.shape(rows), tf.constant(self._timestamp, tf.float32))
        return feats

    def _seen_rows(self, rows: tf.Tensor) -> tf.RaggedTensor:
        """[B, None] int64 catalog rows each user row rated in training (from the ragged
        `seen_values` / `seen_row_splits`; reads only the requested users' slices)."""
        starts = tf.cast(tf.gather(self.seen_row_splits, rows), tf.int64)
        limits = tf.cast(tf.gather(self.seen_row_splits, rows + 1), tf.int64)
        positions = tf.ragged.range(starts, limits)
        return positions.with_flat_values(tf.cast(tf.gather(self.seen_values, positions.flat_values), tf.int64))

    def _seen_mask(self, rows: tf.Tensor) -> tf.Tensor:
        """[B, N] boolean, True where the (known) user rated the catalog item in training."""
        seen = self._seen_rows(rows)
        batch_index = tf.cast(seen.value_rowids(), tf.int64)
        indices = tf.stack([batch_index, seen.flat_values], axis=1)
        n_items = tf.shape(self.item_keys, out_type=tf.int64)[0]
        shape = tf.stack([tf.shape(rows, out_type=tf.int64)[0], n_items])
        return tf.scatter_nd(indices, tf.ones_like(batch_index, tf.int32), shape) > 0

    def _rank_rows(self, user_feats: Dict[str, tf.Tensor], item_rows: tf.Tensor) -> tf.Tensor:
        """Predicted ratings [B, C] of catalog rows `item_rows` [B, C] for each user."""
        batch, width = tf.shape(item_rows)[0], tf.shape(item_rows)[1]
        flat_rows = tf.reshape(item_rows, [-1])
        inputs = {k: tf.repeat(v, width, axis=0) for k, v in user_feats.items()}
        inputs.update({k: widened(tf.gather(v, flat_rows)) for k, v in self.item_features.items()})
        names = self.ranking_model.input_names
        ratings = self.ranking_model({n: inputs[n] for n in names}, training=False)
        return tf.reshape(ratings, [batch, width])

    def _history(self, rows: tf.Tensor) -> Optional[tf.Tensor]:
        """[B, max_history] newest training items (catalog rows, -1 pads) of user rows, or None
        without the item-item source."""
        if self.item_item is None:
            return None
        return tf.gather(self.recent_rows, rows)

    @staticmethod
    def _row_mask(rows: tf.Tensor, counts: tf.Tensor, n_items: tf.Tensor) -> tf.Tensor:
        """[B, N] bool, True at the catalog rows `rows` [B, C] whose `counts` [B, C] are > 0."""
        batch_index = tf.broadcast_to(tf.range(tf.shape(rows)[0])[:, None], tf.shape(rows))
        indices = tf.stack([tf.reshape(batch_index, [-1]), tf.reshape(rows, [-1])], axis=1)
        shape = tf.stack([tf.shape(rows)[0], n_items])
        return tf.scatter_nd(indices, tf.reshape(counts, [-1]), shape) > 0

    def _merged_candidates(self, scores: tf.Tensor, history: tf.Tensor, exclude: tf.Tensor):
        """Union of the two-tower's and the item-item source's candidates, deduplicated.

        Args:
          scores: [B, N] two-tower scores, excluded items already at -1e9.
          history: [B, H] the users' recent catalog rows (-1 pads).
          exclude: [B, N] seen items.

        Returns:
          (pre-rank scores [B, W], catalog rows [B, W]), W = both sources' candidate counts;
          slots left over after the union score -inf.
        """
        _, tower_rows = tf.math.top_k(scores, k=self._n_candidates)
        item_scores = self.item_item.candidate_scores(history, exclude)  # -inf: not a candidate
        n_items = tf.shape(scores)[1]
        top_item_scores, item_rows = tf.math.top_k(item_scores, k=self.item_item.top_n)
        tower_ones = tf.ones_like(tower_rows)
        in_union = tf.logical_or(
            self._row_mask(tower_rows, tower_ones, n_items),
            self._row_mask(item_rows, tf.cast(tf.math.is_finite(top_item_scores), tf.int32), n_items),
        )
        reached = tf.math.is_finite(item_scores)
        pre_rank = scores + self._item_item_weight * tf.where(reached, item_scores, tf.zeros_like(item_scores))
        pre_rank = tf.where(in_union, pre_rank, tf.fill(tf.shape(pre_rank), tf.constant(-np.inf, tf.float32)))
        width = min(self._n_candidates + self.item_item.top_n, self.item_item.num_items)
        return tf.math.top_k(pre_rank, k=width)

    def _ranked_candidates(self, tower_scores: tf.Tensor, exclude: tf.Tensor, history: tf.Tensor,
                           user_rows: tf.Tensor):
        """Top-K of the merged sources' candidates by the learned ranker: (rows, scores) [B, K]."""
        batch = tf.shape(tower_scores)[0]
        n_items = self._ranked_width()
        scores = []
        seen = None
        if "ease" in self._ranker_sources or self._genre_affinity:
            seen = self._seen_rows(user_rows).to_tensor(default_value=-1)
        for source in self._ranker_sources:
            if source == "two_tower":
                scores.append(tower_scores)
            elif source == "ease":  # every seen item, not only the recent ones
                scores.append(self.ease_block.scores(seen))
            elif source == "item_item":
                item_scores, reached = self.item_item.scores(history)
                scores.append(tf.where(reached, item_scores, tf.fill(tf.shape(item_scores), float("-inf"))))
            else:
                table = self.popularity if source == "popularity" else self.recent_popularity
                scores.append(tf.tile(tf.expand_dims(tf.convert_to_tensor(table), 0), [batch, 1]))
        genres = (seen, self.item_features[F.ITEM_GENRES_XF]) if self._genre_affinity else None
        rows, valid, feats = candidate_features(
            scores, exclude, self.item_log_count, tf.gather(self.user_log_activity, user_rows), self._per_source,
            n_items, genres,
        )
        logits = self.candidate_ranker(feats, training=False)
        logits = tf.where(valid, logits, tf.fill(tf.shape(logits), float("-inf")))
        width = int(rows.shape[1])
        final_scores, order = tf.math.top_k(logits, k=min(self._k, width))
        final_rows = tf.gather(rows, order, batch_dims=1)
        if width < self._k:  # fewer candidates than K: the missing slots score -inf
            padding = [[0, 0], [0, self._k - width]]
            final_rows = tf.pad(final_rows, padding)
            final_scores = tf.pad(final_scores, padding, constant_values=float("-inf"))
        return final_rows, final_scores

    def _query(self, user_feats: Dict[str, tf.Tensor]) -> tf.Tensor:
        """Query embeddings [B, D] of transformed user features."""
        names = self.query_tower.input_names
        return self.query_tower({n: user_feats[n] for n in names}, training=False)

    def _tower_scores(self, query: tf.Tensor) -> tf.Tensor:
        """Two-tower scores [B, N] of every catalog item (brute force)."""
        return tf.matmul(query, self.candidate_embeddings, transpose_b=True)

    def _top_candidates(self, query: tf.Tensor, exclude: Optional[tf.Tensor], k: int):
        """The two-tower's top `k` (scores, catalog rows) [B, k]; `exclude` [B, N] (or None)
        marks items scored -1e9."""
        scores = self._tower_scores(query)
        if exclude is not None:
            scores = tf.where(exclude, tf.fill(tf.shape(scores), -1e9), scores)
        return tf.math.top_k(scores, k=k)

    def save_options(self) -> Optional[tf.saved_model.SaveOptions]:
        """Options `trainer.export.export_serving` saves this module with (None: the defaults)."""
        return None

    def _two_stage(
        self, user_feats: Dict[str, tf.Tensor], exclude: tf.Tensor, rerank: bool = True,
        history: Optional[tf.Tensor] = None, user_rows: Optional[tf.Tensor] = None,
    ):
        query = self._query(user_feats)
        ranked = rerank and self.candidate_ranker is not None and user_rows is not None
        if history is None and not ranked:
            retrieval_scores, rows = self._top_candidates(query, exclude, self._n_candidates)
        else:
            scores = self._tower_scores(query)
            if ranked:
                return self._ranked_candidates(scores, exclude, history, user_rows)
            scores = tf.where(exclude, tf.fill(tf.shape(scores), -1e9), scores)
            retrieval_scores, rows = self._merged_candidates(scores, history, exclude)
        if rerank and self._ranking_weight:
            ratings = self._rank_rows(user_feats, rows)
            combined = retrieval_scores + self._ranking_weight * ratings
        else:
            combined = retrieval_scores
        final_scores, order = tf.math.top_k(combined, k=self._k)
        final_rows = tf.gather(rows, order, batch_dims=1)
        return final_rows, final_scores

    def _with_fallback(self, known, final_rows, final_scores):
        batch = tf.shape(known)[0]
        popular_rows = tf.tile(tf.expand_dims(tf.cast(self.popular_rows, final_rows.dtype), 0), [batch, 1])
        popular_scores = tf.tile(tf.expand_dims(self.popular_scores, 0), [batch, 1])
        known = tf.expand_dims(known, 1)
        out_rows = tf.where(known, final_rows, popular_rows)
        return {
            F.SERVING_OUTPUT_ITEMS: tf.gather(self.item_keys, out_rows),
            F.SERVING_OUTPUT_SCORES: tf.where(known, final_scores, popular_scores),
        }

    # ---- signatures --------------------------------------------------------------------
    @tf.function(input_signature=[string_spec(F.USER_ID)])
    def recommend(self, user_id: tf.Tensor) -> Dict[str, tf.Tensor]:
        rows = self._user_rows(user_id)
        top_rows, scores = self._two_stage(
            self._known_user_features(rows), self._seen_mask(rows), history=self._history(rows), user_rows=rows
        )
        return self._with_fallback(rows != self._unknown_row, top_rows, scores)

    @tf.function(input_signature=[string_spec(F.USER_ID)])
    def retrieve(self, user_id: tf.Tensor) -> Dict[str, tf.Tensor]:
        rows = self._user_rows(user_id)
        feats = self._known_user_features(rows)
        top_rows, scores = self._two_stage(feats, self._seen_mask(rows), rerank=False)
        return self._with_fallback(rows != self._unknown_row, top_rows, scores)

    @tf.function(input_signature=[string_spec(F.USER_ID)])
    def retrieve_unfiltered(self, user_id: tf.Tensor) -> Dict[str, tf.Tensor]:
        rows = self._user_rows(user_id)
        feats = self._known_user_features(rows)
        scores, top = self._top_candidates(self._query(feats), None, self._k)
        return self._with_fallback(rows != self._unknown_row, top, scores)

    def _retrieve_item_item(self, user_id: tf.Tensor) -> Dict[str, tf.Tensor]:
        """`retrieve_item_item` (a tf.function only when the tables carry the source)."""
        rows = self._user_rows(user_id)
        item_scores = self.item_item.candidate_scores(self._history(rows), self._seen_mask(rows))
        scores, top = tf.math.top_k(item_scores, k=self._k)
        return self._with_fallback(rows != self._unknown_row, top, scores)

    @tf.function(
        input_signature=[
            string_spec(F.USER_ID),
            tf.TensorSpec([None], tf.int64, name=F.USER_AGE),
            string_spec(F.USER_GENDER),
            string_spec(F.USER_OCCUPATION),
        ]
    )
    def recommend_with_features(self, user_id, user_age, user_gender, user_occupation):
        raw = {
            F.USER_ID: tf.expand_dims(user_id, 1),
            F.USER_AGE: tf.expand_dims(user_age, 1),
            F.USER_GENDER: tf.expand_dims(user_gender, 1),
            F.USER_OCCUPATION: tf.expand_dims(user_occupation, 1),
        }
        transformed = self.transform_layer(raw)
        feats = {name: transformed[name] for name in F.USER_TRANSFORMED}
        feats[F.USER_HISTORY] = widened(tf.gather(self.user_features[F.USER_HISTORY], self._user_rows(user_id)))
        feats[F.TIMESTAMP_XF] = tf.fill(tf.shape(user_id), tf.constant(self._timestamp, tf.float32))
        user_rows = self._user_rows(user_id)
        rows_out, scores = self._two_stage(feats, self._seen_mask(user_rows), history=self._history(user_rows),
                                           user_rows=user_rows)
        return self._with_fallback(tf.ones_like(user_id, tf.bool), rows_out, scores)

    @tf.function(input_signature=[string_spec(F.USER_ID), string_spec(F.ITEM_ID, (None, None))])
    def rank(self, user_id: tf.Tensor, item_id: tf.Tensor) -> Dict[str, tf.Tensor]:
        item_rows = self.item_table.lookup(item_id)
        known_item = item_rows >= 0
        user_feats = self._known_user_features(self._user_rows(user_id))
        ratings = self._rank_rows(user_feats, tf.maximum(item_rows, 0))
        return {
            F.SERVING_OUTPUT_SCORES: tf.where(known_item, ratings, tf.zeros_like(ratings)),
            "known_items": known_item,
        }

    @tf.function(input_signature=[string_spec(F.ITEM_ID)])
    def lookup_items(self, item_id: tf.Tensor) -> Dict[str, tf.Tensor]:
        rows = self.item_table.lookup(item_id)
        known = rows >= 0
        safe = tf.maximum(rows, 0)
        empty = tf.fill(tf.shape(item_id), "")
        return {
            F.ITEM_TITLE: tf.where(known, tf.gather(self.item_titles, safe), empty),
            F.ITEM_GENRES: tf.where(known, tf.gather(self.item_genres, safe), empty),
        }

    def signatures(self) -> Dict[str, tf.types.experimental.ConcreteFunction]:
        """Signature map for `tf.saved_model.save`."""
        signatures = {
            F.SERVING_SIGNATURE: self.recommend.get_concrete_function(),
            "retrieve": self.retrieve.get_concrete_function(),
            "retrieve_unfiltered": self.retrieve_unfiltered.get_concrete_function(),
            "recommend_with_features": self.recommend_with_features.get_concrete_function(),
            "rank": self.rank.get_concrete_function(),
            "lookup_items": self.lookup_items.get_concrete_function(),
        }
        if self.item_item is not None:
            signatures["retrieve_item_item"] = self.retrieve_item_item.get_concrete_function()
        return signatures
