"""The compression report and the variants' publication on a remote filesystem (ram://).

TensorFlow's in-memory filesystem is invisible to local file APIs, like the gs:// artifact
URIs of Kubeflow / Vertex: every file must go through tf.io.gfile.
"""

from __future__ import annotations

import json
import math
import os

import pytest

from compression import report
from compression.select import Candidate, select_variant
from tests.compression.report_fixtures import variant_record
from tests.remote_files import read

tf = pytest.importorskip("tensorflow")


def _records_and_selection():
    records = [
        variant_record("full", report.SAVED_MODEL, 4000, 0.200, 0.100),
        variant_record("int8", report.SAVED_MODEL, 1000, 0.199, 0.101),
        variant_record("tflite_full_integer", report.TFLITE, 500, 0.190, math.nan),
    ]
    selection = select_variant([Candidate(r.name, r.gzip_bytes, r.metrics, r.kind == report.SAVED_MODEL)
                                for r in records], 0.01, ("recall_at_20", "ndcg_at_10"))
    return records, selection


def test_compression_report_to_a_remote_uri(remote_dir):
    records, selection = _records_and_selection()
    out = f"{remote_dir}/report"
    text = report.write_report(out, records, selection, budget=0.01)
    assert not os.path.exists(out)
    assert read(os.path.join(out, report.REPORT_MD)) == text
    png = read(os.path.join(out, report.REPORT_PNG), "rb")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000
    saved = json.loads(read(os.path.join(out, report.REPORT_JSON)))
    assert saved == report.read_report(out)
    assert saved["selection"]["chosen"] == "int8"
    assert [v["name"] for v in saved["variants"]] == ["full", "int8", "tflite_full_integer"]
    assert saved["variants"][2]["metrics"]["retrieval_ndcg_at_10"] is None
    assert tf.io.gfile.listdir(os.path.join(out, "tensorboard"))


def _local_tree(root):
    """variants/<name>/... as an export leaves it: nested folders, binary files, an empty folder."""
    files = {
        "full/saved_model.pb": b"\x00graph\xff",
        "full/variables/variables.index": b"index",
        "full/variables/variables.data-00000-of-00001": bytes(range(256)) * 4,
        "tflite_dynamic_range/query_tower.tflite": b"TFL3" + b"\x01" * 100,
    }
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    (root / "full" / "assets").mkdir()
    return files


def test_publish_dir_copies_a_local_tree_to_a_remote_uri(tmp_path, remote_dir):
    from components.compress_model import VARIANTS_DIR, publish_dir

    local = tmp_path / VARIANTS_DIR
    files = _local_tree(local)
    target = os.path.join(remote_dir, "report", VARIANTS_DIR)
    tf.io.gfile.makedirs(target)
    report.evaluation_report.write_text(os.path.join(target, "stale.txt"), "from an earlier run")
    publish_dir(str(local), target)
    copied = {}
    for root, _, names in tf.io.gfile.walk(target):
        for name in names:
            path = os.path.join(root, name)
            copied[os.path.relpath(path, target)] = read(path, "rb")
    assert copied == files  # same layout and bytes; the stale file is gone
    assert tf.io.gfile.isdir(os.path.join(target, "full", "assets"))
    assert (local / "full" / "saved_model.pb").exists()  # the source is left as it was


def test_marker_and_relocate(tmp_path, remote_dir):
    from components.compress_model import relocate
    from compression.serving_variants import read_marker, write_marker

    model_dir = os.path.join(remote_dir, "model", "Format-Serving")
    write_marker(model_dir, "int8", True, "smallest within budget")
    assert read_marker(model_dir) == {"variant": "int8", "int8_candidate_embeddings": True,
                                      "reason": "smallest within budget"}
    assert read_marker(os.path.join(remote_dir, "elsewhere")) is None
    assert relocate(str(tmp_path / "variants" / "int8"), str(tmp_path / "variants"),
                    "gs://bucket/report/variants") == "gs://bucket/report/variants/int8"
    assert relocate(str(tmp_path / "variants"), str(tmp_path / "variants"),
                    "gs://bucket/report/variants/") == "gs://bucket/report/variants"
