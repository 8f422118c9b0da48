"""The planted synthetic world: users, items, tastes and popularity (no interactions).

Everything is drawn from a numpy Generator seeded by the config, so the same config gives
the same world. The planted truth (each user's taste mixture, each item's taste) is kept here
for tests and benchmarks; the canonical data only carries the observable side features.

* Tastes: ``num_tastes`` clusters; each has three "home" genres out of the 18 MovieLens ones.
* Items: one taste each; 1-3 genres, mostly from the taste's home genres; a title of words,
  its noun mostly from the taste's own nouns; a release year skewed to recent years; a
  Zipf-like popularity (weight ``1 / rank``); a hidden quality that nudges ratings.
* Users: a taste mixture (``MAIN_TASTE_WEIGHT`` on one main taste, the rest spread by a
  Dirichlet draw); age around the main taste's typical age; gender and occupation; a
  long-tailed (log-normal) activity that fixes how many interactions each user has.
"""

from __future__ import annotations

import dataclasses
from typing import List

import numpy as np

from core import features
from core.config_loader import ConfigError
from ingest.config import SyntheticDataConfig

GENRES = (
    "Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
    "War", "Western",
)
OCCUPATIONS = (
    "administrator", "artist", "doctor", "educator", "engineer", "entertainment", "executive",
    "healthcare", "homemaker", "lawyer", "librarian", "marketing", "none", "other", "programmer",
    "retired", "salesman", "scientist", "student", "technician", "writer",
)
ADJECTIVES = (
    "Silent", "Broken", "Golden", "Hidden", "Last", "Lost", "Midnight", "Crimson", "Frozen",
    "Wild", "Secret", "Burning", "Distant", "Final", "Electric", "Quiet", "Savage", "Little",
    "Endless", "Iron", "Velvet", "Hollow", "Bright", "Dark",
)
NOUNS = (
    "River", "Empire", "Garden", "Stranger", "Kingdom", "Highway", "Summer", "Shadow", "Ocean",
    "Promise", "Frontier", "Circus", "Detective", "Planet", "Ghost", "Orchestra", "Soldier",
    "Island", "Machine", "Heart", "Castle", "Outlaw", "Dragon", "Letter", "Harbor", "Storm",
    "Mirror", "Station", "Forest", "Rebel", "Galaxy", "Wedding",
)
TITLE_PATTERNS = ("The {adj} {noun}", "{adj} {noun}", "The {noun}", "{noun} of the {adj} {noun2}")

MAIN_TASTE_WEIGHT = 0.7      # share of a user's taste mixture on the main taste
OFF_TASTE_AFFINITY = 0.02    # floor of a user's affinity for any taste
TASTE_SHARPNESS = 2.0        # sampling weight = popularity * (floor + affinity) ** sharpness
HOME_GENRE_PROBABILITY = 0.8
OWN_NOUN_PROBABILITY = 0.6
ACTIVITY_SIGMA = 1.0         # log-normal spread of user activity
POPULARITY_EXPONENT = 1.2    # item weight = 1 / rank ** exponent
QUALITY_SD = 0.4


@dataclasses.dataclass(frozen=True)
class World:
    """The planted world of a `SyntheticDataConfig` (arrays indexed by user or item code).

    Attributes:
      user_ids, item_ids: the ids written in the data ("1", "2", ...).
      user_taste: [users, tastes] taste mixture (rows sum to 1).
      user_main_taste: [users] the taste with the largest weight.
      user_age, user_gender, user_occupation: observable user features.
      user_interactions: [users] number of interactions per span (sums to num_interactions).
      item_taste: [items] the item's taste.
      item_popularity: [items] popularity weights (sum to 1).
      item_quality: [items] hidden quality added to ratings.
      item_title, item_genres, item_year: observable item features.
    """

    user_ids: List[str]
    item_ids: List[str]
    user_taste: np.ndarray
    user_main_taste: np.ndarray
    user_age: np.ndarray
    user_gender: List[str]
    user_occupation: List[str]
    user_interactions: np.ndarray
    item_taste: np.ndarray
    item_popularity: np.ndarray
    item_quality: np.ndarray
    item_title: List[str]
    item_genres: List[str]
    item_year: np.ndarray


def check_config(cfg: SyntheticDataConfig) -> None:
    """Raises ConfigError when the config cannot make a world (beyond its own field rules)."""
    if cfg.num_interactions > cfg.num_users * cfg.num_items:
        raise ConfigError(
            f"synthetic.num_interactions ({cfg.num_interactions}) exceeds num_users * num_items "
            f"({cfg.num_users * cfg.num_items}): a user rates an item at most once"
        )


def build_world(cfg: SyntheticDataConfig) -> World:
    """Draws the world of a config (same config, same world).

    Args:
      cfg: the sizes and the seed.

    Returns:
      The world.

    Raises:
      ConfigError: the config is invalid (see `check_config`).
    """
    check_config(cfg)
    rng = np.random.default_rng([cfg.seed, 0])
    tastes = cfg.num_tastes
    home_genres = np.stack([rng.choice(len(GENRES), size=3, replace=False) for _ in range(tastes)])
    taste_age = rng.uniform(20, 50, size=tastes)
    taste_male = rng.uniform(0.45, 0.8, size=tastes)

    item_taste = rng.integers(tastes, size=cfg.num_items)
    rank = rng.permutation(cfg.num_items)
    weights = 1.0 / (rank + 1.0) ** POPULARITY_EXPONENT
    item_year = np.clip(2020 - np.floor(rng.exponential(15.0, size=cfg.num_items)), 1920, 2020).astype(np.int64)
    item_genres = [_genres(rng, home_genres[t]) for t in item_taste]
    item_title = [_title(rng, int(t), tastes) for t in item_taste]

    main = rng.integers(tastes, size=cfg.num_users)
    spread = rng.dirichlet(np.full(tastes, 0.5), size=cfg.num_users)
    user_taste = (1.0 - MAIN_TASTE_WEIGHT) * spread
    user_taste[np.arange(cfg.num_users), main] += MAIN_TASTE_WEIGHT
    user_age = np.clip(np.rint(rng.normal(taste_age[main], 9.0)), 7, 73).astype(np.int64)
    gender = np.where(rng.random(cfg.num_users) < taste_male[main], "M", "F")
    occupation_weights = rng.dirichlet(np.full(len(OCCUPATIONS), 2.0))
    occupation = rng.choice(len(OCCUPATIONS), size=cfg.num_users, p=occupation_weights)
    activity = rng.lognormal(0.0, ACTIVITY_SIGMA, size=cfg.num_users)

    return World(
        user_ids=[str(u + 1) for u in range(cfg.num_users)],
        item_ids=[str(i + 1) for i in range(cfg.num_items)],
        user_taste=user_taste,
        user_main_taste=np.argmax(user_taste, axis=1),
        user_age=user_age,
        user_gender=gender.tolist(),
        user_occupation=[OCCUPATIONS[o] for o in occupation],
        user_interactions=allocate(cfg.num_interactions, activity, cfg.num_items),
        item_taste=item_taste,
        item_popularity=weights / weights.sum(),
        item_quality=rng.normal(0.0, QUALITY_SD, size=cfg.num_items),
        item_title=item_title,
        item_genres=item_genres,
        item_year=item_year,
    )


def allocate(total: int, weights: np.ndarray, cap: int) -> np.ndarray:
    """Splits `total` into integer counts roughly proportional to `weights`, each <= `cap`.

    Every entry gets at least one when ``total >= len(weights)``.

    Args:
      total: the sum of the counts, at most ``cap * len(weights)``.
      weights: positive weights.
      cap: the largest count of one entry.

    Returns:
      int64 counts summing to `total`.
    """
    counts = np.zeros(len(weights), dtype=np.int64)
    if total >= len(weights):
        counts[:] = 1
    remaining = total - int(counts.sum())
    while remaining > 0:
        open_weights = np.where(counts < cap, weights, 0.0)
        share = np.minimum(np.floor(remaining * open_weights / open_weights.sum()).astype(np.int64), cap - counts)
        if share.sum() == 0:
            order = np.argsort(-open_weights, kind="stable")[:remaining]
            share[order[open_weights[order] > 0]] = 1
        counts += share
        remaining = total - int(counts.sum())
    return counts


def _genres(rng: np.random.Generator, home: np.ndarray) -> str:
    count = int(rng.choice(3, p=(0.45, 0.4, 0.15))) + 1
    chosen: List[int] = []
    while len(chosen) < count:
        genre = int(rng.choice(home)) if rng.random() < HOME_GENRE_PROBABILITY else int(rng.integers(len(GENRES)))
        if genre not in chosen:
            chosen.append(genre)
    return features.GENRE_SEPARATOR.join(GENRES[g] for g in sorted(chosen))


def _title(rng: np.random.Generator, taste: int, tastes: int) -> str:
    per_taste = max(1, len(NOUNS) // tastes)

    def noun() -> str:
        if rng.random() < OWN_NOUN_PROBABILITY:
            return NOUNS[(taste * per_taste + int(rng.integers(per_taste))) % len(NOUNS)]
        return NOUNS[int(rng.integers(len(NOUNS)))]

    pattern = TITLE_PATTERNS[int(rng.integers(len(TITLE_PATTERNS)))]
    return pattern.format(adj=ADJECTIVES[int(rng.integers(len(ADJECTIVES)))], noun=noun(), noun2=noun())
