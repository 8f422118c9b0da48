"""The MovieLens latest-small import on the real files from ../shared/datasets.

The published data set has 100,836 ratings by 610 users of 9,742 movies. The shared copy read
here has one more rating appended at its end, ``999,999999,5.0,1493846415`` (a user and a movie
found nowhere else), which is a valid row: so 100,837 rows, 611 users, and movie 999999 gets a
catalog row with unknown features.
"""

import csv
import math

import numpy as np
import pytest

from core import features
from ingest import import_movielens_csv
from tests.ingest import helpers


def _independent_split(path):
    """Train/eval sizes by a plain sort of every timestamp (no project code)."""
    with open(path, newline="") as handle:
        times = np.sort(np.array([int(row["timestamp"]) for row in csv.DictReader(handle)]))
    n_eval = math.floor(0.2 * len(times) + 0.5)
    cutoff = times[len(times) - n_eval - 1]
    return int((times <= cutoff).sum()), int((times > cutoff).sum()), int(cutoff)


@pytest.mark.slow
def test_import_of_ml_latest_small(ml_latest_small, tmp_path):
    report = import_movielens_csv(str(ml_latest_small), str(tmp_path))
    print("\n" + report.summary())
    assert report.rows_read == 100_836 + 1
    assert report.dropped == {} and report.fixed == {}
    assert (report.users, report.users_without_features) == (610 + 1, 610 + 1)
    assert report.items == 9_724 + 1           # movies with at least one rating, plus 999999
    assert (report.catalog_rows, report.catalog_rows_added) == (9_742 + 1, 1)
    train, evaluation, cutoff = _independent_split(ml_latest_small / "ratings.csv")
    assert report.rows_written == {features.TRAIN_SPLIT: train, features.EVAL_SPLIT: evaluation}
    assert (train, evaluation, cutoff) == (80_670, 20_167, 1_458_635_237)
    assert report.cutoff_timestamp == cutoff

    catalog = helpers.read_catalog(tmp_path)
    assert catalog["11"] == helpers.catalog_row("11", "American President, The", "Comedy|Drama|Romance", 1995)
    assert sum(row[features.ITEM_GENRES] == features.NO_GENRES for row in catalog.values()) == 34 + 1
    assert catalog["999999"] == helpers.catalog_row(
        "999999", features.UNKNOWN_TOKEN, features.NO_GENRES, features.UNKNOWN_INT)
    ratings = {row[features.RATING] for row in helpers.read_split(tmp_path, features.EVAL_SPLIT)}
    assert min(ratings) == 0.5 and max(ratings) == 5.0
