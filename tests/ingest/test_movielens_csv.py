"""MovieLens ratings.csv/movies.csv import on hand-written files."""

import pytest

from core import features
from ingest import cleaning, import_movielens_csv
from ingest.errors import DataError
from tests.ingest import helpers
from tests.ingest.helpers import MOVIES, RATINGS, write_ml_csv

CATALOG = {
    "1": ("Toy Story", "Adventure|Animation|Children|Comedy|Fantasy", 1995),
    "2": ("American President, The", "Comedy|Drama|Romance", 1995),
    "3": ("Hyena Road", features.NO_GENRES, features.UNKNOWN_INT),
    "4": ("Crème Brûlée, Part 2", "Drama", 2001),
    "5": ("Badÿ Bytes", "Comedy", 1999),
    "99": (features.UNKNOWN_TOKEN, features.NO_GENRES, features.UNKNOWN_INT),
}
NO_USER = (features.UNKNOWN_INT, features.UNKNOWN_TOKEN, features.UNKNOWN_TOKEN)


def _row(user, item, rating, ts):
    return helpers.interaction(user, *NO_USER, item, *CATALOG[item], rating, ts)


def test_import_counts_splits_and_round_trip(tmp_path):
    out = tmp_path / "out"
    report = import_movielens_csv(str(write_ml_csv(tmp_path / "ml")), str(out), eval_fraction=0.5)
    assert report.rows_read == 10
    assert report.dropped == {
        cleaning.RATING_OUT_OF_RANGE: 1, cleaning.MISSING_FIELD: 1, cleaning.MALFORMED_ROW: 2,
        cleaning.NON_NUMERIC: 1, cleaning.DUPLICATE_ID: 1,
    }
    assert report.fixed == {cleaning.UNDECODABLE_BYTES: 1}
    assert "movies.csv line 6: byte 0xff at column 6 is not utf-8; line decoded as latin-1 " \
           "(fixed: undecodable_bytes)" in report.samples
    assert report.rows_written == {features.TRAIN_SPLIT: 3, features.EVAL_SPLIT: 3}
    assert report.cutoff_timestamp == 964982703
    assert (report.users, report.items, report.users_without_features) == (3, 6, 3)
    assert (report.catalog_rows, report.catalog_rows_added) == (6, 1)
    assert helpers.read_split(out, features.TRAIN_SPLIT) == [
        _row("1", "2", 3.5, 964981247), _row("2", "3", 0.5, 964982224), _row("1", "1", 4.0, 964982703)]
    assert helpers.read_split(out, features.EVAL_SPLIT) == [
        _row("2", "4", 5.0, 964983815), _row("3", "5", 2.5, 964984000), _row("3", "99", 3.0, 964985000)]
    assert helpers.read_catalog(out) == {item: helpers.catalog_row(item, *row) for item, row in CATALOG.items()}


def test_columns_are_found_by_name_and_quoted_newlines_keep_line_numbers(tmp_path):
    ratings = ["timestamp,rating,movieId,userId", "10,4.0,1,7", "11,oops,1,8", "12,3.0,2,7"]
    movies = ["movieId,title,genres", '1,"Two', 'Lines (1990)",Drama', "2,Bad row", "3,Fine (2000),Drama"]
    folder = tmp_path / "ml"
    folder.mkdir()
    helpers.write_lines(folder / "ratings.csv", ratings)
    helpers.write_lines(folder / "movies.csv", movies)
    report = import_movielens_csv(str(folder), str(tmp_path / "out"), eval_fraction=0.3)
    assert "ratings.csv line 3 field rating: 'oops' is not a number (dropped: non_numeric)" in report.samples
    assert "movies.csv line 4: 2 fields, expected 3 (dropped: malformed_row)" in report.samples
    catalog = helpers.read_catalog(tmp_path / "out")
    assert catalog["1"][features.ITEM_TITLE] == "Two Lines"  # white space runs become one space
    assert catalog["1"][features.ITEM_YEAR] == 1990
    assert helpers.read_split(tmp_path / "out", features.EVAL_SPLIT) == [
        helpers.interaction("7", *NO_USER, "2", features.UNKNOWN_TOKEN, features.NO_GENRES, features.UNKNOWN_INT,
                            3.0, 12)]


@pytest.mark.parametrize("name", ["ratings.csv", "movies.csv"])
def test_missing_file_is_named(tmp_path, name):
    folder = write_ml_csv(tmp_path / "ml")
    (folder / name).unlink()
    with pytest.raises(DataError, match=rf"{name}: file does not exist"):
        import_movielens_csv(str(folder), str(tmp_path / "out"))


def test_wrong_columns_are_named(tmp_path):
    folder = write_ml_csv(tmp_path / "ml", ratings=["user,movieId,stars,timestamp", "1,1,4.0,5"])
    with pytest.raises(DataError, match=r"ratings\.csv: missing column\(s\) 'userId', 'rating' in the header "
                                        r"\(line 1\); the header has user, movieId, stars, timestamp"):
        import_movielens_csv(str(folder), str(tmp_path / "out"))


def test_empty_and_header_only_files(tmp_path):
    folder = write_ml_csv(tmp_path / "ml")
    (folder / "movies.csv").write_bytes(b"\n\n")
    with pytest.raises(DataError, match=r"movies\.csv: file is empty"):
        import_movielens_csv(str(folder), str(tmp_path / "out"))
    helpers.write_lines(folder / "movies.csv", MOVIES[:1])
    helpers.write_lines(folder / "ratings.csv", RATINGS[:1])
    with pytest.raises(DataError, match=r"no valid interaction rows in ratings\.csv \(0 read"):
        import_movielens_csv(str(folder), str(tmp_path / "out"))


def test_an_unclosed_quote_that_swallows_the_file_is_an_error_naming_the_line(tmp_path):
    folder = write_ml_csv(tmp_path / "ml")
    movies = MOVIES[:3] + ['7,"Open quote (1990),Drama'] + ["8,Filler (1990),Drama"] * 12_000
    helpers.write_lines(folder / "movies.csv", movies)
    with pytest.raises(DataError, match=r"movies\.csv line 4: a quoted field opened here is never closed"):
        import_movielens_csv(str(folder), str(tmp_path / "out"))


def test_one_oversized_field_drops_its_row_by_reason_and_keeps_the_rest(tmp_path):
    folder = write_ml_csv(tmp_path / "ml")
    huge = '"' + "x" * 300_000 + '"'
    helpers.write_lines(folder / "ratings.csv", RATINGS[:3] + [f"1,3,{huge},964982800"] + RATINGS[3:5])
    report = import_movielens_csv(str(folder), str(tmp_path / "out"))
    assert report.dropped.get(cleaning.FIELD_TOO_LONG) == 1
    assert report.rows_read == 4  # the parser never hands the oversized row on; it is counted as a drop
    assert sum(report.rows_written.values()) == 4


def test_a_wrong_columns_error_names_only_the_first_columns(tmp_path):
    folder = write_ml_csv(tmp_path / "ml")
    helpers.write_lines(folder / "ratings.csv", [",".join(f"c{i}" for i in range(50_000)), "1"])
    with pytest.raises(DataError) as raised:
        import_movielens_csv(str(folder), str(tmp_path / "out"))
    message = str(raised.value)
    assert "(and 49988 more columns)" in message and len(message) < 1000
