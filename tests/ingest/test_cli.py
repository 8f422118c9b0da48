"""The ``data`` command, driven through `register` with argv lists."""

import argparse
import re
import subprocess
import sys

import pytest

from core import features
from ingest import cli
from tests.ingest import helpers


def _run(argv):
    parser = argparse.ArgumentParser(prog="recsys")
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_generate_writes_data_and_prints_the_report(tmp_path, capsys):
    out = tmp_path / "out"
    code = _run(["data", "generate", "--output", str(out), "--users", "30", "--items", "20",
                 "--interactions", "200", "--seed", "3", "--span", "2"])
    printed = capsys.readouterr().out
    assert code == 0
    assert "synthetic(seed=3, users=30, items=20, interactions=200, tastes=8)" in printed
    assert re.search(r"^rows written \(train\)\s+160$", printed, re.M)
    assert re.search(r"^rows written \(eval\)\s+40$", printed, re.M)
    assert len(helpers.read_split(out, features.EVAL_SPLIT, span=2)) == 40


def test_import_detects_the_format_and_prints_the_report(tmp_path, capsys):
    source = helpers.write_100k(tmp_path / "ml")
    assert _run(["data", "import", str(source), "--output", str(tmp_path / "out"), "--eval-fraction", "0.25"]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"^format\s+ml-100k$", printed, re.M)
    assert re.search(r"^dropped: exact_duplicate\s+1$", printed, re.M)


def test_import_of_a_generic_csv_with_mapped_columns(tmp_path, capsys):
    source = helpers.write_lines(tmp_path / "e.csv", ["u;i;t;g", "a;x;1;M", "b;x;2;F", "a;y;3;M"])
    code = _run(["data", "import", str(source), "--output", str(tmp_path / "out"), "--format", "csv",
                 "--user-col", "u", "--item-col", "i", "--timestamp-col", "t", "--implicit", "--gender-col", "g",
                 "--delimiter", ";", "--eval-fraction", "0.34"])
    assert code == 0
    rows = helpers.read_split(tmp_path / "out", features.EVAL_SPLIT)
    assert [(r[features.USER_ID], r[features.USER_GENDER], r[features.RATING]) for r in rows] == [("a", "M", 1.0)]


@pytest.mark.parametrize("argv, message", [
    (["data", "import", "{tmp}/absent", "--output", "{tmp}/out"], "absent: no such file or folder"),
    (["data", "import", "{tmp}/e.csv", "--output", "{tmp}/out"], "e.csv: missing column(s) 'user_id'"),
    (["data", "generate", "--output", "{tmp}/out", "--users", "2", "--items", "2", "--interactions", "5"],
     "exceeds num_users * num_items"),
])
def test_bad_input_exits_2_with_the_message_and_no_traceback(tmp_path, capsys, argv, message):
    helpers.write_lines(tmp_path / "e.csv", ["who,what", "1,2"])
    with pytest.raises(SystemExit) as caught:
        _run([part.format(tmp=tmp_path) for part in argv])
    err = capsys.readouterr().err
    assert caught.value.code == 2
    assert err.startswith("error: ") and message in err
    assert "Traceback" not in err


@pytest.mark.parametrize("argv", [
    ["data", "generate", "--output", "o", "--eval-fraction", "1.5"],
    ["data", "generate", "--output", "o", "--users", "0"],
    ["data", "import", "src"],
    ["data"],
])
def test_bad_arguments_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as caught:
        _run(argv)
    assert caught.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_registering_the_command_does_not_load_tensorflow():
    code = "import sys, argparse, ingest.cli as c; c.register(argparse.ArgumentParser().add_subparsers()); " \
           "print('tensorflow' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
