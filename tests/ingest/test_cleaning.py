"""Cleaning rules: field parsers, duplicate rules and the report's counting."""

import numpy as np
import pytest

from core import features
from ingest import cleaning, parsing


@pytest.mark.parametrize("text, expected", [("0.5", 0.5), ("5", 5.0), ("3.5", 3.5)])
def test_parse_rating_accepts_the_range(text, expected):
    assert parsing.parse_rating(text, "rating") == expected


@pytest.mark.parametrize("text, reason", [
    ("abc", cleaning.NON_NUMERIC), ("0.4", cleaning.RATING_OUT_OF_RANGE), ("5.5", cleaning.RATING_OUT_OF_RANGE),
    ("nan", cleaning.RATING_OUT_OF_RANGE), ("inf", cleaning.RATING_OUT_OF_RANGE), ("-1", cleaning.RATING_OUT_OF_RANGE),
])
def test_parse_rating_rejects_with_reason_and_field(text, reason):
    with pytest.raises(cleaning.RowRejected) as caught:
        parsing.parse_rating(text, "stars")
    assert caught.value.reason == reason
    assert caught.value.field == "stars"


@pytest.mark.parametrize("text, expected", [
    ("0", 0), ("964982703", 964982703), ("964982703.0", 964982703),
    ("1433221332117", 1433221332), ("100000000000", 100000000),  # Unix milliseconds
    ("2015-06-02", 1433203200), ("2015-06-02 05:02:12", 1433221332), ("2015-06-02T05:02:12Z", 1433221332),
    ("2015-06-02T07:02:12+02:00", 1433221332),  # ISO dates, UTC unless an offset is given
])
def test_parse_timestamp_accepts_whole_seconds(text, expected):
    assert parsing.parse_timestamp(text, "timestamp") == expected


@pytest.mark.parametrize("text, reason", [
    ("soon", cleaning.NON_NUMERIC), ("-5", cleaning.TIMESTAMP_INVALID), ("12.5", cleaning.TIMESTAMP_INVALID),
    ("nan", cleaning.TIMESTAMP_INVALID), (str(parsing.MAX_TIMESTAMP), cleaning.TIMESTAMP_INVALID),
    ("99999999999", cleaning.TIMESTAMP_INVALID),  # beyond 2100 as seconds, before 1973 as milliseconds
    (str(parsing.MAX_TIMESTAMP * 1000), cleaning.TIMESTAMP_INVALID), ("1969-12-31", cleaning.TIMESTAMP_INVALID),
    ("2015-13-02", cleaning.NON_NUMERIC),
])
def test_parse_timestamp_rejects(text, reason):
    with pytest.raises(cleaning.RowRejected) as caught:
        parsing.parse_timestamp(text, "ts")
    assert caught.value.reason == reason


@pytest.mark.parametrize("text, expected", [
    ("24", (24, False)), ("", (features.UNKNOWN_INT, False)), ("0", (features.UNKNOWN_INT, True)),
    ("121", (features.UNKNOWN_INT, True)), ("x", (features.UNKNOWN_INT, True)), ("30.5", (features.UNKNOWN_INT, True)),
])
def test_parse_age(text, expected):
    assert parsing.parse_age(text) == expected


@pytest.mark.parametrize("raw, expected", [
    ("Toy Story (1995)", ("Toy Story", 1995)),
    ("American President, The (1995) ", ("American President, The", 1995)),
    ("Hyena Road", ("Hyena Road", features.UNKNOWN_INT)),
    ("Babylon 5", ("Babylon 5", features.UNKNOWN_INT)),
    ("1984 (1956)", ("1984", 1956)),
    ("(500) Days of Summer (2009)", ("(500) Days of Summer", 2009)),
])
def test_split_title_year(raw, expected):
    assert parsing.split_title_year(raw) == expected


def test_join_genres_drops_empty_repeats_and_no_genres():
    assert parsing.join_genres(["Drama", " Comedy", "", "Drama"]) == "Drama" + features.GENRE_SEPARATOR + "Comedy"
    assert parsing.join_genres([features.NO_GENRES]) == features.NO_GENRES
    assert parsing.join_genres([]) == features.NO_GENRES


def _staged(rows):
    return np.array(rows, dtype=cleaning.STAGED_DTYPE)


def test_dedup_keeps_first_exact_and_newest_pair_in_file_order():
    rows = _staged([
        # user, item, rating, ts, row
        (0, 0, 4.0, 100, 1),
        (0, 1, 3.0, 200, 2),
        (0, 0, 4.0, 100, 3),   # exact duplicate of row 1
        (1, 0, 2.0, 300, 4),
        (1, 0, 5.0, 250, 5),   # same pair, older: dropped
        (1, 0, 1.0, 300, 6),   # same pair, same newest time, later in the file: kept
        (0, 1, 3.0, 150, 7),   # same pair as row 2 with the same rating but older: dropped
    ])
    kept, exact, pairs = cleaning.dedup_interactions(rows)
    assert kept["row"].tolist() == [1, 2, 6]
    assert (exact, pairs) == (1, 3)
    assert kept["rating"].tolist() == [4.0, 3.0, 1.0]


def test_dedup_of_nothing():
    kept, exact, pairs = cleaning.dedup_interactions(_staged([]))
    assert len(kept) == 0 and (exact, pairs) == (0, 0)


def test_report_counts_by_reason_and_file_and_keeps_few_samples():
    report = cleaning.CleaningReport(max_samples_per_reason=2)
    for line in (3, 4, 5):
        report.drop(cleaning.MALFORMED_ROW, "u.data", line, detail="2 fields")
    report.fix(cleaning.AGE_OUT_OF_RANGE, "u.user", 7, "age", "age '200'")
    report.drop_many(cleaning.EXACT_DUPLICATE, "u.data", 4)
    assert dict(report.dropped) == {cleaning.MALFORMED_ROW: 3, cleaning.EXACT_DUPLICATE: 4}
    assert dict(report.fixed) == {cleaning.AGE_OUT_OF_RANGE: 1}
    assert dict(report.by_file["u.data"]) == {cleaning.MALFORMED_ROW: 3, cleaning.EXACT_DUPLICATE: 4}
    assert report.samples == [
        "u.data line 3: 2 fields (dropped: malformed_row)",
        "u.data line 4: 2 fields (dropped: malformed_row)",
        "u.user line 7 field age: age '200' (fixed: age_out_of_range)",
    ]
