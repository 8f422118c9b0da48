"""The learner's growing tables: users, items, seen items, histories, popularity, id rows.

Built from the base model's serving tables, then updated event by event:

* a new user gets a table row, the profile of its events (`online.profiles` rules) transformed
  by the Transform graph, and the next reserved user embedding row (`online.networks`);
* a new item joins the catalog with the features of its events (cold start: its candidate
  embedding comes from those features and the OOV id row until its events are learned), and
  an item whose id is outside the item vocabulary gets the next reserved item row;
* the base tables hold every base interaction, the eval split's too (as the pushed model's do);
  `seen` keeps the training and event items only (what the guard may not count as a hit), and
  `held_out` the eval-only items, which the served seen-item filter adds back;
* every event adds the item to the user's seen items (no longer recommended to them), to the
  front of the user's history, and to the item's popularity;
* with a candidate ranker, every interaction is logged, and each export rebuilds the ranker's
  sources from the log (`online.online_sources`).

`apply` returns the transformed training rows of the events (user features as they were before
each event, as in training examples); `serving_tables` returns the `ServingTables` to export.
"""

from __future__ import annotations

import dataclasses
import pickle
from typing import Dict, List, Optional, Sequence

import numpy as np
import tensorflow as tf

from core import features as F
from core.utf8 import to_bytes
from online import profiles
from online.events import Event
from online.online_sources import InteractionLog, SourceSettings, source_tables
from trainer.candidate_sources import cold_start_list, ranked_by_share
from trainer.serving_model import ServingTables


class _Column:
    """A numpy array that grows along its first axis (amortised doubling)."""

    def __init__(self, values: np.ndarray) -> None:
        self._data = np.array(values)
        self.size = len(values)

    def append(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=self._data.dtype)
        needed = self.size + len(values)
        if needed > len(self._data):
            grown = np.zeros((max(needed, 2 * len(self._data)),) + self._data.shape[1:], self._data.dtype)
            grown[: self.size] = self._data[: self.size]
            self._data = grown
        self._data[self.size:needed] = values
        self.size = needed

    @property
    def values(self) -> np.ndarray:
        return self._data[: self.size]


def _raw_batch(columns: Dict[str, list]) -> Dict[str, tf.Tensor]:
    return {k: tf.constant(to_bytes(np.asarray(v, dtype=object)) if isinstance(v[0], str) else np.asarray(v))[:, None]
            for k, v in columns.items()}


class OnlineTables:
    """See the module docstring.

    Args:
      base: the serving tables of the base model (`trainer.tables.build_tables`).
      base_train: transformed base training columns (for popularity and id counts).
      user_profiles: raw profiles of base users (newest training row of each).
      transform_layer: the Transform layer.
      index_sizes: (user, item) id index sizes of the Transform vocabularies incl. OOV.
      reserve: (user, item) reserved embedding rows after those sizes.
      log: the base interactions (user row, catalog row, timestamp), when sources are rebuilt.
      source_settings: how the candidate ranker's sources are built (None: no sources).
      held_out: user row -> catalog rows of its base eval interactions that are not training ones
        (in `base`'s seen items; kept out of `seen`, added back to the served filter).
    """

    log: Optional[InteractionLog] = None
    source_settings: Optional[SourceSettings] = None
    held_out: Dict[int, set] = {}  # tables pickled before the field existed

    def __init__(self, base: ServingTables, base_train: Dict[str, np.ndarray],
                 user_profiles: Dict[str, profiles.UserProfile], transform_layer,
                 index_sizes: Sequence[int], reserve: Sequence[int],
                 log: Optional[InteractionLog] = None, source_settings: Optional[SourceSettings] = None,
                 held_out: Optional[Dict[int, set]] = None) -> None:
        if (log is None) != (source_settings is None):
            raise ValueError("the interaction log and the source settings come together")
        self.log, self.source_settings = log, source_settings
        self._layer = transform_layer
        self.user_keys: List[str] = [k.decode() if isinstance(k, bytes) else str(k) for k in base.user_keys]
        self.user_row = {key: row for row, key in enumerate(self.user_keys)}
        n_users = len(self.user_keys)
        self.user_features = {k: _Column(v[:n_users]) for k, v in base.user_features.items()}
        self.unknown_user = {k: v[n_users] for k, v in base.user_features.items()}
        splits, values = base.seen_row_splits, base.seen_values
        self.seen = [set(values[splits[r]:splits[r + 1]].tolist()) for r in range(n_users)]
        self.held_out = {row: set(items) for row, items in (held_out or {}).items()}
        for row, items in self.held_out.items():
            self.seen[row] -= items  # the guard's hits to find, not training items
        self.profiles = dict(user_profiles)
        self.item_keys: List[str] = [k.decode() if isinstance(k, bytes) else str(k) for k in base.item_keys]
        self.item_row = {key: row for row, key in enumerate(self.item_keys)}
        self.item_features = {k: _Column(v) for k, v in base.item_features.items()}
        self.item_titles = [t.decode() if isinstance(t, bytes) else str(t) for t in base.item_titles]
        self.item_genres = [g.decode() if isinstance(g, bytes) else str(g) for g in base.item_genres]
        user_size, item_size = index_sizes
        self.next_index = {F.USER_ID_XF: user_size, F.ITEM_ID_XF: item_size}
        self.index_end = {F.USER_ID_XF: user_size + reserve[0], F.ITEM_ID_XF: item_size + reserve[1]}
        self.oov_item_index = item_size - F.OOV_BUCKETS
        self.index_counts = np.bincount(base_train[F.ITEM_ID_XF], minlength=item_size + reserve[1]).astype(np.float64)
        index_of_row = self.item_features[F.ITEM_ID_XF].values
        row_counts = self.index_counts[index_of_row]
        self.counts = _Column(np.where(index_of_row < self.oov_item_index, row_counts, 0.0))
        self.events_applied = 0

    def __getstate__(self) -> Dict:
        state = dict(self.__dict__)
        state.pop("_layer")  # the Transform layer is re-attached after unpickling
        return state

    def attach(self, transform_layer) -> None:
        """Sets the Transform layer (after unpickling)."""
        self._layer = transform_layer

    def clone(self) -> "OnlineTables":
        """An independent copy."""
        copied = pickle.loads(pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL))
        copied.attach(self._layer)
        return copied

    # ---- registration ------------------------------------------------------------------
    def _reserve(self, kind: str) -> int:
        """The next reserved embedding row of `kind`, or -1 when the reserve is used up."""
        if self.next_index[kind] >= self.index_end[kind]:
            return -1
        self.next_index[kind] += 1
        return self.next_index[kind] - 1

    def _register_users(self, events: Sequence[Event]) -> None:
        users, _ = profiles.describe(events, self.profiles, {})
        changed = [u for u in users if u not in self.profiles or users[u] != self.profiles[u]]
        if not changed:
            return
        raw = {F.USER_ID: changed, F.USER_AGE: [users[u][0] for u in changed],
               F.USER_GENDER: [users[u][1] for u in changed], F.USER_OCCUPATION: [users[u][2] for u in changed]}
        out = {k: v.numpy() for k, v in self._layer(_raw_batch(raw)).items()}
        for n, user in enumerate(changed):
            self.profiles[user] = users[user]
            row = self.user_row.get(user)
            if row is None:
                row = self.user_row[user] = len(self.user_keys)
                self.user_keys.append(user)
                self.seen.append(set())
                for name, column in self.user_features.items():
                    column.append(np.asarray(self.unknown_user[name])[None])
                index = self._reserve(F.USER_ID_XF)
                self.user_features[F.USER_ID_XF].values[row] = index if index >= 0 else out[F.USER_ID_XF][n]
            for name in (F.USER_AGE_XF, F.USER_GENDER_XF, F.USER_OCCUPATION_XF):
                self.user_features[name].values[row] = out[name][n]

    def _register_items(self, events: Sequence[Event]) -> None:
        catalog = {key: None for key in self.item_keys}
        _, new_items = profiles.describe(events, {}, catalog)
        if new_items:
            ids = list(new_items)
            raw = {F.ITEM_ID: ids, F.ITEM_TITLE: [new_items[i][0] for i in ids],
                   F.ITEM_GENRES: [new_items[i][1] for i in ids], F.ITEM_YEAR: [new_items[i][2] for i in ids]}
            out = {k: v.numpy() for k, v in self._layer(_raw_batch(raw)).items()}
            for n, item in enumerate(ids):
                self.item_row[item] = len(self.item_keys)
                self.item_keys.append(item)
                self.item_titles.append(new_items[item][0])
                self.item_genres.append(new_items[item][1])
                self.counts.append(np.zeros(1))
                for name, column in self.item_features.items():
                    column.append(out[name][n:n + 1])
        index = self.item_features[F.ITEM_ID_XF].values
        for item in {e.item_id for e in events}:
            row = self.item_row[item]
            if index[row] >= self.oov_item_index:
                reserved = self._reserve(F.ITEM_ID_XF)
                if reserved >= 0:
                    index[row] = reserved

    # ---- events ------------------------------------------------------------------------
    def apply(self, events: Sequence[Event]) -> Dict[str, np.ndarray]:
        """Applies events in order; returns their transformed training rows."""
        self._register_users(events)
        self._register_items(events)
        stamps = self._layer({F.TIMESTAMP: tf.constant([[e.timestamp] for e in events], tf.int64)})[F.TIMESTAMP_XF].numpy()
        rows: Dict[str, list] = {name: [] for name in list(self.user_features) + list(self.item_features)}
        history = self.user_features.get(F.USER_HISTORY)
        for event in events:
            user, item = self.user_row[event.user_id], self.item_row[event.item_id]
            for name, column in self.user_features.items():
                rows[name].append(column.values[user].copy())
            for name, column in self.item_features.items():
                rows[name].append(column.values[item])
            index = int(self.item_features[F.ITEM_ID_XF].values[item])
            self.seen[user].add(item)
            self.counts.values[item] += 1
            self.index_counts[index] += 1
            if history is not None:
                past = history.values[user]
                past[1:] = past[:-1].copy()
                past[0] = index + 1
        if self.log is not None:
            self.log.append(np.array([self.user_row[e.user_id] for e in events]),
                            np.array([self.item_row[e.item_id] for e in events]),
                            stamps.reshape(-1).astype(np.float64))
        self.events_applied += len(events)
        out = {name: np.stack(values) for name, values in rows.items()}
        out[F.TIMESTAMP_XF] = stamps.astype(np.float32)
        out[F.RATING_XF] = np.array([e.rating for e in events], np.float32)
        return out

    def item_probabilities(self) -> np.ndarray:
        """Share of interactions of each item index, floored as in `trainer.inputs`."""
        total = max(self.index_counts.sum(), 1.0)
        return np.maximum(self.index_counts / total, 1.0 / (10.0 * total)).astype(np.float32)

    def serving_tables(self) -> ServingTables:
        """The tables of the next exported version (unknown user last, as `build_tables`)."""
        user_features = {name: np.concatenate([column.values, np.asarray(self.unknown_user[name])[None]])
                         for name, column in self.user_features.items()}
        served_seen = [seen | self.held_out[row] if row in self.held_out else seen
                       for row, seen in enumerate(self.seen)]
        lengths = [len(s) for s in served_seen] + [0]
        values = np.fromiter((r for s in served_seen for r in sorted(s)), np.int64, sum(lengths))
        settings = self.source_settings
        if settings is not None and settings.cold_start_half_life is not None:
            _, rows, times = self.log.columns
            popular, popular_scores = cold_start_list(rows, times, len(self.item_keys), settings.cold_start_half_life)
        else:
            popular, popular_scores = ranked_by_share(self.counts.values)
        tables = ServingTables(
            user_keys=to_bytes(np.array(self.user_keys, dtype=object)),
            user_features=user_features,
            seen_row_splits=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
            seen_values=values,
            item_keys=to_bytes(np.array(self.item_keys, dtype=object)),
            item_features={name: column.values.copy() for name, column in self.item_features.items()},
            item_titles=to_bytes(np.array(self.item_titles, dtype=object)),
            item_genres=to_bytes(np.array(self.item_genres, dtype=object)),
            popular_rows=popular,
            popular_scores=popular_scores,
        )
        if self.source_settings is None:
            return tables
        popularity, ease, item_item = source_tables(self.log, len(self.user_keys), len(self.item_keys),
                                                    self.source_settings)
        return dataclasses.replace(tables, sources=popularity, ease=ease, item_item=item_item)
