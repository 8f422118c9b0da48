"""The evaluation report and the blessing marker on a remote filesystem (TensorFlow's ram://).

Local file APIs cannot see ram://, so these fail if any file goes through open()/os.* instead of
tf.io.gfile, as artifact URIs on Kubeflow / Vertex (gs://) would.
"""

import json
import os

import pytest

from evaluation.report import CHART_FILE, METRICS_FILE, REPORT_FILE, read_metrics, write_report
from tests.evaluation.report_fixtures import BLESSING, RESULTS, SLICES
from tests.remote_files import read

tf = pytest.importorskip("tensorflow")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_write_report_to_a_remote_uri(remote_dir):
    out = f"{remote_dir}/eval"
    write_report(out, RESULTS, SLICES, BLESSING)
    assert not os.path.exists(out)  # nothing went to a local folder of that name
    metrics = json.loads(read(os.path.join(out, METRICS_FILE)))
    assert metrics["results"]["two_tower"] == RESULTS["two_tower"]
    assert metrics["results"]["popularity"]["ndcg_at_10"] is None
    assert metrics["slices"] == SLICES and metrics["blessing"] == BLESSING
    assert read_metrics(out) == metrics
    markdown = read(os.path.join(out, REPORT_FILE))
    assert BLESSING["reason"] in markdown and "## Slice: cold" in markdown
    png = read(os.path.join(out, CHART_FILE), "rb")
    assert png[:8] == PNG_SIGNATURE and len(png) > 1000


def test_report_files_are_the_same_locally_and_remotely(remote_dir, tmp_path):
    write_report(remote_dir, RESULTS, SLICES, BLESSING)
    write_report(str(tmp_path), RESULTS, SLICES, BLESSING)
    for name in (METRICS_FILE, REPORT_FILE):
        assert read(os.path.join(remote_dir, name)) == (tmp_path / name).read_text()
    assert sorted(tf.io.gfile.listdir(remote_dir)) == sorted(os.listdir(tmp_path))


@pytest.mark.parametrize("blessed, marker", [(True, "BLESSED"), (False, "NOT_BLESSED")])
def test_blessing_marker_and_previous_metrics_on_a_remote_uri(remote_dir, blessed, marker):
    from evaluation.model_eval import TWO_STAGE, previous_metrics, write_blessing_marker

    blessing = f"{remote_dir}/blessing"
    assert previous_metrics(blessing) is None  # no earlier blessing there
    results = {TWO_STAGE: {"recall_at_20": 0.25, "ndcg_at_10": 0.125}}
    write_report(blessing, results, {}, {"blessed": blessed, "reason": "why"})
    path = write_blessing_marker(blessing, blessed, "why")
    assert path == os.path.join(blessing, marker)
    assert read(path) == "why\n"
    assert sorted(tf.io.gfile.listdir(blessing)) == sorted([CHART_FILE, METRICS_FILE, REPORT_FILE, marker])
    assert previous_metrics(blessing) == results[TWO_STAGE]
