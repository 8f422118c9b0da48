"""Importers of the MovieLens formats: the 100K folder and the ratings.csv/movies.csv folders.

* MovieLens 100K: ``u.data`` (tab-separated user, item, rating, timestamp), ``u.item``
  (pipe-separated, Latin-1: id, title "Name (YYYY)", release date, video release date, IMDb URL,
  19 genre flags) and ``u.user`` (user, age, gender, occupation, zip code), none with a header.
* MovieLens latest-small / 25M / 32M: ``ratings.csv`` (userId, movieId, rating, timestamp) and
  ``movies.csv`` (movieId, title, genres), UTF-8 CSV with a header and quoted titles.

Titles are written without their trailing "(YYYY)"; the year goes to `features.ITEM_YEAR`
(for 100K, the release date's year when the title has none). The 100K genre "Children's" is
written as "Children", as in the newer files, and its "unknown" genre as no genre.
"""

from __future__ import annotations

import os
from typing import Dict, Tuple

from core import features
from ingest import assemble, cleaning, interactions, parsing, split, textfiles
from ingest.errors import DataError
from ingest.report import DataReport

ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
)
ML100K_FILES = ("u.data", "u.item", "u.user")
ML_CSV_FILES = ("ratings.csv", "movies.csv")
RATINGS_COLUMNS = ("userId", "movieId", "rating", "timestamp")
MOVIES_COLUMNS = ("movieId", "title", "genres")

_ITEM_FIELDS = 5 + len(ML100K_GENRES)
_USER_FIELDS = 5


def import_movielens_100k(
    src_dir: str,
    out_dir: str,
    eval_fraction: float = 0.2,
    options: assemble.ImportOptions = assemble.ImportOptions(),
) -> DataReport:
    """Imports a MovieLens 100K folder into canonical data.

    Args:
      src_dir: the folder holding u.data, u.item and u.user.
      out_dir: the output folder.
      eval_fraction: fraction of the newest interactions put in eval, in (0, 1).
      options: memory, file size and span settings.

    Returns:
      The report (also written to ``<out_dir>/data_report.json``).

    Raises:
      DataError: a file is missing, empty or unreadable, or no interaction row is valid.
    """
    split.check_fraction(eval_fraction)
    _require_files(src_dir, ML100K_FILES)
    report = cleaning.CleaningReport()
    tables = assemble.SideTables(
        users=_read_100k_users(os.path.join(src_dir, "u.user"), report),
        items=_read_100k_items(os.path.join(src_dir, "u.item"), report),
    )
    ratings = textfiles.DelimitedFile(
        os.path.join(src_dir, "u.data"), "\t", quoted=False, encoding="utf-8", report=report, has_header=False
    )
    columns = interactions.Columns(0, 1, 2, 3, ("user", "item", "rating", "timestamp"), 4)
    source = assemble.Source(src_dir, "ml-100k", "u.data")
    with assemble.StagingArea(out_dir, os.path.getsize(ratings.path), options) as stage:
        rows_read = interactions.stage_rows(ratings, columns, stage, report)
        return assemble.write_import(stage, tables, report, source, out_dir, eval_fraction, rows_read, options)


def import_movielens_csv(
    src_dir: str,
    out_dir: str,
    eval_fraction: float = 0.2,
    options: assemble.ImportOptions = assemble.ImportOptions(),
) -> DataReport:
    """Imports a MovieLens ratings.csv/movies.csv folder (latest-small, 25M, 32M).

    Args:
      src_dir: the folder holding ratings.csv and movies.csv.
      out_dir: the output folder.
      eval_fraction: fraction of the newest interactions put in eval, in (0, 1).
      options: memory, file size and span settings.

    Returns:
      The report (also written to ``<out_dir>/data_report.json``).

    Raises:
      DataError: a file is missing, empty, lacks a column, or no rating row is valid.
    """
    split.check_fraction(eval_fraction)
    _require_files(src_dir, ML_CSV_FILES)
    report = cleaning.CleaningReport()
    tables = assemble.SideTables(items=_read_movies(os.path.join(src_dir, "movies.csv"), report))
    ratings = textfiles.DelimitedFile(
        os.path.join(src_dir, "ratings.csv"), ",", quoted=True, encoding="utf-8", report=report, has_header=True
    )
    index = ratings.columns(RATINGS_COLUMNS)
    columns = interactions.Columns(
        *(index[name] for name in RATINGS_COLUMNS), names=RATINGS_COLUMNS, num_fields=len(ratings.header)
    )
    source = assemble.Source(src_dir, "ml-csv", "ratings.csv")
    with assemble.StagingArea(out_dir, os.path.getsize(ratings.path), options) as stage:
        rows_read = interactions.stage_rows(ratings, columns, stage, report)
        return assemble.write_import(stage, tables, report, source, out_dir, eval_fraction, rows_read, options)


def _require_files(src_dir: str, names: Tuple[str, ...]) -> None:
    if not os.path.isdir(src_dir):
        raise DataError(f"{src_dir}: not a folder")
    for name in names:
        if not os.path.isfile(os.path.join(src_dir, name)):
            raise DataError(
                f"{os.path.join(src_dir, name)}: file does not exist (a {', '.join(names)} folder needs it)")


def _read_100k_users(path: str, report: cleaning.CleaningReport) -> Dict[str, assemble.UserFeatures]:
    source = textfiles.DelimitedFile(path, "|", quoted=False, encoding="utf-8", report=report, has_header=False)
    users: Dict[str, assemble.UserFeatures] = {}
    for line, fields in source.rows():
        if not parsing.check_field_count(fields, _USER_FIELDS, source.name, line, report):
            continue
        user, age_text, gender, occupation = fields[:4]
        if not parsing.check_new_id(user, users, "user", source.name, line, report):
            continue
        age, invalid = parsing.parse_age(age_text)
        if invalid:
            report.fix(cleaning.AGE_OUT_OF_RANGE, source.name, line, "age", f"age {age_text!r} written as unknown")
        users[user] = (age, parsing.token_or_unknown(gender), parsing.token_or_unknown(occupation))
    return users


def _read_100k_items(path: str, report: cleaning.CleaningReport) -> Dict[str, assemble.ItemFeatures]:
    source = textfiles.DelimitedFile(path, "|", quoted=False, encoding="latin-1", report=report, has_header=False)
    items: Dict[str, assemble.ItemFeatures] = {}
    for line, fields in source.rows():
        if not parsing.check_field_count(fields, _ITEM_FIELDS, source.name, line, report):
            continue
        item, raw_title, release_date = fields[:3]
        if not parsing.check_new_id(item, items, "item", source.name, line, report):
            continue
        genres = []
        for name, flag in zip(ML100K_GENRES, fields[5:]):
            if flag not in ("0", "1"):
                report.fix(cleaning.GENRE_FLAG_INVALID, source.name, line, name, f"flag {flag!r} read as 0")
            elif flag == "1" and name != "unknown":
                genres.append(name)
        title, year = parsing.split_title_year(raw_title)
        if year == features.UNKNOWN_INT:
            year = parsing.parse_year(release_date)
        items[item] = (title, parsing.join_genres(genres), year)
    return items


def _read_movies(path: str, report: cleaning.CleaningReport) -> Dict[str, assemble.ItemFeatures]:
    source = textfiles.DelimitedFile(path, ",", quoted=True, encoding="utf-8", report=report, has_header=True)
    index = source.columns(MOVIES_COLUMNS)
    items: Dict[str, assemble.ItemFeatures] = {}
    for line, fields in source.rows():
        if not parsing.check_field_count(fields, len(source.header), source.name, line, report):
            continue
        item = fields[index["movieId"]]
        if not parsing.check_new_id(item, items, "movieId", source.name, line, report):
            continue
        title, year = parsing.split_title_year(fields[index["title"]])
        genres = fields[index["genres"]].split(features.GENRE_SEPARATOR)
        items[item] = (title, parsing.join_genres(genres), year)
    return items
