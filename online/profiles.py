"""Side features of users and items named by events: the catalog, recent spans, the events.

Rules (shared by the span roller and the learner):

* an item in the catalog keeps its catalog features; an item outside it is described by the
  item fields of its events (newest event wins per field), the rest unknown;
* a user's profile is the newest known row in the recent spans, updated field by field by the
  user fields of their events (newest wins); a user with neither has unknown features.
"""

from __future__ import annotations

import os
from typing import Dict, Iterable, Set, Tuple

from core import features as F
from online.events import Event

UserProfile = Tuple[int, str, str]  # age, gender, occupation
ItemProfile = Tuple[str, str, int]  # title, genres, year
UNKNOWN_USER: UserProfile = (F.UNKNOWN_INT, F.UNKNOWN_TOKEN, F.UNKNOWN_TOKEN)
UNKNOWN_ITEM: ItemProfile = (F.UNKNOWN_TOKEN, F.NO_GENRES, F.UNKNOWN_INT)


def updated_user(profile: UserProfile, event: Event) -> UserProfile:
    """`profile` with the user fields `event` gives."""
    side = event.user_side()
    return (int(side.get(F.USER_AGE, profile[0])), str(side.get(F.USER_GENDER, profile[1])),
            str(side.get(F.USER_OCCUPATION, profile[2])))


def updated_item(profile: ItemProfile, event: Event) -> ItemProfile:
    """`profile` with the item fields `event` gives."""
    side = event.item_side()
    return (str(side.get(F.ITEM_TITLE, profile[0])), str(side.get(F.ITEM_GENRES, profile[1])),
            int(side.get(F.ITEM_YEAR, profile[2])))


def span_numbers(data_root: str) -> list:
    """Published span numbers under ``<data_root>/interactions``, ascending."""
    from ingest import writer

    folder = os.path.join(data_root, writer.INTERACTIONS_DIR)
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    return sorted(int(n[len("span-"):]) for n in names if n.startswith("span-") and n[len("span-"):].isdigit())


def catalog_items(data_root: str) -> Dict[str, ItemProfile]:
    """Item id -> catalog features (empty when there is no catalog yet)."""
    from ingest import writer

    path = writer.catalog_path(data_root)
    if not path.exists():
        return {}
    return {str(row[F.ITEM_ID]): (str(row[F.ITEM_TITLE]), str(row[F.ITEM_GENRES]), int(row[F.ITEM_YEAR]))
            for row in writer.read_examples(str(path))}


def span_user_profiles(data_root: str, users: Set[str], lookback: int) -> Dict[str, UserProfile]:
    """Features of `users` in their newest row of the newest `lookback` spans (where found)."""
    from ingest import writer

    found: Dict[str, UserProfile] = {}
    for span in reversed(span_numbers(data_root)[-lookback:]):
        wanted = users - set(found)
        if not wanted:
            break
        newest: Dict[str, Tuple[int, UserProfile]] = {}
        for row in writer.read_examples(str(writer.span_dir(data_root, span) / "*" / "*.tfrecord.gz")):
            user = str(row[F.USER_ID])
            if user in wanted and (user not in newest or row[F.TIMESTAMP] >= newest[user][0]):
                newest[user] = (int(row[F.TIMESTAMP]), (int(row[F.USER_AGE]), str(row[F.USER_GENDER]), str(row[F.USER_OCCUPATION])))
        found.update({user: profile for user, (_, profile) in newest.items()})
    return found


def describe(events: Iterable[Event], base_users: Dict[str, UserProfile],
             catalog: Dict[str, ItemProfile]) -> Tuple[Dict[str, UserProfile], Dict[str, ItemProfile]]:
    """Profiles of every user and new item of `events` (in log order) after applying them.

    Returns:
      (user id -> profile, new item id -> profile); catalog items are not in the second map.
    """
    users: Dict[str, UserProfile] = {}
    new_items: Dict[str, ItemProfile] = {}
    for event in events:
        users[event.user_id] = updated_user(users.get(event.user_id, base_users.get(event.user_id, UNKNOWN_USER)), event)
        if event.item_id not in catalog:
            new_items[event.item_id] = updated_item(new_items.get(event.item_id, UNKNOWN_ITEM), event)
    return users, new_items
