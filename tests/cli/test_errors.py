"""`recsys` answers a user's mistake with one line and a distinct exit code, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from core.process import child_env
from tests.conftest import REPO_ROOT


def recsys(*args: str, timeout: int = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=REPO_ROOT, env=child_env(PYTHONPATH=str(REPO_ROOT)),
                          capture_output=True, text=True, timeout=timeout, check=False)


def _errors(result: subprocess.CompletedProcess) -> list:
    return [line for line in result.stderr.splitlines() if line.startswith("recsys ")]


@pytest.mark.parametrize("config, expected", [
    ({"trainer": {"epochs": "three"}}, "trainer.epochs: expected an integer, got 'three'"),
    ({"trainer": {"batch_size": -5}}, "trainer.batch_size must be >= 1, got -5"),
    ({"trainer": {"strategy": "magic"}}, "trainer.strategy must be one of"),
    ({"evaluation": {"cutoffs": []}}, "evaluation.cutoffs must be a non-empty list"),
    ({"colour": "blue"}, "colour: unknown key"),
    ([1, 2], "top level must be an object, got list"),
])
def test_a_bad_config_is_one_line_and_exit_2_before_any_work(tmp_path, config, expected):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    result = recsys("run", "--config", str(path), "--output", str(tmp_path / "out"))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    (line,) = _errors(result)
    assert expected in line and str(path) in line
    assert not (tmp_path / "out" / "data").exists()  # nothing ran


def test_invalid_json_and_a_missing_config_file(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    for args, expected in (((str(broken),), "not valid JSON"), ((str(tmp_path / "none.json"),), "does not exist")):
        result = recsys("run", "--config", *args, "--output", str(tmp_path / "out"))
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert expected in _errors(result)[0]


def test_bad_data_paths_and_files_are_one_line_and_exit_2(tmp_path):
    missing = recsys("run", "--data", str(tmp_path / "no-such.csv"), "--output", str(tmp_path / "out"))
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert "no-such.csv: no such file or folder" in _errors(missing)[0]
    garbage = tmp_path / "garbage.csv"
    garbage.write_bytes(b"\x00\x01\x02 not a csv at all\n\xff\xfe")
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("a,b,c\n1,2,3\n")
    for path in (garbage, wrong):
        result = recsys("run", "--data", str(path), "--output", str(tmp_path / "out"), "--verbose")
        assert result.returncode == 2, result.stderr[-2000:]
        assert "Traceback" not in result.stderr
        (line,) = _errors(result)
        assert path.name in line


def test_a_huge_wrong_header_is_cut_in_the_message(tmp_path):
    wide = tmp_path / "wide.csv"
    wide.write_text(",".join(f"column{i}" for i in range(100_000)) + "\n1\n")
    result = recsys("run", "--data", str(wide), "--output", str(tmp_path / "out"), "--verbose")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr) < 10_000


def test_the_compression_sweep_flag_reaches_the_config(tmp_path, monkeypatch):
    from cli import main
    from pipeline import local_run

    seen = []

    def stop(cfg, _data):
        seen.append(cfg)
        raise KeyboardInterrupt  # the pipeline itself does not run

    monkeypatch.setattr(local_run, "prepare_data", stop)
    for flags in ((), ("--compression-sweep",)):
        assert main.main(["run", "--output", str(tmp_path / "out"), "--verbose", *flags]) == main.EXIT_INTERRUPTED
    assert [cfg.compression.sweep for cfg in seen] == [False, True]


def test_a_compression_sweep_beside_explicit_variants_is_one_line_and_exit_2(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"compression": {"variants": ["int8"]}}))
    result = recsys("run", "--config", str(path), "--compression-sweep", "--output", str(tmp_path / "out"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    (line,) = _errors(result)
    assert "compression.sweep" in line and "explicit variants" in line
    assert not (tmp_path / "out" / "data").exists()


def test_learn_on_missing_or_incomplete_base_folders_is_one_line_and_exit_2(tmp_path):
    """Checked before TensorFlow loads anything: the folder or the part that is missing is named."""
    missing = recsys("learn", "--output", str(tmp_path), "--trained-dir", str(tmp_path / "nope"),
                     "--transform-dir", str(tmp_path / "nope2"))
    assert missing.returncode == 2, missing.stderr
    assert "Traceback" not in missing.stderr + missing.stdout
    (line,) = _errors(missing)
    assert f"networks folder {tmp_path / 'nope'} does not exist" in line
    trained = tmp_path / "trained"
    for name in ("query_tower", "candidate_tower", "ranking_model"):
        (trained / name).mkdir(parents=True)
    (tmp_path / "transform").mkdir()
    incomplete = recsys("learn", "--output", str(tmp_path), "--trained-dir", str(trained),
                        "--transform-dir", str(tmp_path / "transform"))
    assert incomplete.returncode == 2, incomplete.stderr
    assert "Traceback" not in incomplete.stderr + incomplete.stdout
    (line,) = _errors(incomplete)
    assert f"Transform graph folder {tmp_path / 'transform'} lacks transform_fn/saved_model.pb" in line
