"""MovieLens 100K import on hand-written files: every bad-row kind, counts and the round trip."""

import pytest

from core import features
from ingest import ImportOptions, cleaning, import_movielens_100k
from ingest.errors import DataError
from ingest.report import DataReport
from tests.ingest import helpers

USERS = {  # user id -> (age, gender, occupation) as written
    "1": (24, "M", "technician"), "2": (53, "F", "other"), "3": (0, "M", "writer"),
    "4": (0, "F", "artist"), "9": (0, features.UNKNOWN_TOKEN, features.UNKNOWN_TOKEN),
}
ITEMS = {  # item id -> (title, genres, year) as written
    "1": ("Toy Story", "Animation|Children|Comedy", 1995), "2": ("Café Society", "Drama", 1995),
    "3": ("Unknown Movie", features.NO_GENRES, 1997), "4": ("Bad Flags", features.NO_GENRES, 1990),
    "9": (features.UNKNOWN_TOKEN, features.NO_GENRES, features.UNKNOWN_INT),
}


def _row(user, item, rating, ts):
    return helpers.interaction(user, *USERS[user], item, *ITEMS[item], rating, ts)


EXPECTED_TRAIN = [_row("1", "1", 5.0, 100), _row("1", "2", 3.0, 200), _row("3", "3", 2.0, 250),
                  _row("2", "2", 4.0, 300), _row("4", "9", 3.0, 350), _row("2", "1", 2.0, 400)]
EXPECTED_EVAL = [_row("9", "1", 1.0, 450), _row("4", "4", 3.0, 500)]


def test_counts_every_bad_row_by_reason(tmp_path):
    report = import_movielens_100k(str(helpers.write_100k(tmp_path / "ml")), str(tmp_path / "out"), eval_fraction=0.25)
    assert report.rows_read == 17
    assert report.dropped == {
        cleaning.MALFORMED_ROW: 3, cleaning.MISSING_FIELD: 1, cleaning.NON_NUMERIC: 1,
        cleaning.RATING_OUT_OF_RANGE: 2, cleaning.TIMESTAMP_INVALID: 2, cleaning.EXACT_DUPLICATE: 1,
        cleaning.DUPLICATE_PAIR: 1, cleaning.DUPLICATE_ID: 1,
    }
    assert report.fixed == {cleaning.AGE_OUT_OF_RANGE: 2, cleaning.GENRE_FLAG_INVALID: 1}
    assert report.rows_written == {features.TRAIN_SPLIT: 6, features.EVAL_SPLIT: 2}
    assert (report.users, report.items, report.users_without_features) == (5, 5, 1)
    assert (report.catalog_rows, report.catalog_rows_added) == (5, 1)
    assert report.cutoff_timestamp == 400
    assert "u.data line 8: 2 fields, expected 4 (dropped: malformed_row)" in report.samples
    assert "u.data line 11 field rating: rating '7' outside [0.5, 5.0] (dropped: rating_out_of_range)" in report.samples
    assert DataReport.from_json(str(tmp_path / "out" / "data_report.json")) == report


def test_round_trip_of_the_written_rows_and_catalog(tmp_path):
    out = tmp_path / "out"
    import_movielens_100k(str(helpers.write_100k(tmp_path / "ml")), str(out), eval_fraction=0.25)
    assert helpers.read_split(out, features.TRAIN_SPLIT) == EXPECTED_TRAIN
    assert helpers.read_split(out, features.EVAL_SPLIT) == EXPECTED_EVAL
    assert helpers.read_catalog(out) == {item: helpers.catalog_row(item, *ITEMS[item]) for item in ITEMS}
    assert list(helpers.read_catalog(out)) == ["1", "2", "3", "4", "9"]


def test_small_chunks_and_buckets_write_the_same_rows_in_several_files(tmp_path):
    out = tmp_path / "out"
    options = ImportOptions(chunk_rows=2, bucket_rows=1, rows_per_file=2)
    report = import_movielens_100k(str(helpers.write_100k(tmp_path / "ml")), str(out), 0.25, options)
    assert report.dropped[cleaning.EXACT_DUPLICATE] == 1 and report.dropped[cleaning.DUPLICATE_PAIR] == 1
    assert helpers.read_split(out, features.TRAIN_SPLIT) == EXPECTED_TRAIN
    assert helpers.read_split(out, features.EVAL_SPLIT) == EXPECTED_EVAL
    assert len(list((out / "interactions" / "span-0" / features.TRAIN_SPLIT).iterdir())) == 3


def test_a_later_span_goes_to_its_own_folder(tmp_path):
    out = tmp_path / "out"
    source = helpers.write_100k(tmp_path / "ml")
    import_movielens_100k(str(source), str(out), 0.25)
    report = import_movielens_100k(str(source), str(out), 0.25, ImportOptions(span=1))
    assert report.span == 1
    assert helpers.read_split(out, features.TRAIN_SPLIT, span=1) == EXPECTED_TRAIN
    assert helpers.read_split(out, features.TRAIN_SPLIT, span=0) == EXPECTED_TRAIN


@pytest.mark.parametrize("missing", ["u.data", "u.item", "u.user"])
def test_a_missing_file_is_named(tmp_path, missing):
    folder = helpers.write_100k(tmp_path / "ml")
    (folder / missing).unlink()
    with pytest.raises(DataError, match=rf"{missing}: file does not exist"):
        import_movielens_100k(str(folder), str(tmp_path / "out"))


def test_an_empty_file_is_named(tmp_path):
    folder = helpers.write_100k(tmp_path / "ml")
    (folder / "u.user").write_bytes(b"")
    with pytest.raises(DataError, match=r"u\.user: file is empty"):
        import_movielens_100k(str(folder), str(tmp_path / "out"))


def test_no_valid_rating_is_an_error_that_names_the_file_and_the_reasons(tmp_path):
    folder = helpers.write_100k(tmp_path / "ml")
    helpers.write_lines(folder / "u.data", ["1\t1\t9\t100", "1\t2"])
    with pytest.raises(DataError, match=r"no valid interaction rows in u\.data \(2 read; .*rating_out_of_range"):
        import_movielens_100k(str(folder), str(tmp_path / "out"))
    assert not (tmp_path / "out" / "interactions").exists()
