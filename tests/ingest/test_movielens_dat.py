"""MovieLens 1M / 10M (`::`-separated .dat files) import on hand-written files."""

import pytest

from core import features
from ingest import cleaning, detect_format, import_any, import_movielens_dat
from ingest.errors import DataError
from tests.ingest import helpers

RATINGS = [
    "1::1193::5::978300760",
    "1::661::3::978302109",
    "2::1193::4.5::978298413",  # 10M rates in half stars
    "2::3408::7::978299000",  # out of range: dropped
    "3::661::x::978299100",  # not a number: dropped
    "3::3408::4",  # too few fields: dropped
    "3::3408::2::978300000",
]
MOVIES_1M = [
    "661::James and the Giant Peach (1996)::Animation|Children's|Musical",
    "1193::One Flew Over the Cuckoo's Nest (1975)::Drama",
    "3408::Erin Brockovich (2000)::Drama",
    "3409::Misérables, Les (1995)::Drama|Musical",  # Latin-1 in the 1M files
]
USERS_1M = [
    "1::F::1::10::48067",
    "2::M::56::16::70072",
    "3::M::25::15::55117",
]


def _write(folder, users=True, movies_encoding="latin-1"):
    folder.mkdir()
    helpers.write_lines(folder / "ratings.dat", RATINGS)
    helpers.write_lines(folder / "movies.dat", MOVIES_1M, encoding=movies_encoding)
    if users:
        helpers.write_lines(folder / "users.dat", USERS_1M)
    return folder


def test_1m_folder_round_trip_with_counted_drops_and_fixes(tmp_path):
    out = tmp_path / "out"
    report = import_movielens_dat(str(_write(tmp_path / "ml-1m")), str(out), eval_fraction=0.25)
    assert report.format == "ml-dat" and report.rows_read == 7
    assert report.dropped == {cleaning.RATING_OUT_OF_RANGE: 1, cleaning.NON_NUMERIC: 1,
                              cleaning.MALFORMED_ROW: 1}
    assert report.fixed == {cleaning.UNDECODABLE_BYTES: 1}  # the Latin-1 title
    rows = helpers.read_split(out, features.TRAIN_SPLIT) + helpers.read_split(out, features.EVAL_SPLIT)
    assert sorted((r[features.USER_ID], r[features.ITEM_ID], r[features.RATING]) for r in rows) == [
        ("1", "1193", 5.0), ("1", "661", 3.0), ("2", "1193", 4.5), ("3", "3408", 2.0)]
    first = next(r for r in rows if r[features.USER_ID] == "2")
    assert (first[features.USER_AGE], first[features.USER_GENDER], first[features.USER_OCCUPATION]) == (56, "M", "16")
    catalog = helpers.read_catalog(out)
    # the year leaves the title; 1M's "Children's" is spelled as in the newer files
    assert catalog["661"] == helpers.catalog_row("661", "James and the Giant Peach", "Animation|Children|Musical", 1996)
    assert catalog["3409"][features.ITEM_TITLE] == "Misérables, Les"  # decoded, not mojibake
    assert catalog["1193"][features.ITEM_GENRES] == "Drama"


def test_10m_folder_without_users_dat(tmp_path):
    folder = _write(tmp_path / "ml-10m", users=False, movies_encoding="utf-8")
    report = import_movielens_dat(str(folder), str(tmp_path / "out"), eval_fraction=0.25)
    assert report.fixed == {} and report.users_without_features == 3
    rows = helpers.read_split(tmp_path / "out", features.TRAIN_SPLIT)
    assert all(r[features.USER_GENDER] == features.UNKNOWN_TOKEN for r in rows)
    assert helpers.read_catalog(tmp_path / "out")["3409"][features.ITEM_TITLE] == "Misérables, Les"


def test_detected_and_dispatched_by_import_any(tmp_path):
    folder = _write(tmp_path / "ml-1m")
    assert detect_format(str(folder)) == "ml-dat"
    assert import_any(str(folder), str(tmp_path / "out")).format == "ml-dat"


@pytest.mark.parametrize("missing", ["ratings.dat", "movies.dat"])
def test_a_missing_file_is_named(tmp_path, missing):
    folder = _write(tmp_path / "ml-1m")
    (folder / missing).unlink()
    with pytest.raises(DataError, match=rf"{missing}: file does not exist"):
        import_movielens_dat(str(folder), str(tmp_path / "out"))


def test_duplicate_and_malformed_movie_rows_are_counted(tmp_path):
    folder = _write(tmp_path / "ml-1m")
    helpers.write_lines(folder / "movies.dat", MOVIES_1M[:3] + ["661::Again (1990)::Drama", "bad row"])
    report = import_movielens_dat(str(folder), str(tmp_path / "out"), eval_fraction=0.25)
    assert report.dropped[cleaning.DUPLICATE_ID] == 1
    assert report.dropped[cleaning.MALFORMED_ROW] == 2  # the ratings row and the movie row
    assert "movies.dat line 5: 1 fields, expected 3 (dropped: malformed_row)" in report.samples
