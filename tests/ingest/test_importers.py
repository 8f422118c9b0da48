"""Format detection and dispatch by `import_any`."""

import pytest

from ingest import detect_format, import_any
from ingest.errors import DataError
from tests.ingest import helpers


def test_detect_format(tmp_path):
    assert detect_format(str(helpers.write_100k(tmp_path / "a"))) == "ml-100k"
    assert detect_format(str(helpers.write_ml_csv(tmp_path / "b"))) == "ml-csv"
    assert detect_format(str(helpers.write_lines(tmp_path / "c.csv", ["user_id"]))) == "csv"


def test_unknown_folder_and_missing_path_are_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty: unknown data format"):
        detect_format(str(tmp_path / "empty"))
    with pytest.raises(DataError, match=r"absent: no such file or folder"):
        detect_format(str(tmp_path / "absent"))


def test_import_any_dispatches_on_the_detected_format(tmp_path):
    report = import_any(str(helpers.write_100k(tmp_path / "a")), str(tmp_path / "out"), eval_fraction=0.25)
    assert (report.format, report.rows_read) == ("ml-100k", 17)
    report = import_any(str(helpers.write_ml_csv(tmp_path / "b")), str(tmp_path / "out2"))
    assert (report.format, report.rows_read) == ("ml-csv", 10)


def test_import_any_refuses_unknown_format_names(tmp_path):
    with pytest.raises(ValueError, match="unknown data format 'parquet'"):
        import_any(str(tmp_path), str(tmp_path / "out"), data_format="parquet")
