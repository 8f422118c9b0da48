"""`DataReport`: JSON round trip and the CLI table."""

import re

from core import features
from ingest.report import DataReport


def _report():
    return DataReport(
        source="ml", format="ml-csv", span=2, rows_read=1234,
        rows_written={features.TRAIN_SPLIT: 1000, features.EVAL_SPLIT: 200},
        users=7, items=9, catalog_rows=11, catalog_rows_added=2, cutoff_timestamp=99,
        dropped={"malformed_row": 30, "exact_duplicate": 4}, fixed={"age_out_of_range": 5},
        samples=["u.data line 3: x"],
    )


def test_json_round_trip(tmp_path):
    report = _report()
    report.to_json(str(tmp_path / "r.json"))
    assert DataReport.from_json(str(tmp_path / "r.json")) == report
    assert report.total_written == 1200


def test_summary_lists_every_count():
    lines = _report().summary().splitlines()
    table = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in lines)
    assert table["rows read"] == "1,234"
    assert table["rows written (train)"] == "1,000"
    assert table["rows written (eval)"] == "200"
    assert table["dropped: malformed_row"] == "30"
    assert table["dropped: exact_duplicate"] == "4"
    assert table["fixed: age_out_of_range"] == "5"
    assert table["catalog rows added"] == "2"
    assert table["span"] == "2"
    assert len({len(line) - len(line.lstrip()) for line in lines}) == 1  # one aligned table
