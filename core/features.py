"""Every feature, vocabulary and output name of the project, spelled exactly once.

The canonical data written by the importers and the generator (``ingest``) is a set of
gzipped TFRecord files of ``tf.train.Example`` protos:

* interactions: one row per (user, item, rating, timestamp) event, denormalised with the user's
  and the item's side features so that the towers can be trained from one table;
* item catalog: one row per item with the item's side features only.

Missing side features are written as the defaults below, never left out, so that every example
carries every feature (the curated schema requires them).
"""

from __future__ import annotations

from typing import Dict

# ---- raw (canonical) features -------------------------------------------------------------
USER_ID = "user_id"
ITEM_ID = "item_id"
RATING = "rating"
TIMESTAMP = "timestamp"
USER_AGE = "user_age"
USER_GENDER = "user_gender"
USER_OCCUPATION = "user_occupation"
ITEM_TITLE = "item_title"
ITEM_GENRES = "item_genres"
ITEM_YEAR = "item_year"

USER_FEATURES = (USER_ID, USER_AGE, USER_GENDER, USER_OCCUPATION)
ITEM_FEATURES = (ITEM_ID, ITEM_TITLE, ITEM_GENRES, ITEM_YEAR)
CONTEXT_FEATURES = (TIMESTAMP,)
LABEL_KEY = RATING

STRING_FEATURES = (USER_ID, ITEM_ID, USER_GENDER, USER_OCCUPATION, ITEM_TITLE, ITEM_GENRES)
INT_FEATURES = (TIMESTAMP, USER_AGE, ITEM_YEAR)
FLOAT_FEATURES = (RATING,)

INTERACTION_FEATURES = USER_FEATURES + ITEM_FEATURES + CONTEXT_FEATURES + (RATING,)
CATALOG_FEATURES = ITEM_FEATURES

# Defaults written for side information that a data source does not have.
UNKNOWN_TOKEN = "unknown"
UNKNOWN_INT = 0
NO_GENRES = "(no genres listed)"
GENRE_SEPARATOR = "|"

# Valid ranges used by the cleaning rules.
MIN_RATING = 0.5
MAX_RATING = 5.0
MIN_AGE = 1
MAX_AGE = 120

# ---- transformed features ------------------------------------------------------------------
USER_ID_VOCAB = "user_id_vocab"
ITEM_ID_VOCAB = "item_id_vocab"
GENDER_VOCAB = "user_gender_vocab"
OCCUPATION_VOCAB = "user_occupation_vocab"
GENRE_VOCAB = "item_genre_vocab"
TITLE_TOKEN_VOCAB = "item_title_token_vocab"

OOV_BUCKETS = 1
MAX_TITLE_TOKENS = 12
MAX_GENRES = 6
TITLE_VOCAB_SIZE = 5000
AGE_BUCKET_BOUNDARIES = (18, 25, 35, 45, 50, 56)
TIMESTAMP_BUCKETS = 16
YEAR_BUCKETS = 12


def transformed_name(key: str) -> str:
    """Name of the transformed feature derived from raw feature ``key``."""
    return f"{key}_xf"


# Transformed outputs of ``trainer.preprocessing.preprocessing_fn``.
USER_ID_XF = transformed_name(USER_ID)                 # int64 [B] vocabulary index (OOV last)
ITEM_ID_XF = transformed_name(ITEM_ID)                 # int64 [B]
USER_AGE_XF = transformed_name(USER_AGE)               # int64 [B] bucket index
USER_GENDER_XF = transformed_name(USER_GENDER)         # int64 [B]
USER_OCCUPATION_XF = transformed_name(USER_OCCUPATION)  # int64 [B]
ITEM_GENRES_XF = transformed_name(ITEM_GENRES)         # int64 [B, MAX_GENRES], 0 = pad, i+1 = genre i
ITEM_TITLE_XF = transformed_name(ITEM_TITLE)           # int64 [B, MAX_TITLE_TOKENS], 0 = pad, i+1 = token i
ITEM_YEAR_XF = transformed_name(ITEM_YEAR)             # int64 [B] quantile bucket (unknown -> 0)
TIMESTAMP_XF = transformed_name(TIMESTAMP)             # float32 [B] scaled to [0, 1]
RATING_XF = transformed_name(RATING)                   # float32 [B] raw rating (label)

# Derived by the trainer from the transformed interactions (trainer/history.py), not by Transform.
USER_HISTORY = "user_history_xf"  # int64 [B, HISTORY_LENGTH], item index + 1, newest first, 0 = pad
HISTORY_LENGTH = 20

USER_TRANSFORMED = (USER_ID_XF, USER_AGE_XF, USER_GENDER_XF, USER_OCCUPATION_XF)
ITEM_TRANSFORMED = (ITEM_ID_XF, ITEM_GENRES_XF, ITEM_TITLE_XF, ITEM_YEAR_XF)
CONTEXT_TRANSFORMED = (TIMESTAMP_XF,)

# ---- serving contract ----------------------------------------------------------------------
SERVING_SIGNATURE = "serving_default"
SERVING_INPUT_USER = USER_ID
SERVING_OUTPUT_ITEMS = "item_ids"
SERVING_OUTPUT_SCORES = "scores"

# ---- splits --------------------------------------------------------------------------------
TRAIN_SPLIT = "train"
EVAL_SPLIT = "eval"
CATALOG_SPLIT = "catalog"  # the one split of the item catalog ExampleGen


def feature_kinds() -> Dict[str, str]:
    """Map each raw interaction feature to 'bytes', 'int' or 'float'."""
    kinds: Dict[str, str] = {name: "bytes" for name in STRING_FEATURES}
    kinds.update({name: "int" for name in INT_FEATURES})
    kinds.update({name: "float" for name in FLOAT_FEATURES})
    return kinds
