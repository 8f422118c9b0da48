"""Parsers and checks of single fields and side-table rows (rules: `ingest.cleaning`).

Each parser returns the clean value or raises `cleaning.RowRejected` with the reason and the
field, which the importer counts; side values that are merely invalid become unknown.
"""

from __future__ import annotations

import datetime
import math
import re
from typing import Dict, Iterable, List, Tuple

from core import features
from ingest.cleaning import (
    DUPLICATE_ID,
    MALFORMED_ROW,
    LINE_BREAK_IN_ID,
    MISSING_FIELD,
    NON_NUMERIC,
    RATING_OUT_OF_RANGE,
    TIMESTAMP_INVALID,
    CleaningReport,
    RowRejected,
)

MAX_TIMESTAMP = 4_102_444_800  # 2100-01-01T00:00:00Z
# Whole numbers from here up to MAX_TIMESTAMP * 1000 are Unix milliseconds (1973-03-03 onwards;
# as seconds they would lie beyond 2100).
MIN_MILLISECONDS = 100_000_000_000
MIN_YEAR = 1800
MAX_YEAR = 2100

_TITLE_YEAR = re.compile(r"^(?P<title>.*?)\s*\((?P<year>\d{4})\)\s*$")


def check_field_count(fields: List[str], expected: int, file: str, line: int, report: CleaningReport) -> bool:
    """True when a side-table row has `expected` fields; else counts it as malformed.

    Args:
      fields: the row's fields.
      expected: the number of fields a well-formed row has.
      file: the file name, for the report.
      line: the row's line.
      report: counts a malformed row.

    Returns:
      Whether the row is well formed.
    """
    if len(fields) == expected:
        return True
    report.drop(MALFORMED_ROW, file, line, detail=f"{len(fields)} fields, expected {expected}")
    return False


def check_new_id(key: str, table: Dict, field: str, file: str, line: int, report: CleaningReport) -> bool:
    """True when a side-table id is non-empty and not yet in `table`; else counts the drop.

    Args:
      key: the row's id.
      table: the ids read so far.
      field: the id column's name.
      file: the file name, for the report.
      line: the row's line.
      report: counts `missing_field` or `duplicate_id`.

    Returns:
      Whether the row should be kept.
    """
    if key == "":
        report.drop(MISSING_FIELD, file, line, field, "empty id")
        return False
    if has_line_break(key):
        report.drop(LINE_BREAK_IN_ID, file, line, field, f"id {key!r} holds a line break")
        return False
    if key in table:
        report.drop(DUPLICATE_ID, file, line, field, f"id {key!r} seen earlier; the first row is kept")
        return False
    return True


def has_line_break(text: str) -> bool:
    """Whether `text` holds a line break (an id cannot: the served model stores ids one per line)."""
    return "\n" in text or "\r" in text


def require_single_line_ids(values: Dict[str, str]) -> None:
    """Rejects a row whose user or item id holds a line break.

    Args:
      values: id field name -> its text.

    Raises:
      RowRejected: `line_break_in_id`, naming the first such field.
    """
    for name, text in values.items():
        if has_line_break(text):
            raise RowRejected(LINE_BREAK_IN_ID, name, f"id {text!r} holds a line break")


def require(values: Dict[str, str]) -> None:
    """Rejects a row whose required field is empty.

    Args:
      values: field name -> stripped text, in the order they are checked.

    Raises:
      RowRejected: `missing_field`, naming the first empty field.
    """
    for name, text in values.items():
        if text == "":
            raise RowRejected(MISSING_FIELD, name, "empty value")


def parse_rating(text: str, field: str) -> float:
    """Parses a rating and checks its range.

    Args:
      text: the field's stripped text.
      field: the column name, for messages.

    Returns:
      The rating.

    Raises:
      RowRejected: `non_numeric` or `rating_out_of_range`.
    """
    try:
        value = float(text)
    except ValueError:
        raise RowRejected(NON_NUMERIC, field, f"{text!r} is not a number") from None
    if not math.isfinite(value) or not features.MIN_RATING <= value <= features.MAX_RATING:
        raise RowRejected(
            RATING_OUT_OF_RANGE, field,
            f"rating {text!r} outside [{features.MIN_RATING}, {features.MAX_RATING}]",
        )
    return value


def parse_timestamp(text: str, field: str) -> int:
    """Parses a timestamp into Unix seconds.

    Accepted: Unix seconds ("964982703", "964982703.0"), Unix milliseconds (a whole number from
    `MIN_MILLISECONDS` on: "1433221332117" -> 1433221332, rounded down) and ISO 8601 dates
    ("2015-06-02", "2015-06-02 05:02:12", "2015-06-02T05:02:12Z", with an offset or without one,
    then UTC).

    Args:
      text: the field's stripped text.
      field: the column name, for messages.

    Returns:
      The timestamp in whole seconds.

    Raises:
      RowRejected: `non_numeric` (neither a number nor a date) or `timestamp_invalid`.
    """
    try:
        number = float(text)
    except ValueError:
        return _parse_date(text, field)
    if not math.isfinite(number) or number != math.floor(number):
        raise RowRejected(TIMESTAMP_INVALID, field, f"{text!r} is not a whole number of seconds")
    value = int(number)  # exact: the valid range is far below 2**53
    if MIN_MILLISECONDS <= value < MAX_TIMESTAMP * 1000:
        value //= 1000
    if not 0 <= value < MAX_TIMESTAMP:
        raise RowRejected(TIMESTAMP_INVALID, field, f"{text!r} outside [0, {MAX_TIMESTAMP}) seconds")
    return value


def _parse_date(text: str, field: str) -> int:
    """An ISO 8601 date or date-time as Unix seconds (UTC unless it carries an offset)."""
    try:
        moment = datetime.datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    except ValueError:
        raise RowRejected(NON_NUMERIC, field, f"{text!r} is neither a number nor an ISO date") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    value = math.floor(moment.timestamp())
    if not 0 <= value < MAX_TIMESTAMP:
        raise RowRejected(TIMESTAMP_INVALID, field, f"{text!r} outside 1970-01-01 .. 2100-01-01")
    return value


def parse_age(text: str) -> Tuple[int, bool]:
    """Parses an age; an invalid one becomes unknown.

    Args:
      text: the field's stripped text.

    Returns:
      (age or `features.UNKNOWN_INT`, True when a non-empty value was invalid).
    """
    if text == "":
        return features.UNKNOWN_INT, False
    try:
        value = float(text)
    except ValueError:
        return features.UNKNOWN_INT, True
    if not math.isfinite(value) or value != math.floor(value):
        return features.UNKNOWN_INT, True
    if not features.MIN_AGE <= value <= features.MAX_AGE:
        return features.UNKNOWN_INT, True
    return int(value), False


def token_or_unknown(text: str) -> str:
    """A categorical side value, or `features.UNKNOWN_TOKEN` when empty."""
    return text if text else features.UNKNOWN_TOKEN


def split_title_year(title: str) -> Tuple[str, int]:
    """Splits a MovieLens title "Name (YYYY)" into the name and the year.

    Args:
      title: the raw title; runs of white space (newlines included) become one space.

    Returns:
      (title without the trailing year, year), or (title, `features.UNKNOWN_INT`) when the
      title does not end in a plausible "(YYYY)"; an empty title is `features.UNKNOWN_TOKEN`.
    """
    title = " ".join(title.split())
    match = _TITLE_YEAR.match(title)
    if match is None:
        return title or features.UNKNOWN_TOKEN, features.UNKNOWN_INT
    year = int(match.group("year"))
    name = match.group("title").strip()
    if not MIN_YEAR <= year <= MAX_YEAR or not name:
        return title, features.UNKNOWN_INT
    return name, year


def parse_year(text: str) -> int:
    """A year from a plain "YYYY" field or the end of a date ("01-Jan-1995"), else unknown."""
    match = re.search(r"(\d{4})$", text.strip())
    if match is None:
        return features.UNKNOWN_INT
    year = int(match.group(1))
    return year if MIN_YEAR <= year <= MAX_YEAR else features.UNKNOWN_INT


def join_genres(names: Iterable[str]) -> str:
    """Joins genre names into the canonical single value.

    Args:
      names: genre names; empty names and `features.NO_GENRES` are ignored, repeats dropped.

    Returns:
      The names in order joined by `features.GENRE_SEPARATOR`, or `features.NO_GENRES`.
    """
    kept: List[str] = []
    for name in names:
        name = name.strip()
        if name and name != features.NO_GENRES and name not in kept:
            kept.append(name)
    return features.GENRE_SEPARATOR.join(kept) if kept else features.NO_GENRES
