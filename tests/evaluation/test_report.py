"""Report files and TensorBoard scalars."""

import glob
import json

import pytest

from evaluation.report import log_to_tensorboard, read_metrics, write_report

from tests.evaluation.report_fixtures import BLESSING, RESULTS, SLICES


def test_write_report_files_and_json_round_trip(tmp_path):
    out = tmp_path / "eval"
    write_report(str(out), RESULTS, SLICES, BLESSING)
    loaded = read_metrics(str(out))
    assert loaded["results"]["two_tower"] == RESULTS["two_tower"]
    assert loaded["results"]["popularity"]["ndcg_at_10"] is None  # NaN written as null
    assert loaded["slices"] == SLICES
    assert loaded["blessing"] == BLESSING
    json.loads((out / "metrics.json").read_text())  # strict JSON
    markdown = (out / "report.md").read_text()
    assert "blessed" in markdown and BLESSING["reason"] in markdown
    assert "| recall_at_10 | 0.2000 | 0.1000 |" in markdown
    assert "## Slice: cold" in markdown
    png = (out / "report.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000


def test_tensorboard_scalars_read_back(tmp_path):
    tf = pytest.importorskip("tensorflow")
    log_to_tensorboard(str(tmp_path), {"ease": {"recall_at_10": 0.25, "mrr": 0.5}}, step=3)
    found = {}
    for path in glob.glob(str(tmp_path / "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                found[value.tag] = (event.step, float(tf.make_ndarray(value.tensor)))
    assert found == {"ease/recall_at_10": (3, 0.25), "ease/mrr": (3, 0.5)}
