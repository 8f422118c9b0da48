"""Importer of a generic interactions CSV, described by a `ColumnMapping`.

The file needs a header. User, item and timestamp columns are required. The rating column is
optional: without one (``rating=None``) the data is implicit feedback, every row is an
observed interaction and gets the rating `interactions.IMPLICIT_RATING` (1.0).

Side features may come from optional columns of the same file: a user's (an item's) features
are taken from its first kept row. With a separate items file (``items_path``: the item column
and the mapped item side columns, same delimiter), item features come from that file only; it
is the catalog, and items it lacks are added with unknown features. An item title ending in
"(YYYY)" gives the year when no year column is mapped. Genres are split on
`features.GENRE_SEPARATOR`.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Dict, List, Optional

from core import features
from ingest import assemble, cleaning, interactions, parsing, split, textfiles
from ingest.report import DataReport


@dataclasses.dataclass(frozen=True)
class ColumnMapping:
    """Column names of a generic CSV (None: the file has no such column).

    Attributes:
      user: the user id column.
      item: the item id column.
      rating: the rating column, or None for implicit feedback.
      timestamp: the Unix-seconds timestamp column.
      user_age, user_gender, user_occupation: optional user side columns.
      item_title, item_genres, item_year: optional item side columns.
      delimiter: the field separator.
    """

    user: str = features.USER_ID
    item: str = features.ITEM_ID
    rating: Optional[str] = features.RATING
    timestamp: str = features.TIMESTAMP
    user_age: Optional[str] = None
    user_gender: Optional[str] = None
    user_occupation: Optional[str] = None
    item_title: Optional[str] = None
    item_genres: Optional[str] = None
    item_year: Optional[str] = None
    delimiter: str = ","

    def user_columns(self) -> List[str]:
        """The mapped user side columns."""
        return [c for c in (self.user_age, self.user_gender, self.user_occupation) if c is not None]

    def describe(self) -> str:
        """One line naming the columns read, e.g. "user userId, item movieId, rating rating, ..."."""
        rating = self.rating if self.rating is not None else "none (implicit feedback)"
        delimiter = {"\t": "tab"}.get(self.delimiter, repr(self.delimiter))
        return (f"user {self.user}, item {self.item}, rating {rating}, timestamp {self.timestamp}, "
                f"delimiter {delimiter}")

    def item_columns(self) -> List[str]:
        """The mapped item side columns."""
        return [c for c in (self.item_title, self.item_genres, self.item_year) if c is not None]


def import_interactions_csv(
    path: str,
    out_dir: str,
    mapping: ColumnMapping = ColumnMapping(),
    eval_fraction: float = 0.2,
    items_path: Optional[str] = None,
    options: assemble.ImportOptions = assemble.ImportOptions(),
) -> DataReport:
    """Imports a generic interactions CSV (see the module docstring for the rules).

    Args:
      path: the interactions CSV.
      out_dir: the output folder.
      mapping: the column names.
      eval_fraction: fraction of the newest interactions put in eval, in (0, 1).
      items_path: an optional items CSV with the item column and item side columns.
      options: memory, file size and span settings.

    Returns:
      The report (also written to ``<out_dir>/data_report.json``).

    Raises:
      DataError: a file is missing, empty, lacks a mapped column, or no row is valid.
    """
    split.check_fraction(eval_fraction)
    report = cleaning.CleaningReport()
    tables = assemble.SideTables()
    if items_path is not None:
        tables.items = _read_items(items_path, mapping, report)
    source_file = textfiles.DelimitedFile(
        path, mapping.delimiter, quoted=True, encoding="utf-8", report=report, has_header=True
    )
    required = [mapping.user, mapping.item] + ([mapping.rating] if mapping.rating else []) + [mapping.timestamp]
    item_columns = mapping.item_columns() if items_path is None else []
    index = source_file.columns(required + mapping.user_columns() + item_columns)
    columns = interactions.Columns(
        user=index[mapping.user],
        item=index[mapping.item],
        rating=index[mapping.rating] if mapping.rating else None,
        timestamp=index[mapping.timestamp],
        names=(mapping.user, mapping.item, mapping.rating or "rating", mapping.timestamp),
        num_fields=len(source_file.header),
    )
    side = _SideCollector(mapping, index, tables, report, source_file.name, collect_items=bool(item_columns))
    source = assemble.Source(path, "csv", source_file.name, columns=mapping.describe())
    with assemble.StagingArea(out_dir, os.path.getsize(path), options) as stage:
        rows_read = interactions.stage_rows(source_file, columns, stage, report, hook=side)
        return assemble.write_import(stage, tables, report, source, out_dir, eval_fraction, rows_read, options)


class _SideCollector:
    """Row hook: records the side features of each user and item on its first kept row."""

    def __init__(self, mapping: ColumnMapping, index: Dict[str, int], tables: assemble.SideTables,
                 report: cleaning.CleaningReport, file: str, collect_items: bool) -> None:
        self._mapping = mapping
        self._index = index
        self._tables = tables
        self._report = report
        self._file = file
        self._collect_users = bool(mapping.user_columns())
        self._collect_items = collect_items

    def __call__(self, fields: List[str], line: int) -> None:
        user = fields[self._index[self._mapping.user]]
        if self._collect_users and user not in self._tables.users:
            self._tables.users[user] = _user_features(
                fields, self._index, self._mapping, self._report, self._file, line)
        item = fields[self._index[self._mapping.item]]
        if self._collect_items and item not in self._tables.items:
            self._tables.items[item] = _item_features(fields, self._index, self._mapping)


def _value(fields: List[str], index: Dict[str, int], column: Optional[str]) -> str:
    return fields[index[column]] if column is not None else ""


def _user_features(fields: List[str], index: Dict[str, int], mapping: ColumnMapping,
                   report: cleaning.CleaningReport, file: str, line: int) -> assemble.UserFeatures:
    age_text = _value(fields, index, mapping.user_age)
    age, invalid = parsing.parse_age(age_text)
    if invalid:
        report.fix(cleaning.AGE_OUT_OF_RANGE, file, line, mapping.user_age or "",
                   f"age {age_text!r} written as unknown")
    return (age, parsing.token_or_unknown(_value(fields, index, mapping.user_gender)),
            parsing.token_or_unknown(_value(fields, index, mapping.user_occupation)))


def _item_features(fields: List[str], index: Dict[str, int], mapping: ColumnMapping) -> assemble.ItemFeatures:
    title = _value(fields, index, mapping.item_title)
    if mapping.item_year is None:
        title, year = parsing.split_title_year(title)
    else:
        year = parsing.parse_year(_value(fields, index, mapping.item_year))
    genres = parsing.join_genres(_value(fields, index, mapping.item_genres).split(features.GENRE_SEPARATOR))
    return (parsing.token_or_unknown(title), genres, year)


def _read_items(path: str, mapping: ColumnMapping, report: cleaning.CleaningReport) -> Dict[str, assemble.ItemFeatures]:
    source = textfiles.DelimitedFile(
        path, mapping.delimiter, quoted=True, encoding="utf-8", report=report, has_header=True)
    index = source.columns([mapping.item] + mapping.item_columns())
    items: Dict[str, assemble.ItemFeatures] = {}
    for line, fields in source.rows():
        if not parsing.check_field_count(fields, len(source.header), source.name, line, report):
            continue
        item = fields[index[mapping.item]]
        if parsing.check_new_id(item, items, mapping.item, source.name, line, report):
            items[item] = _item_features(fields, index, mapping)
    return items
