"""Column mapping of an interactions CSV from its header, for `recsys run --data file.csv`.

When a CSV lacks the canonical column names (`features.USER_ID`, `ITEM_ID`, `RATING`,
`TIMESTAMP`), the usual names of public data sets are recognised, compared without case,
spaces, ``_`` or ``-``: ``userId`` / ``user`` / ``UserID`` / ``customer_id`` for the user,
``movieId`` / ``item`` / ``product_id`` / ``asin`` for the item, ``rating`` / ``score`` /
``stars`` / ``overall`` for the rating, ``timestamp`` / ``time`` / ``ts`` / ``unixReviewTime`` for the time.
Without a rating column the data is implicit feedback. The delimiter is the one of ``,``,
``\\t``, ``;`` and ``|`` that splits the header into the most fields. A header that names no
user, item or time column keeps the canonical mapping, so the importer's error names what is
missing.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional, Sequence

from core import features
from ingest.generic_csv import ColumnMapping

ALIASES: Dict[str, Sequence[str]] = {
    "user": ("userid", "user", "uid", "customerid", "customer", "visitorid", "reviewerid", "memberid"),
    "item": ("itemid", "item", "movieid", "movie", "productid", "product", "iid", "asin", "bookid", "isbn",
             "trackid", "songid", "artistid"),
    "rating": ("rating", "ratings", "score", "stars", "overall", "value", "bookrating"),
    "timestamp": ("timestamp", "time", "ts", "unixtime", "unixreviewtime", "eventtime", "datetime"),
}
DELIMITERS = (",", "\t", ";", "|")


def _key(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch not in " _-\"'")


def _find(header: Sequence[str], aliases: Sequence[str]) -> Optional[str]:
    keys = {_key(column): column for column in reversed(header)}  # the first column wins a tie
    for alias in aliases:
        if alias in keys:
            return keys[alias]
    return None


def guess_delimiter(header_line: str) -> str:
    """The delimiter of `DELIMITERS` that splits `header_line` into the most fields (',' on a tie)."""
    return max(DELIMITERS, key=lambda d: (len(header_line.split(d)), d == ","))


def read_header_line(path: str) -> str:
    """The first non-blank line of `path` (UTF-8, undecodable bytes replaced), or ''."""
    with open(path, "rb") as handle:
        for raw in handle:
            line = raw.decode("utf-8", errors="replace").strip("\r\n\ufeff")
            if line.strip():
                return line
    return ""


def guess_mapping(header_line: str) -> ColumnMapping:
    """The column mapping of a CSV whose first line is `header_line` (module docstring).

    Args:
      header_line: the file's first line (decoded, without the newline).

    Returns:
      The canonical `ColumnMapping()` with its delimiter when the header holds the canonical
      names or no recognisable user, item and time columns; else the columns found.
    """
    delimiter = guess_delimiter(header_line)
    header: List[str] = [field.strip().strip('"') for field in header_line.split(delimiter)]
    canonical = dataclasses.replace(ColumnMapping(), delimiter=delimiter)
    if all(name in header for name in (features.USER_ID, features.ITEM_ID, features.TIMESTAMP)):
        return canonical if features.RATING in header else dataclasses.replace(canonical, rating=None)
    found = {role: _find(header, aliases) for role, aliases in ALIASES.items()}
    if found["user"] is None or found["item"] is None or found["timestamp"] is None:
        return canonical
    return ColumnMapping(user=found["user"], item=found["item"], rating=found["rating"],
                         timestamp=found["timestamp"], delimiter=delimiter)
