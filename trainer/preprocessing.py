"""tf.Transform preprocessing: raw interaction features to model-ready tensors.

Full-pass analyzers run on Beam (the Transform component); the resulting graph is applied at
training time and embedded in the serving model, so training and serving share one definition.
Every function here also accepts a subset of the raw features (TFT fills the missing ones), which
is how the item catalog is transformed with the same graph.
"""

from __future__ import annotations

from typing import Dict, Union

import tensorflow as tf
import tensorflow_transform as tft

from core import features as F

Tensor = Union[tf.Tensor, tf.SparseTensor, tf.RaggedTensor]


def _dense(value: Tensor, default) -> tf.Tensor:
    """A [B] dense tensor from a [B], [B, 1] or sparse [B, 1] raw feature."""
    if isinstance(value, tf.SparseTensor):
        value = tf.sparse.to_dense(value, default_value=default)
    if isinstance(value, tf.RaggedTensor):
        value = value.to_tensor(default_value=default)
    if value.shape.rank == 2:
        value = tf.cond(
            tf.shape(value)[1] > 0,
            lambda: value[:, 0],
            lambda: tf.fill(tf.shape(value)[:1], tf.constant(default, value.dtype)),
        )
    return value


def _padded_token_ids(tokens: tf.RaggedTensor, vocab_name: str, width: int, top_k=None) -> tf.Tensor:
    """Vocabulary indices of ragged tokens, shifted by one and padded with 0 to `width`."""
    sparse = tokens.to_sparse()
    ids = tft.compute_and_apply_vocabulary(
        sparse, num_oov_buckets=F.OOV_BUCKETS, vocab_filename=vocab_name, top_k=top_k
    )
    shifted = tf.RaggedTensor.from_sparse(
        tf.SparseTensor(ids.indices, ids.values + 1, ids.dense_shape)
    )
    return shifted[:, :width].to_tensor(default_value=0, shape=[None, width])


def title_tokens(titles: tf.Tensor) -> tf.RaggedTensor:
    """Lower-cased word tokens of titles, without the trailing '(YYYY)' and punctuation."""
    text = tf.strings.lower(titles)
    text = tf.strings.regex_replace(text, r"\(\d{4}\)\s*$", " ")
    text = tf.strings.regex_replace(text, r"[^a-z0-9]+", " ")
    return tf.strings.split(tf.strings.strip(text))


def genre_tokens(genres: tf.Tensor) -> tf.RaggedTensor:
    """Genres split on the canonical separator."""
    return tf.strings.split(genres, sep=F.GENRE_SEPARATOR)


def preprocessing_fn(inputs: Dict[str, Tensor]) -> Dict[str, tf.Tensor]:
    """tf.Transform callback: see `core.features` for the output names and shapes.

    Args:
      inputs: raw features keyed by `core.features` raw names.

    Returns:
      Transformed features keyed by `features.transformed_name(...)`.
    """
    user_id = _dense(inputs[F.USER_ID], "")
    item_id = _dense(inputs[F.ITEM_ID], "")
    gender = _dense(inputs[F.USER_GENDER], F.UNKNOWN_TOKEN)
    occupation = _dense(inputs[F.USER_OCCUPATION], F.UNKNOWN_TOKEN)
    title = _dense(inputs[F.ITEM_TITLE], "")
    genres = _dense(inputs[F.ITEM_GENRES], F.NO_GENRES)
    age = _dense(inputs[F.USER_AGE], F.UNKNOWN_INT)
    year = _dense(inputs[F.ITEM_YEAR], F.UNKNOWN_INT)
    timestamp = _dense(inputs[F.TIMESTAMP], 0)
    rating = _dense(inputs[F.RATING], 0.0)

    year_known = tf.cast(year > 0, tf.float32)
    # Quantile boundaries from known years only (weight 0 for unknown ones).
    year_bucket = tft.bucketize(tf.cast(year, tf.float32), F.YEAR_BUCKETS, weights=year_known)
    # Unknown years (0) sit below every boundary: bucket 0 is reserved for them.
    year_bucket = tf.where(year > 0, year_bucket + 1, tf.zeros_like(year_bucket))

    return {
        F.USER_ID_XF: tft.compute_and_apply_vocabulary(
            user_id, num_oov_buckets=F.OOV_BUCKETS, vocab_filename=F.USER_ID_VOCAB
        ),
        F.ITEM_ID_XF: tft.compute_and_apply_vocabulary(
            item_id, num_oov_buckets=F.OOV_BUCKETS, vocab_filename=F.ITEM_ID_VOCAB
        ),
        F.USER_GENDER_XF: tft.compute_and_apply_vocabulary(
            gender, num_oov_buckets=F.OOV_BUCKETS, vocab_filename=F.GENDER_VOCAB
        ),
        F.USER_OCCUPATION_XF: tft.compute_and_apply_vocabulary(
            occupation, num_oov_buckets=F.OOV_BUCKETS, vocab_filename=F.OCCUPATION_VOCAB
        ),
        F.USER_AGE_XF: tft.apply_buckets(
            tf.cast(age, tf.float32),
            tf.constant([[float(F.MIN_AGE)] + [float(b) for b in F.AGE_BUCKET_BOUNDARIES]]),
        ),
        F.ITEM_GENRES_XF: _padded_token_ids(genre_tokens(genres), F.GENRE_VOCAB, F.MAX_GENRES),
        F.ITEM_TITLE_XF: _padded_token_ids(
            title_tokens(title), F.TITLE_TOKEN_VOCAB, F.MAX_TITLE_TOKENS, top_k=F.TITLE_VOCAB_SIZE
        ),
        F.ITEM_YEAR_XF: year_bucket,
        F.TIMESTAMP_XF: tft.scale_to_0_1(tf.cast(timestamp, tf.float32)),
        F.RATING_XF: tf.cast(rating, tf.float32),
    }


def bucket_counts() -> Dict[str, int]:
    """Sizes of the fixed (non-vocabulary) categorical outputs."""
    return {
        F.USER_AGE_XF: len(F.AGE_BUCKET_BOUNDARIES) + 2,
        F.ITEM_YEAR_XF: F.YEAR_BUCKETS + 2,
    }
