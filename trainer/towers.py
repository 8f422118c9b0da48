"""Functional Keras towers of the two-tower retrieval model and the DCN-v2 ranking models.

The ranking network is either standalone (`build_ranking_model`, its own embeddings) or, for the
multitask model, built on the two towers (`build_shared_ranking_model`).

Towers are plain functional `tf.keras.Model`s over transformed features (so TF-MOT can prune and
quantize them); the `tfrs.Model` wrappers in `trainer.model` only add the losses.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Optional, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

from core import features as F
from trainer.bias_model import Biases
from trainer.layers import MaskedMean

keras = tf.keras


@dataclasses.dataclass(frozen=True)
class Vocabularies:
    """Input dimensions of every categorical transformed feature (vocabulary + OOV + pad)."""

    users: int
    items: int
    genders: int
    occupations: int
    genres: int
    title_tokens: int
    age_buckets: int
    year_buckets: int


def _scalar_input(name: str, dtype=tf.int64) -> keras.Input:
    return keras.Input(shape=(), name=name, dtype=dtype)


def _embed(x, input_dim: int, dim: int, name: str, regularizer=None):
    return keras.layers.Embedding(input_dim, dim, embeddings_regularizer=regularizer, name=f"{name}_embedding")(x)


def _bag(x, input_dim: int, dim: int, name: str, regularizer=None):
    """Mean of the embeddings of a padded (0 = pad) token list."""
    emb = keras.layers.Embedding(
        input_dim, dim, mask_zero=True, embeddings_regularizer=regularizer, name=f"{name}_embedding"
    )(x)
    return MaskedMean(name=f"{name}_mean")(emb)


def _mlp(x, layers: Sequence[int], output_dim: int, prefix: str, normalize: bool):
    for i, units in enumerate(layers):
        x = keras.layers.Dense(units, activation="relu", name=f"{prefix}_dense_{i}")(x)
    x = keras.layers.Dense(output_dim, name=f"{prefix}_output")(x)
    if normalize:
        # float32 even under mixed_float16: the epsilon 1e-12 underflows to 0 in float16 (NaN on zero).
        x = keras.layers.UnitNormalization(name=f"{prefix}_l2", dtype="float32")(x)
    return x


def user_inputs() -> Dict[str, keras.Input]:
    """Keras inputs of the query side (user, recent history and context)."""
    inputs = {name: _scalar_input(name) for name in F.USER_TRANSFORMED}
    inputs[F.USER_HISTORY] = keras.Input(shape=(F.HISTORY_LENGTH,), name=F.USER_HISTORY, dtype=tf.int64)
    inputs[F.TIMESTAMP_XF] = _scalar_input(F.TIMESTAMP_XF, tf.float32)
    return inputs


def item_inputs() -> Dict[str, keras.Input]:
    """Keras inputs of the candidate side."""
    return {
        F.ITEM_ID_XF: _scalar_input(F.ITEM_ID_XF),
        F.ITEM_YEAR_XF: _scalar_input(F.ITEM_YEAR_XF),
        F.ITEM_GENRES_XF: keras.Input(shape=(F.MAX_GENRES,), name=F.ITEM_GENRES_XF, dtype=tf.int64),
        F.ITEM_TITLE_XF: keras.Input(
            shape=(F.MAX_TITLE_TOKENS,), name=F.ITEM_TITLE_XF, dtype=tf.int64
        ),
    }


def _user_features(inputs, vocab: Vocabularies, dim: int, regularizer=None, user_id: bool = True):
    side = max(4, dim // 4)
    identity = [_embed(inputs[F.USER_ID_XF], vocab.users, dim, "user_id", regularizer)] if user_id else []
    return identity + [
        _embed(inputs[F.USER_AGE_XF], vocab.age_buckets, side, "user_age", regularizer),
        _embed(inputs[F.USER_GENDER_XF], vocab.genders, side, "user_gender", regularizer),
        _embed(inputs[F.USER_OCCUPATION_XF], vocab.occupations, side, "user_occupation", regularizer),
        _bag(inputs[F.USER_HISTORY], vocab.items + 1, dim, "user_history", regularizer),
        keras.layers.Reshape((1,), name="timestamp_column")(inputs[F.TIMESTAMP_XF]),
    ]


def _item_features(inputs, vocab: Vocabularies, dim: int, regularizer=None):
    side = max(4, dim // 2)
    return [
        _embed(inputs[F.ITEM_ID_XF], vocab.items, dim, "item_id", regularizer),
        _bag(inputs[F.ITEM_GENRES_XF], vocab.genres, side, "item_genres", regularizer),
        _bag(inputs[F.ITEM_TITLE_XF], vocab.title_tokens, side, "item_title", regularizer),
        _embed(inputs[F.ITEM_YEAR_XF], vocab.year_buckets, max(4, dim // 4), "item_year", regularizer),
    ]


def _l2(weight: float):
    return keras.regularizers.l2(weight) if weight else None


def build_query_tower(vocab: Vocabularies, dim: int, layers: Sequence[int], user_id_embedding: bool = True,
                      embedding_l2: float = 0.0) -> keras.Model:
    """User + context features -> L2-normalised query embedding of size `dim`.

    Args:
      user_id_embedding: False leaves the user id out of the features (the query is the history
        bag and the side features); the user-id input stays in the signature, unused.
      embedding_l2: L2 penalty on every embedding table (0: none).
    """
    inputs = user_inputs()
    features = _user_features(inputs, vocab, dim, _l2(embedding_l2), user_id=user_id_embedding)
    x = keras.layers.Concatenate(name="query_features")(features)
    return keras.Model(inputs, _mlp(x, layers, dim, "query", True), name="query_tower")


def build_candidate_tower(vocab: Vocabularies, dim: int, layers: Sequence[int], embedding_l2: float = 0.0
                          ) -> keras.Model:
    """Item features -> L2-normalised candidate embedding of size `dim` (L2 on its embeddings)."""
    inputs = item_inputs()
    x = keras.layers.Concatenate(name="candidate_features")(_item_features(inputs, vocab, dim, _l2(embedding_l2)))
    return keras.Model(inputs, _mlp(x, layers, dim, "candidate", True), name="candidate_tower")


RATING_LAYER = "rating"  # the rating network's last Dense layer: the residual when a bias model is added
GLOBAL_MEAN_LAYER = "global_mean"  # the Rescaling layer that adds the bias model's global mean


def bias_layer_name(feature: str) -> str:
    """Name of the 1-wide bias Embedding of id feature `feature` (`_with_biases`)."""
    return f"{feature}_bias_embedding"


def bias_table(values: np.ndarray, size: int) -> np.ndarray:
    """A [size, 1] float32 bias table holding `values`; rows beyond them are 0."""
    table = np.zeros((size, 1), np.float32)
    table[: min(size, len(values)), 0] = values[:size]
    return table


def _dcn_rating(x, deep_layers: Sequence[int], cross_layers: int, low_rank=None, residual: bool = False):
    """Stacked DCN-v2 cross layers on `x`, then a deep MLP, to a scalar rating per example.

    `residual`: the output layer starts at zero (kernel and bias), so a bias model added to it
    is what the network predicts before training."""
    x0 = x
    for i in range(cross_layers):
        x = tfrs.layers.dcn.Cross(projection_dim=low_rank, name=f"cross_{i}")(x0, x)
    for i, units in enumerate(deep_layers):
        x = keras.layers.Dense(units, activation="relu", name=f"ranking_dense_{i}")(x)
    initializer = "zeros" if residual else "glorot_uniform"
    rating = keras.layers.Dense(1, kernel_initializer=initializer, name=RATING_LAYER)(x)
    return keras.layers.Reshape((), name="rating_scalar")(rating)


def _with_biases(inputs, rating, vocab: Vocabularies, biases: Biases):
    """`rating` + global mean + user bias + item bias, the biases as trainable 1-wide embeddings
    set to the fitted bias model (`trainer.bias_model`); ids beyond the fitted tables get 0."""
    terms = [rating]
    for name, size, values in ((F.USER_ID_XF, vocab.users, biases.user_bias),
                               (F.ITEM_ID_XF, vocab.items, biases.item_bias)):
        layer = keras.layers.Embedding(size, 1, embeddings_initializer="zeros", name=bias_layer_name(name))
        terms.append(keras.layers.Reshape((), name=f"{name}_bias")(layer(inputs[name])))
        layer.set_weights([bias_table(values, size)])
    total = keras.layers.Add(name="rating_with_biases")(terms)
    mean = keras.layers.Rescaling(1.0, offset=biases.global_mean, name=GLOBAL_MEAN_LAYER)
    return mean(total)


def build_ranking_model(
    vocab: Vocabularies,
    dim: int,
    deep_layers: Sequence[int],
    cross_layers: int,
    low_rank=None,
    embedding_l2: float = 0.0,
    biases: Optional[Biases] = None,
) -> keras.Model:
    """DCN-v2 (stacked cross layers then a deep MLP) predicting the rating of (user, item).

    `embedding_l2` adds an L2 penalty on every embedding table (ratings are few per id). With
    `biases` the network predicts the residual over that bias model (`_with_biases`): before
    training it predicts exactly the bias model's ratings.
    """
    inputs = {**user_inputs(), **item_inputs()}
    regularizer = _l2(embedding_l2)
    x = keras.layers.Concatenate(name="ranking_features")(
        _user_features(inputs, vocab, dim, regularizer) + _item_features(inputs, vocab, dim, regularizer)
    )
    rating = _dcn_rating(x, deep_layers, cross_layers, low_rank, residual=biases is not None)
    if biases is not None:
        rating = _with_biases(inputs, rating, vocab, biases)
    return keras.Model(inputs, rating, name="ranking_model")


def build_shared_ranking_model(
    query_tower: keras.Model,
    candidate_tower: keras.Model,
    deep_layers: Sequence[int],
    cross_layers: int,
    low_rank=None,
) -> keras.Model:
    """DCN-v2 rating network on top of the retrieval towers (the multitask model's ranking side).

    Its inputs are the union of the two towers' inputs (the same names as `build_ranking_model`'s,
    so the serving model feeds it unchanged); it computes q = query_tower(user side),
    c = candidate_tower(item side) and predicts the rating from concat([q, c, q * c]). The towers
    are nested layers, not copies: training this network trains them.
    """
    inputs = {}
    for tower in (query_tower, candidate_tower):
        for name, tensor in zip(tower.input_names, tower.inputs):
            inputs.setdefault(name, keras.Input(shape=tensor.shape[1:], name=name, dtype=tensor.dtype))
    query = query_tower({name: inputs[name] for name in query_tower.input_names})
    candidate = candidate_tower({name: inputs[name] for name in candidate_tower.input_names})
    product = keras.layers.Multiply(name="query_x_candidate")([query, candidate])
    x = keras.layers.Concatenate(name="shared_ranking_features")([query, candidate, product])
    return keras.Model(inputs, _dcn_rating(x, deep_layers, cross_layers, low_rank), name="ranking_model")


def embedding_input(layer: keras.layers.Layer) -> Optional[str]:
    """Name of the model input an Embedding layer reads directly, or None."""
    if not isinstance(layer, keras.layers.Embedding):
        return None
    inbound = tf.nest.flatten(layer._inbound_nodes[0].inbound_layers)  # noqa: SLF001 - Keras graph
    if len(inbound) == 1 and isinstance(inbound[0], keras.layers.InputLayer):
        return inbound[0].name
    return None
