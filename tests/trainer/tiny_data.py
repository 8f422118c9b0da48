"""A tiny, hand-readable interaction set with two user groups of disjoint tastes."""

from __future__ import annotations

from typing import Dict, List

from core import features as F

GENRES = {"a": "Action|Thriller", "b": "Comedy|Romance"}


def item_row(item: str, group: str, year: int) -> Dict[str, object]:
    return {
        F.ITEM_ID: item,
        F.ITEM_TITLE: f"The {group.upper()} Story {item} ({year})",
        F.ITEM_GENRES: GENRES[group],
        F.ITEM_YEAR: year,
    }


def catalog(items_per_group: int = 10) -> List[Dict[str, object]]:
    rows = []
    for group in "ab":
        for i in range(items_per_group):
            rows.append(item_row(f"{group}{i}", group, 1990 + i))
    return rows


def interactions(users_per_group: int = 20, items_per_group: int = 10) -> List[Dict[str, object]]:
    """Users u<g><n> of group g rate every item of their group, in a fixed time order."""
    items = {row[F.ITEM_ID]: row for row in catalog(items_per_group)}
    rows = []
    t = 1_000_000
    for group in "ab":
        for n in range(users_per_group):
            for i in range(items_per_group):
                if (n + i) % 3 == 0:
                    continue  # leave a third out so there is something to recommend
                t += 60
                rows.append({
                    F.USER_ID: f"u{group}{n}",
                    F.USER_AGE: 20 + n,
                    F.USER_GENDER: "M" if n % 2 else "F",
                    F.USER_OCCUPATION: "writer" if group == "a" else "artist",
                    F.RATING: 4.0 + (i % 2),
                    F.TIMESTAMP: t,
                    **items[f"{group}{i}"],
                })
    return rows
