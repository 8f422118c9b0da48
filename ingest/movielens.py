"""Importers of the MovieLens formats: the 100K folder and the ratings.csv/movies.csv folders.

* MovieLens 100K: ``u.data`` (tab-separated user, item, rating, timestamp), ``u.item``
  (pipe-separated, Latin-1: id, title "Name (YYYY)", release date, video release date, IMDb URL,
  19 genre flags) and ``u.user`` (user, age, gender, occupation, zip code), none with a header.
* MovieLens latest-small / 25M / 32M: ``ratings.csv`` (userId, movieId, rating, timestamp) and
  ``movies.csv`` (movieId, title, genres), UTF-8 CSV with a header and quoted titles.
* MovieLens 1M / 10M: ``ratings.dat`` (UserID::MovieID::Rating::Timestamp), ``movies.dat``
  (MovieID::Title::Genres, genres pipe-separated) and, in 1M only, ``users.dat``
  (UserID::Gender::Age::Occupation::Zip-code; the age is the lower bound of the user's age group,
  the occupation a numeric code), ``::``-separated, no header. 1M's movies.dat is Latin-1: its
  lines that are not UTF-8 are decoded as Latin-1 and counted (`cleaning.UNDECODABLE_BYTES`).

Titles are written without their trailing "(YYYY)"; the year goes to `features.ITEM_YEAR`
(for 100K, the release date's year when the title has none). The 100K and 1M genre "Children's"
is written as "Children", as in the newer files, and 100K's "unknown" genre as no genre.
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
ML_DAT_FILES = ("ratings.dat", "movies.dat")  # users.dat is read when present (1M has it, 10M not)
ML_DAT_USERS = "users.dat"
DAT_SEPARATOR = "::"
OLD_GENRE_NAMES = {"Children's": "Children"}  # 1M's spelling -> the newer files' one
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


def import_movielens_dat(
    src_dir: str,
    out_dir: str,
    eval_fraction: float = 0.2,
    options: assemble.ImportOptions = assemble.ImportOptions(),
) -> DataReport:
    """Imports a MovieLens 1M or 10M folder (``::``-separated ``.dat`` files): `src_dir` holds
    ratings.dat, movies.dat and (1M) users.dat; the other arguments, the report returned and the
    `DataError` raised are `import_movielens_100k`'s."""
    split.check_fraction(eval_fraction)
    _require_files(src_dir, ML_DAT_FILES)
    report = cleaning.CleaningReport()
    users_path = os.path.join(src_dir, ML_DAT_USERS)
    tables = assemble.SideTables(
        users=_read_dat_users(users_path, report) if os.path.isfile(users_path) else {},
        items=_read_dat_movies(os.path.join(src_dir, "movies.dat"), report),
    )
    ratings = _dat_file(os.path.join(src_dir, "ratings.dat"), report)
    columns = interactions.Columns(0, 1, 2, 3, ("UserID", "MovieID", "Rating", "Timestamp"), 4)
    source = assemble.Source(src_dir, "ml-dat", "ratings.dat")
    with assemble.StagingArea(out_dir, os.path.getsize(ratings.path), options) as stage:
        rows_read = interactions.stage_rows(ratings, columns, stage, report)
        return assemble.write_import(stage, tables, report, source, out_dir, eval_fraction, rows_read, options)


def _dat_file(path: str, report: cleaning.CleaningReport) -> textfiles.DelimitedFile:
    return textfiles.DelimitedFile(path, DAT_SEPARATOR, quoted=False, encoding="utf-8", report=report,
                                   has_header=False)


def _read_dat_users(path: str, report: cleaning.CleaningReport) -> Dict[str, assemble.UserFeatures]:
    return _read_users(_dat_file(path, report), ("UserID", "Age", "Gender", "Occupation"), (0, 2, 1, 3), report)


def _read_dat_movies(path: str, report: cleaning.CleaningReport) -> Dict[str, assemble.ItemFeatures]:
    source = _dat_file(path, report)
    items: Dict[str, assemble.ItemFeatures] = {}
    for line, fields in source.rows():
        if not parsing.check_field_count(fields, len(MOVIES_COLUMNS), source.name, line, report):
            continue
        item, raw_title, genres = fields
        if not parsing.check_new_id(item, items, "MovieID", source.name, line, report):
            continue
        title, year = parsing.split_title_year(raw_title)
        names = [OLD_GENRE_NAMES.get(name, name) for name in genres.split(features.GENRE_SEPARATOR)]
        items[item] = (title, parsing.join_genres(names), year)
    return items


def _require_files(src_dir: str, names: Tuple[str, ...]) -> None:
    if not os.path.isdir(src_dir):
        raise DataError(f"{src_dir}: not a folder")
    for name in names:
        if not os.path.isfile(os.path.join(src_dir, name)):
            raise DataError(
                f"{os.path.join(src_dir, name)}: file does not exist (a {', '.join(names)} folder needs it)")


def _read_100k_users(path: str, report: cleaning.CleaningReport) -> Dict[str, assemble.UserFeatures]:
    source = textfiles.DelimitedFile(path, "|", quoted=False, encoding="utf-8", report=report, has_header=False)
    return _read_users(source, ("user", "age", "gender", "occupation"), (0, 1, 2, 3), report)


def _read_users(source: textfiles.DelimitedFile, names: Tuple[str, str, str, str], positions: Tuple[int, int, int, int],
                report: cleaning.CleaningReport) -> Dict[str, assemble.UserFeatures]:
    """A users file of `_USER_FIELDS` fields: the user id, age, gender and occupation at `positions`
    (named `names` in the report)."""
    users: Dict[str, assemble.UserFeatures] = {}
    for line, fields in source.rows():
        if not parsing.check_field_count(fields, _USER_FIELDS, source.name, line, report):
            continue
        user, age_text, gender, occupation = (fields[i] for i in positions)
        if not parsing.check_new_id(user, users, names[0], source.name, line, report):
            continue
        age, invalid = parsing.parse_age(age_text)
        if invalid:
            report.fix(cleaning.AGE_OUT_OF_RANGE, source.name, line, names[1], f"age {age_text!r} written as unknown")
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
