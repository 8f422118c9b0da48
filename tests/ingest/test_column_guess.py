"""Column mapping read off a CSV header, and `recsys run --data file.csv` through `import_any`."""

import pytest

from core import features
from ingest import import_any
from ingest.column_guess import guess_delimiter, guess_mapping, read_header_line
from ingest.errors import DataError
from ingest.generic_csv import ColumnMapping
from tests.ingest import helpers


@pytest.mark.parametrize("header, expected", [
    ("userId,movieId,rating,timestamp", ("userId", "movieId", "rating", "timestamp", ",")),
    ("UserID\tMovieID\tRating\tTimestamp", ("UserID", "MovieID", "Rating", "Timestamp", "\t")),
    ('"user_id";"product_id";"score";"time"', ("user_id", "product_id", "score", "time", ";")),
    ("reviewerID,asin,overall,unixReviewTime", ("reviewerID", "asin", "overall", "unixReviewTime", ",")),
    ("visitorid|itemid|ts", ("visitorid", "itemid", None, "ts", "|")),
])
def test_usual_headers_are_recognised(header, expected):
    mapping = guess_mapping(header)
    assert (mapping.user, mapping.item, mapping.rating, mapping.timestamp, mapping.delimiter) == expected


def test_canonical_header_keeps_the_canonical_mapping_and_no_rating_means_implicit():
    assert guess_mapping("user_id,item_id,rating,timestamp") == ColumnMapping()
    assert guess_mapping("user_id,item_id,timestamp").rating is None
    # nothing recognisable: the canonical mapping, so the importer's error names the columns
    assert guess_mapping("a,b,c") == ColumnMapping()


def test_delimiter_and_header_line():
    assert guess_delimiter("a,b;c") == "," and guess_delimiter("a\tb\tc,d") == "\t"
    assert guess_delimiter("single") == ","


def test_read_header_line_skips_blank_lines_and_a_bom(tmp_path):
    path = tmp_path / "x.csv"
    path.write_bytes(b"\n\xef\xbb\xbfuserId,movieId\n1,2\n")
    assert read_header_line(str(path)) == "userId,movieId"


def test_ratings_csv_alone_imports_through_import_any(tmp_path):
    source = helpers.write_lines(tmp_path / "ratings.csv", [
        "userId,movieId,rating,timestamp", "1,10,4.0,100", "1,11,3.5,200", "2,10,5.0,300", "2,12,oops,400"])
    report = import_any(str(source), str(tmp_path / "out"), eval_fraction=0.34)
    assert report.format == "csv" and report.rows_read == 4 and report.total_written == 3
    assert report.columns == "user userId, item movieId, rating rating, timestamp timestamp, delimiter ','"
    assert "columns" in report.summary()
    rows = helpers.read_split(tmp_path / "out", features.TRAIN_SPLIT) + \
        helpers.read_split(tmp_path / "out", features.EVAL_SPLIT)
    assert [(r[features.USER_ID], r[features.ITEM_ID], r[features.RATING]) for r in rows] == [
        ("1", "10", 4.0), ("1", "11", 3.5), ("2", "10", 5.0)]


def test_implicit_tab_separated_file(tmp_path):
    source = helpers.write_lines(tmp_path / "clicks.tsv", ["visitorid\titemid\tts", "a\tx\t1", "b\ty\t2", "a\ty\t3"])
    report = import_any(str(source), str(tmp_path / "out"), data_format="csv", eval_fraction=0.34)
    assert report.total_written == 3 and "rating none (implicit feedback)" in report.columns
    rows = helpers.read_split(tmp_path / "out", features.TRAIN_SPLIT)
    assert {r[features.RATING] for r in rows} == {1.0}


def test_an_unrecognisable_header_is_still_a_one_line_error_naming_the_columns(tmp_path):
    source = helpers.write_lines(tmp_path / "x.csv", ["a,b,c", "1,2,3"])
    with pytest.raises(DataError, match=r"x.csv: missing column\(s\) 'user_id', 'item_id', 'rating', 'timestamp'"):
        import_any(str(source), str(tmp_path / "out"))


def test_event_log_with_millisecond_and_iso_timestamps(tmp_path):
    # the shape of public e-commerce event logs: ms timestamps, an event column, no rating
    source = helpers.write_lines(tmp_path / "events.csv", [
        "timestamp,visitorid,event,itemid,transactionid",
        "1433221332117,257597,view,355908,", "1433224214164,992329,view,248676,",
        "2015-06-02T07:00:00Z,257597,addtocart,248676,"])
    report = import_any(str(source), str(tmp_path / "out"), eval_fraction=0.34)
    assert report.dropped == {} and report.total_written == 3
    assert report.columns.startswith("user visitorid, item itemid, rating none (implicit feedback)")
    rows = helpers.read_split(tmp_path / "out", features.TRAIN_SPLIT) + \
        helpers.read_split(tmp_path / "out", features.EVAL_SPLIT)
    assert [r[features.TIMESTAMP] for r in rows] == [1433221332, 1433224214, 1433228400]
