"""The compression report on fixed records: table figures by hand, chart, JSON, TensorBoard."""

from __future__ import annotations

import math
import os

from compression import report
from compression.select import Candidate, select_variant

from tests.compression.report_fixtures import variant_record


def test_report_files_and_figures(tmp_path):
    records = [
        variant_record("full", report.SAVED_MODEL, 4000, 0.200, 0.100),
        variant_record("int8", report.SAVED_MODEL, 1000, 0.199, 0.101),
        variant_record("tflite_full_integer", report.TFLITE, 500, 0.190, math.nan),
    ]
    selection = select_variant([Candidate(r.name, r.gzip_bytes, r.metrics, r.kind == report.SAVED_MODEL)
                                for r in records], 0.01, ("recall_at_20", "ndcg_at_10"))
    text = report.write_report(str(tmp_path), records, selection, budget=0.01)
    assert selection.chosen == "int8"
    int8_row = next(line for line in text.splitlines() if line.startswith("| int8 |"))
    # 4000 / 1000 = 4.0x; (0.199 - 0.2) / 0.2 = -0.5%; (0.101 - 0.1) / 0.1 = +1.0%.
    assert "| 1,000 | 4.0x | 500 | 4.0x |" in int8_row
    assert "| 0.1990 | -0.5% | 0.1010 | +1.0% |" in int8_row and "**selected**" in int8_row
    tflite_row = next(line for line in text.splitlines() if line.startswith("| tflite_full_integer |"))
    assert "| 0.1900 | -5.0% | n/a | n/a |" in tflite_row and "not servable" in tflite_row
    assert "| query_tower | 30 | 75.0% |" in text  # 30 of the full model's 40 bytes
    with open(tmp_path / report.REPORT_PNG, "rb") as handle:
        assert handle.read(4) == b"\x89PNG"
    saved = report.read_report(str(tmp_path))
    assert saved["selection"]["chosen"] == "int8"
    assert saved["variants"][2]["metrics"]["retrieval_ndcg_at_10"] is None  # NaN -> null
    assert saved["variants"][0]["latency_ms"] == {"1": 1.5, "64": 9.25}
    assert os.listdir(tmp_path / "tensorboard")


def test_the_report_says_what_was_built_and_what_a_sweep_would_add():
    records = [variant_record("full", report.SAVED_MODEL, 4000, 0.2, 0.1),
               variant_record("int8", report.SAVED_MODEL, 1000, 0.2, 0.1)]
    selection = select_variant([Candidate(r.name, r.gzip_bytes, r.metrics) for r in records], 0.01,
                               ("recall_at_20",))
    partial = report.markdown(records, selection, not_swept=("pruned", "tflite_full_integer"))
    assert ("**Built:** `full`, `int8` (the selection's likely winners). **Not swept:** `pruned`, "
            "`tflite_full_integer`; `compression.sweep: true` or `recsys run --compression-sweep`") in partial
    swept = report.markdown(records, selection)
    assert "**Built:** `full`, `int8` (every variant)." in swept and "Not swept" not in swept
