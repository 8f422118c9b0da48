"""`recsys run --tune`: the run summary shows the newest trial table and the saved best
hyperparameters; a bad tuner section or --tune with saved values is one line, exit 2."""

from __future__ import annotations

import json

from tests.cli.test_errors import _errors, recsys


def _tuner_output(root, execution, table):
    report = root / "Tuner" / "tuner_results" / str(execution) / "trials"
    report.mkdir(parents=True)
    (report / "trials.md").write_text(table)
    best = root / "Tuner" / "best_hyperparameters" / str(execution)
    best.mkdir(parents=True)
    (best / "best_hyperparameters.txt").write_text("{}")
    return report, best / "best_hyperparameters.txt"


def test_the_summary_shows_the_newest_tuners_trials_and_how_to_reuse_them(tmp_path):
    from cli.summary import tuning_lines

    assert tuning_lines(str(tmp_path)) == []
    _tuner_output(tmp_path, 9, "| trial | old |\n")
    report, best = _tuner_output(tmp_path, 12, "| trial | val_recall_at_20 |\n| 0 | 0.5 |\n")
    lines = tuning_lines(str(tmp_path))
    assert lines[0] == f"Tuner trials ({report}):" and lines[1] == "| trial | val_recall_at_20 |\n| 0 | 0.5 |"
    assert f"Best hyperparameters: {best}" in lines
    assert any(f'"hyperparameters_file": "{best}"' in line for line in lines)


def test_tune_with_saved_hyperparameters_and_a_bad_space_are_one_line_exit_2(tmp_path):
    saved = tmp_path / "best" / "best_hyperparameters.txt"
    saved.parent.mkdir()
    saved.write_text(json.dumps({"space": [], "values": {"learning_rate": 0.01}}))
    both = tmp_path / "both.json"
    both.write_text(json.dumps({"tuner": {"hyperparameters_file": str(saved)}}))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"tuner": {"space": {"dropout": [0.1]}}}))
    for path, expected in ((both, "tuner.enabled and hyperparameters_file are both set"),
                           (bad, "tuner.space.dropout: unknown key")):
        result = recsys("run", "--tune", "--config", str(path), "--output", str(tmp_path / "out"))
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        (line,) = _errors(result)
        assert expected in line
    assert not (tmp_path / "out" / "data").exists()
