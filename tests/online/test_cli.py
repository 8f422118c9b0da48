"""The online commands through their own argparse parser (as `recsys` registers them)."""

from __future__ import annotations

import json
import os
import time

import pytest

from core import features as F
from online import cli
from online.event_log import EventLog, LogReader


def test_events_add_from_flags_is_exactly_once(tmp_path, capsys):
    args = ["events", "add", "--output", str(tmp_path), "--user", "u1", "--item", "i9", "--rating", "4.5", "--event-id", "c-1"]
    assert cli.main(args) == 0
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "c-1\tseq 0\tappended" in out and "c-1\tseq 0\tduplicate" in out
    (logged,) = LogReader(str(tmp_path / "events")).read()
    assert (logged.event.user_id, logged.event.item_id, logged.event.rating) == ("u1", "i9", 4.5)


def test_events_add_from_a_json_lines_file_refuses_a_bad_batch(tmp_path, capsys):
    good = {F.USER_ID: "u", F.ITEM_ID: "i", F.RATING: 3.0}
    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, F.RATING: 42}) + "\n")
    assert cli.main(["events", "add", "--log", str(tmp_path / "log"), "--file", str(path)]) == cli.EXIT_INVALID
    err = capsys.readouterr().err
    assert "event 1, field 'rating'" in err
    assert LogReader(str(tmp_path / "log")).read() == []
    path.write_text(json.dumps({"events": [good, {**good, "type": "view", F.RATING: None}]}).replace(', "rating": null', ""))
    assert cli.main(["events", "add", "--log", str(tmp_path / "log"), "--file", str(path)]) == 0
    assert [e.event.event_type for e in LogReader(str(tmp_path / "log")).read()] == ["rating", "view"]


def test_events_add_needs_an_event(tmp_path, capsys):
    assert cli.main(["events", "add", "--output", str(tmp_path), "--user", "u"]) == cli.EXIT_INVALID
    assert "--user and --item" in capsys.readouterr().err


def test_events_roll_writes_the_next_span(tmp_path, capsys):
    EventLog(str(tmp_path / "events")).append(
        [cli_event(n) for n in range(3)], time.time())
    assert cli.main(["events", "roll", "--output", str(tmp_path)]) == 0
    assert "nothing rolled" in capsys.readouterr().out
    assert cli.main(["events", "roll", "--output", str(tmp_path), "--force"]) == 0
    assert "into span 0" in capsys.readouterr().out
    assert os.path.isdir(tmp_path / "data" / "interactions" / "span-0" / F.TRAIN_SPLIT)


def cli_event(n):
    from online.events import Event

    return Event(f"e{n}", f"u{n}", "i1", "rating", 4.0, 1_000 + n)


def test_rollback_command(tmp_path, capsys):
    serving = tmp_path / "serving_model"
    for version in (10, 20):
        os.makedirs(serving / str(version))
        (serving / str(version) / "saved_model.pb").write_bytes(b"v%d" % version)
    assert cli.main(["rollback", "--to", "10", "--output", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    newest = max(int(v) for v in os.listdir(serving) if v.isdigit())
    assert f"republished as version {newest}" in out and newest > 20
    assert (serving / str(newest) / "saved_model.pb").read_bytes() == b"v10"
    assert cli.main(["rollback", "--to", "15", "--serving-model-dir", str(serving)]) == cli.EXIT_INVALID
    assert "not in" in capsys.readouterr().err


def test_learn_needs_both_base_folders(tmp_path, capsys):
    assert cli.main(["learn", "--output", str(tmp_path), "--trained-dir", str(tmp_path)]) == cli.EXIT_INVALID
    assert "both --trained-dir and --transform-dir" in capsys.readouterr().err


def test_learn_refuses_a_ranker_folder_alone_or_without_a_ranker(tmp_path, capsys):
    alone = ["learn", "--output", str(tmp_path), "--ranker-dir", str(tmp_path)]
    assert cli.main(alone) == cli.EXIT_INVALID
    assert "--ranker-dir goes with --trained-dir" in capsys.readouterr().err
    empty = ["learn", "--output", str(tmp_path), "--trained-dir", str(tmp_path), "--transform-dir", str(tmp_path),
             "--ranker-dir", str(tmp_path)]
    assert cli.main(empty) == cli.EXIT_INVALID
    assert "no ranker.json there" in capsys.readouterr().err


@pytest.mark.slow
def test_learn_exports_a_version_for_new_events(tmp_path, tiny_base, capsys):
    import shutil

    shutil.copytree(tiny_base.data_root, tmp_path / "data")
    config = tmp_path / "online.json"
    config.write_text(json.dumps({"learner": {"export_every_events": 2, "reserve_users": 5, "reserve_items": 5,
                                              "replay_batch": 16, "guard_max_drop": 0.5}}))
    assert cli.main(["events", "add", "--output", str(tmp_path), "--user", "ub1", "--item", "b3", "--rating", "5"]) == 0
    assert cli.main(["events", "add", "--output", str(tmp_path), "--user", "ub2", "--item", "b4", "--rating", "5"]) == 0
    code = cli.main(["learn", "--output", str(tmp_path), "--config", str(config), "--trained-dir", tiny_base.trained_dir,
                     "--transform-dir", tiny_base.transform_dir, "--max-exports", "1", "--max-seconds", "300"])
    assert code == 0
    assert "stopped (exports): 1 version(s) exported" in capsys.readouterr().out
    (version,) = [v for v in os.listdir(tmp_path / "serving_model") if v.isdigit()]
    assert os.path.exists(tmp_path / "serving_model" / version / "saved_model.pb")
    assert os.path.exists(tmp_path / "serving_model" / version / "assets.extra" / "tf_serving_warmup_requests")


def test_events_add_reports_bad_types_deep_nesting_and_conflicts_in_one_line(tmp_path, capsys):
    log = str(tmp_path / "log")
    path = tmp_path / "events.json"
    path.write_text(json.dumps({"events": [{F.USER_ID: "1", F.ITEM_ID: "1", "type": []}]}))
    assert cli.main(["events", "add", "--log", log, "--file", str(path)]) == cli.EXIT_INVALID
    assert "event 0, field 'type'" in capsys.readouterr().err
    path.write_text("[" * 100_000 + "]" * 100_000)
    assert cli.main(["events", "add", "--log", log, "--file", str(path)]) == cli.EXIT_INVALID
    err = capsys.readouterr().err
    assert "nested more than" in err and "Traceback" not in err
    stored = {"event_id": "c1", F.USER_ID: "u", F.ITEM_ID: "i", F.RATING: 3.0, F.TIMESTAMP: 1_600_000_000}
    path.write_text(json.dumps(stored))
    assert cli.main(["events", "add", "--log", log, "--file", str(path)]) == 0
    path.write_text(json.dumps({**stored, F.ITEM_ID: "other"}))
    assert cli.main(["events", "add", "--log", log, "--file", str(path)]) == cli.EXIT_CONFLICT
    assert "'c1' is stored as seq 0 with other content" in capsys.readouterr().err
    assert [e.event.item_id for e in LogReader(log).read()] == ["i"]
