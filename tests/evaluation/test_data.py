"""Tests of the id indices and the interaction arrays."""

import numpy as np
import pytest

from core import features
from evaluation.data import (
    IdIndex,
    InteractionData,
    from_splits,
    group_by_user,
    unseen_eval_items,
)


def _row(user, item, rating=4.0, timestamp=1):
    return {features.USER_ID: user, features.ITEM_ID: item, features.RATING: rating,
            features.TIMESTAMP: timestamp}


def test_id_index_first_seen_order_and_round_trip():
    index = IdIndex(["b", "a", "b", b"c"])
    assert index.ids == ("b", "a", "c")
    np.testing.assert_array_equal(index.index(["a", b"c", "b"]), [1, 2, 0])
    assert index.id_of([2, 0]) == ["c", "b"]
    assert "a" in index and b"a" in index and "z" not in index


def test_id_index_unknown_ids():
    index = IdIndex(["a"])
    with pytest.raises(KeyError, match="'zz'"):
        index.index(["a", "zz"])
    np.testing.assert_array_equal(index.index(["zz", "a"], missing=-1), [-1, 0])
    with pytest.raises(IndexError):
        index.id_of([1])


def test_from_splits_shares_indices_and_counts_catalog_items():
    train, eval_data = from_splits([_row("u1", "i1", 5.0, 10), _row("u2", "i2")],
                                   [_row("u3", "i1", 2.5, 30)], catalog_item_ids=["i9"])
    assert train.user_index is eval_data.user_index
    assert (train.n_users, train.n_items) == (3, 3)  # u1 u2 u3; i1 i2 i9
    np.testing.assert_array_equal(train.users, [0, 1])
    np.testing.assert_array_equal(eval_data.users, [2])
    np.testing.assert_array_equal(eval_data.items, [0])
    np.testing.assert_array_equal(eval_data.ratings, [2.5])
    np.testing.assert_array_equal(eval_data.timestamps, [30])


def test_from_records_names_the_missing_feature_and_unknown_id():
    index = IdIndex(["u"])
    with pytest.raises(KeyError, match=features.RATING):
        InteractionData.from_records([{features.USER_ID: "u", features.ITEM_ID: "i",
                                       features.TIMESTAMP: 0}], index, IdIndex(["i"]))
    with pytest.raises(KeyError, match="'x'"):
        InteractionData.from_records([_row("u", "x")], index, IdIndex(["i"]))


def test_interaction_data_rejects_bad_arrays():
    with pytest.raises(ValueError, match="one length"):
        InteractionData([0, 1], [0], [1.0, 2.0], [0, 0], 2, 2)
    with pytest.raises(ValueError, match="item indices"):
        InteractionData([0], [5], [1.0], [0], 1, 3)
    with pytest.raises(ValueError, match="user indices"):
        InteractionData([-1], [0], [1.0], [0], 1, 3)


def test_group_by_user_and_unseen_eval_items():
    # user 0 train {2, 0, 2}, user 2 train {1}; eval: user 0 {0, 1}, user 1 {2}, user 2 {1}
    train = InteractionData([0, 0, 0, 2], [2, 0, 2, 1], [1.0] * 4, [0] * 4, 3, 3)
    eval_data = InteractionData([0, 0, 1, 2], [0, 1, 2, 1], [1.0] * 4, [0] * 4, 3, 3)
    indptr, items = group_by_user(train)
    np.testing.assert_array_equal(indptr, [0, 2, 2, 3])
    np.testing.assert_array_equal(items, [0, 2, 1])
    indptr, items = unseen_eval_items(train, eval_data)
    # user 0 loses item 0 (seen), user 2 loses item 1 (seen)
    np.testing.assert_array_equal(indptr, [0, 1, 2, 2])
    np.testing.assert_array_equal(items, [1, 2])
    with pytest.raises(ValueError, match="share"):
        unseen_eval_items(train, InteractionData([0], [0], [1.0], [0], 3, 4))
