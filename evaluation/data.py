"""Integer-indexed interaction data for the evaluation code.

String user and item ids are mapped to contiguous indices by :class:`IdIndex`; interactions are
then held as parallel numpy arrays in :class:`InteractionData`. Train and eval splits that are
compared with each other must share the same two indices (see :func:`from_splits`), so that an
index means the same user or item in both.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from core import features

IdLike = Union[str, bytes]


def _as_str(value: IdLike) -> str:
    """Decodes bytes (as read from tf.train.Example) to str; returns str unchanged."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, str):
        return value
    raise TypeError(f"ids must be str or bytes, got {type(value).__name__}: {value!r}")


class IdIndex:
    """A bijection between string ids and the indices 0..n-1, in first-seen order."""

    def __init__(self, ids: Iterable[IdLike] = ()) -> None:
        """Builds the index.

        Args:
            ids: ids in any order; repeats are ignored, the first occurrence fixes the index.
        """
        self._index: Dict[str, int] = {}
        self._ids: List[str] = []
        for raw in ids:
            self._add(_as_str(raw))

    def _add(self, key: str) -> int:
        position = self._index.get(key)
        if position is None:
            position = len(self._ids)
            self._index[key] = position
            self._ids.append(key)
        return position

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, (str, bytes)) and _as_str(key) in self._index

    @property
    def ids(self) -> Tuple[str, ...]:
        """All ids, position i holding the id of index i."""
        return tuple(self._ids)

    def index(self, ids: Iterable[IdLike], missing: Optional[int] = None) -> np.ndarray:
        """Maps ids to indices.

        Args:
            ids: ids to look up.
            missing: index returned for unknown ids; None (the default) raises instead.

        Returns:
            int64 array of indices, one per id.

        Raises:
            KeyError: an id is unknown and ``missing`` is None.
        """
        out = []
        for raw in ids:
            key = _as_str(raw)
            position = self._index.get(key)
            if position is None:
                if missing is None:
                    raise KeyError(f"unknown id {key!r} (index holds {len(self)} ids)")
                position = missing
            out.append(position)
        return np.asarray(out, dtype=np.int64)

    def id_of(self, indices: Iterable[int]) -> List[str]:
        """Maps indices back to ids.

        Raises:
            IndexError: an index is outside 0..len-1.
        """
        out = []
        for position in indices:
            position = int(position)
            if not 0 <= position < len(self._ids):
                raise IndexError(f"index {position} outside 0..{len(self._ids) - 1}")
            out.append(self._ids[position])
        return out


@dataclasses.dataclass(frozen=True, eq=False)
class InteractionData:
    """Interactions as parallel arrays of user index, item index, rating and timestamp.

    Attributes:
        users: int64 [n] user indices in 0..n_users-1.
        items: int64 [n] item indices in 0..n_items-1.
        ratings: float64 [n].
        timestamps: int64 [n].
        n_users: size of the user index (users without interactions included).
        n_items: size of the item catalog (items without interactions included).
        user_index: the id mapping of the users, when known.
        item_index: the id mapping of the items, when known.
    """

    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray
    timestamps: np.ndarray
    n_users: int
    n_items: int
    user_index: Optional[IdIndex] = None
    item_index: Optional[IdIndex] = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "users", np.asarray(self.users, dtype=np.int64))
        object.__setattr__(self, "items", np.asarray(self.items, dtype=np.int64))
        object.__setattr__(self, "ratings", np.asarray(self.ratings, dtype=np.float64))
        object.__setattr__(self, "timestamps", np.asarray(self.timestamps, dtype=np.int64))
        lengths = {a.shape for a in (self.users, self.items, self.ratings, self.timestamps)}
        if len(lengths) != 1 or len(next(iter(lengths))) != 1:
            raise ValueError(f"users, items, ratings, timestamps must be 1-D of one length, got "
                             f"shapes {sorted(lengths)}")
        for name, values, bound in (("user", self.users, self.n_users),
                                    ("item", self.items, self.n_items)):
            if bound < 0:
                raise ValueError(f"n_{name}s must be >= 0, got {bound}")
            if values.size and (values.min() < 0 or values.max() >= bound):
                raise ValueError(f"{name} indices must lie in 0..{bound - 1}, got "
                                 f"{values.min()}..{values.max()}")
        if self.user_index is not None and len(self.user_index) != self.n_users:
            raise ValueError(f"user_index holds {len(self.user_index)} ids, n_users={self.n_users}")
        if self.item_index is not None and len(self.item_index) != self.n_items:
            raise ValueError(f"item_index holds {len(self.item_index)} ids, n_items={self.n_items}")

    def __len__(self) -> int:
        return int(self.users.shape[0])

    @classmethod
    def from_records(cls, records: Iterable[Mapping[str, object]], user_index: IdIndex,
                     item_index: IdIndex) -> "InteractionData":
        """Builds the arrays from dicts keyed by the feature names of ``core.features``.

        Args:
            records: mappings with USER_ID, ITEM_ID (str or bytes), RATING and TIMESTAMP.
            user_index: the user id mapping; every user id must be in it.
            item_index: the item id mapping; every item id must be in it.

        Returns:
            The interactions, sized by the two indices.

        Raises:
            KeyError: a record lacks a feature, or holds an id missing from an index.
        """
        users, items, ratings, timestamps = [], [], [], []
        for position, record in enumerate(records):
            try:
                user, item = record[features.USER_ID], record[features.ITEM_ID]
                rating, timestamp = record[features.RATING], record[features.TIMESTAMP]
            except KeyError as error:
                raise KeyError(f"record {position} lacks feature {error.args[0]!r}") from error
            users.append(user)
            items.append(item)
            ratings.append(float(rating))
            timestamps.append(int(timestamp))
        return cls(users=user_index.index(users), items=item_index.index(items),
                   ratings=np.asarray(ratings, dtype=np.float64),
                   timestamps=np.asarray(timestamps, dtype=np.int64),
                   n_users=len(user_index), n_items=len(item_index),
                   user_index=user_index, item_index=item_index)


def from_splits(train_records: Iterable[Mapping[str, object]],
                eval_records: Iterable[Mapping[str, object]],
                catalog_item_ids: Sequence[IdLike] = ()) -> Tuple[InteractionData, InteractionData]:
    """Indexes a train and an eval split with shared user and item indices.

    Users and items are numbered in first-seen order: train first, then eval, then catalog
    items that occur in neither split.

    Args:
        train_records: train interactions (dicts keyed by feature names).
        eval_records: eval interactions.
        catalog_item_ids: ids of the whole item catalog, so items never interacted with
            still count towards the catalog size.

    Returns:
        (train, eval) InteractionData sharing user_index and item_index.
    """
    train_rows, eval_rows = list(train_records), list(eval_records)
    rows = train_rows + eval_rows
    user_index = IdIndex(row[features.USER_ID] for row in rows)
    item_index = IdIndex([row[features.ITEM_ID] for row in rows] + list(catalog_item_ids))
    return (InteractionData.from_records(train_rows, user_index, item_index),
            InteractionData.from_records(eval_rows, user_index, item_index))


def check_same_space(train: InteractionData, eval_data: InteractionData) -> None:
    """Raises ValueError unless the two splits share n_users and n_items."""
    if (train.n_users, train.n_items) != (eval_data.n_users, eval_data.n_items):
        raise ValueError(f"train ({train.n_users} users, {train.n_items} items) and eval "
                         f"({eval_data.n_users} users, {eval_data.n_items} items) must share one "
                         f"user and item index")


def group_by_user(data: InteractionData) -> Tuple[np.ndarray, np.ndarray]:
    """Distinct items of each user in compressed-row form.

    Args:
        data: the interactions.

    Returns:
        (indptr [n_users + 1], items): the items of user u are
        ``items[indptr[u]:indptr[u + 1]]``, distinct and ascending.
    """
    keys = np.unique(data.users * np.int64(max(data.n_items, 1)) + data.items)
    return _csr_from_keys(keys, data.n_users, data.n_items)


def _csr_from_keys(keys: np.ndarray, n_users: int, n_items: int) -> Tuple[np.ndarray, np.ndarray]:
    """Compressed rows from sorted unique keys ``user * n_items + item``."""
    width = np.int64(max(n_items, 1))
    users, items = keys // width, keys % width
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(users, minlength=n_users), out=indptr[1:])
    return indptr, items.astype(np.int64)


def unseen_eval_items(train: InteractionData,
                      eval_data: InteractionData) -> Tuple[np.ndarray, np.ndarray]:
    """Each user's distinct eval items that the user has no train interaction with.

    These are the items a recommender that excludes seen items can still retrieve.

    Args:
        train: train split.
        eval_data: eval split in the same index space.

    Returns:
        (indptr, items) in the compressed-row form of :func:`group_by_user`.
    """
    check_same_space(train, eval_data)
    width = np.int64(max(train.n_items, 1))
    eval_keys = np.unique(eval_data.users * width + eval_data.items)
    train_keys = np.unique(train.users * width + train.items)
    keys = eval_keys[~np.isin(eval_keys, train_keys, assume_unique=True)]
    return _csr_from_keys(keys, train.n_users, train.n_items)


def rows_of(indptr: np.ndarray, items: np.ndarray, users: np.ndarray) -> List[np.ndarray]:
    """The item arrays of the given users, from compressed rows (views, no copies)."""
    return [items[indptr[u]:indptr[u + 1]] for u in users]
