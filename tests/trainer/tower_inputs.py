"""Tiny vocabularies and inputs for tower tests."""

from __future__ import annotations

import numpy as np

from core import features as F
from trainer.towers import Vocabularies


def tiny_vocab() -> Vocabularies:
    return Vocabularies(users=3, items=4, genders=3, occupations=3, genres=4, title_tokens=5, age_buckets=3,
                        year_buckets=3)


def tiny_inputs(users: np.ndarray, items: np.ndarray):
    n = len(users)
    return {F.USER_ID_XF: users, F.USER_AGE_XF: np.zeros(n, np.int64), F.USER_GENDER_XF: np.zeros(n, np.int64),
            F.USER_OCCUPATION_XF: np.zeros(n, np.int64), F.USER_HISTORY: np.zeros((n, F.HISTORY_LENGTH), np.int64),
            F.TIMESTAMP_XF: np.zeros(n, np.float32), F.ITEM_ID_XF: items, F.ITEM_YEAR_XF: np.zeros(n, np.int64),
            F.ITEM_GENRES_XF: np.zeros((n, F.MAX_GENRES), np.int64),
            F.ITEM_TITLE_XF: np.zeros((n, F.MAX_TITLE_TOKENS), np.int64)}

