"""Generic interactions CSV import: column mapping, side columns, implicit feedback, items file."""

import pytest

from core import features
from ingest import ColumnMapping, cleaning, import_interactions_csv
from ingest.errors import DataError
from tests.ingest import helpers

UNK = features.UNKNOWN_TOKEN
MAPPING = ColumnMapping(user="who", item="what", rating="stars", timestamp="when", user_age="age",
                        user_gender="sex", item_title="name", item_genres="kinds", delimiter=";")
LINES = [
    "who;what;stars;when;age;sex;name;kinds",
    "a;x;4;10;30;F;Alpha (1999);Drama|Comedy",
    "a;y;2;20;30;F;Beta;",
    "b;x;5;30;150;M;Alpha (1999);Drama|Comedy",   # age 150 -> unknown (fixed)
    "b;z;3;40;;M;Gamma (2005);Horror",
    "c;y;1;50;x;;Beta;",                          # age 'x' -> unknown (fixed)
    "c;;1;60;20;F;Nothing;",                      # missing item
    "c;y;1;70;20;F;Beta",                         # malformed (7 fields)
]
USERS = {"a": (30, "F", UNK), "b": (0, "M", UNK), "c": (0, UNK, UNK)}
ITEMS = {"x": ("Alpha", "Drama|Comedy", 1999), "y": ("Beta", features.NO_GENRES, 0), "z": ("Gamma", "Horror", 2005)}


def _row(user, item, rating, ts, users=USERS, items=ITEMS):
    return helpers.interaction(user, *users[user], item, *items[item], rating, ts)


def test_mapped_columns_side_features_and_split(tmp_path):
    source = helpers.write_lines(tmp_path / "events.csv", LINES)
    report = import_interactions_csv(str(source), str(tmp_path / "out"), MAPPING, eval_fraction=0.4)
    assert report.format == "csv"
    assert report.rows_read == 7
    assert report.dropped == {cleaning.MISSING_FIELD: 1, cleaning.MALFORMED_ROW: 1}
    assert report.fixed == {cleaning.AGE_OUT_OF_RANGE: 2}
    assert report.rows_written == {features.TRAIN_SPLIT: 3, features.EVAL_SPLIT: 2}
    assert report.cutoff_timestamp == 30
    assert (report.users, report.items, report.users_without_features, report.catalog_rows_added) == (3, 3, 0, 0)
    assert helpers.read_split(tmp_path / "out", features.TRAIN_SPLIT) == [
        _row("a", "x", 4.0, 10), _row("a", "y", 2.0, 20), _row("b", "x", 5.0, 30)]
    assert helpers.read_split(tmp_path / "out", features.EVAL_SPLIT) == [
        _row("b", "z", 3.0, 40), _row("c", "y", 1.0, 50)]
    assert helpers.read_catalog(tmp_path / "out") == {i: helpers.catalog_row(i, *row) for i, row in ITEMS.items()}


def test_implicit_feedback_gets_rating_one_and_unknown_side_features(tmp_path):
    source = helpers.write_lines(tmp_path / "clicks.csv", [
        f"{features.USER_ID},{features.ITEM_ID},{features.TIMESTAMP}", "u1,i1,5", "u2,i1,6", "u1,i2,7", "u1,i2,8"])
    report = import_interactions_csv(str(source), str(tmp_path / "out"), ColumnMapping(rating=None), eval_fraction=0.34)
    assert report.dropped == {cleaning.DUPLICATE_PAIR: 1}   # (u1, i2) twice: the newest (8) is kept
    unknown_user = {"u1": (0, UNK, UNK), "u2": (0, UNK, UNK)}
    unknown_items = {"i1": (UNK, features.NO_GENRES, 0), "i2": (UNK, features.NO_GENRES, 0)}
    assert helpers.read_split(tmp_path / "out", features.TRAIN_SPLIT) == [
        _row("u1", "i1", 1.0, 5, unknown_user, unknown_items), _row("u2", "i1", 1.0, 6, unknown_user, unknown_items)]
    assert helpers.read_split(tmp_path / "out", features.EVAL_SPLIT) == [
        _row("u1", "i2", 1.0, 8, unknown_user, unknown_items)]
    assert (report.users_without_features, report.catalog_rows, report.catalog_rows_added) == (2, 2, 2)


def test_items_file_is_the_catalog(tmp_path):
    source = helpers.write_lines(tmp_path / "events.csv", ["who;what;stars;when", "a;x;4;10", "a;q;3;20"])
    items = helpers.write_lines(tmp_path / "items.csv", [
        "what;name;kinds;yr", "x;Alpha;Drama;1999", "w;Omega (1950);War;", "x;Again;Drama;2000"])
    mapping = ColumnMapping(user="who", item="what", rating="stars", timestamp="when", item_title="name",
                            item_genres="kinds", item_year="yr", delimiter=";")
    report = import_interactions_csv(str(source), str(tmp_path / "out"), mapping, 0.5, items_path=str(items))
    assert report.dropped == {cleaning.DUPLICATE_ID: 1}
    assert (report.catalog_rows, report.catalog_rows_added) == (3, 1)
    assert helpers.read_catalog(tmp_path / "out") == {
        "x": helpers.catalog_row("x", "Alpha", "Drama", 1999),
        "w": helpers.catalog_row("w", "Omega (1950)", "War", 0),  # a year column is mapped: the title stays whole
        "q": helpers.catalog_row("q", UNK, features.NO_GENRES, 0),
    }


def test_missing_mapped_column_is_named(tmp_path):
    source = helpers.write_lines(tmp_path / "events.csv", ["who;what;when", "a;x;10"])
    with pytest.raises(DataError, match=r"events\.csv: missing column\(s\) 'stars', 'age', 'sex', 'name', 'kinds'"):
        import_interactions_csv(str(source), str(tmp_path / "out"), MAPPING)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(DataError, match=r"nope\.csv: file does not exist"):
        import_interactions_csv(str(tmp_path / "nope.csv"), str(tmp_path / "out"))


def test_bad_eval_fraction_is_refused_before_reading(tmp_path):
    with pytest.raises(ValueError, match="eval_fraction"):
        import_interactions_csv(str(tmp_path / "nope.csv"), str(tmp_path / "out"), eval_fraction=1.0)


def test_ids_with_a_line_break_are_dropped_and_counted(tmp_path):
    """A quoted CSV field may hold a line break; an id cannot (the served model keeps its keys one
    per line), so the row is dropped under its own reason, in the interactions and the items file."""
    source = helpers.write_lines(tmp_path / "events.csv", [
        "who;what;stars;when", "a;x;4;10", '"b\nc";x;3;20', 'a;"y\rz";2;30', "d;y;5;40"])
    items = helpers.write_lines(tmp_path / "items.csv", ["what;name", "x;Alpha", '"w\nv";Broken', "y;Beta"])
    mapping = ColumnMapping(user="who", item="what", rating="stars", timestamp="when", item_title="name",
                            delimiter=";")
    report = import_interactions_csv(str(source), str(tmp_path / "out"), mapping, 0.5, items_path=str(items))
    assert report.dropped == {cleaning.LINE_BREAK_IN_ID: 3}
    assert report.rows_read == 4
    kept = helpers.read_split(tmp_path / "out", features.TRAIN_SPLIT) + helpers.read_split(
        tmp_path / "out", features.EVAL_SPLIT)
    assert sorted((r[features.USER_ID], r[features.ITEM_ID]) for r in kept) == [("a", "x"), ("d", "y")]
    assert set(helpers.read_catalog(tmp_path / "out")) == {"x", "y"}
