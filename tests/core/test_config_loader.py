"""Config loading: every wrong type, unknown key and broken rule is reported with its key path."""

from __future__ import annotations

import dataclasses
import json
from typing import Optional, Tuple

import pytest

from core.config_loader import ConfigError, check, from_dict, read_json_object


@dataclasses.dataclass(frozen=True)
class Inner:
    size: int = 1
    rate: float = 0.5
    pairs: Tuple[Tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        check("inner", [(self.size >= 1, f"size must be >= 1, got {self.size}")])


@dataclasses.dataclass(frozen=True)
class Outer:
    name: str = "x"
    flag: bool = False
    layers: Tuple[int, ...] = (4,)
    limit: Optional[int] = None
    inner: Inner = Inner()


def test_values_are_converted_and_nested_configs_built():
    cfg = from_dict(Outer, {"layers": [8, 2], "limit": None, "inner": {"rate": 1, "pairs": [["a", 0.5]]}})
    assert cfg == Outer(layers=(8, 2), inner=Inner(rate=1.0, pairs=(("a", 0.5),)))
    assert isinstance(cfg.inner.rate, float)


@pytest.mark.parametrize("values, message", [
    ({"flag": "yes"}, "flag: expected true or false, got 'yes'"),
    ({"name": 3}, "name: expected a string, got 3"),
    ({"layers": 4}, "layers: expected a list, got 4"),
    ({"layers": [4, "wide"]}, r"layers\[1\]: expected an integer, got 'wide'"),
    ({"limit": 2.5}, "limit: expected an integer, got 2.5"),
    ({"inner": {"size": True}}, "inner.size: expected an integer, got True"),
    ({"inner": []}, r"inner: expected an object, got \[\]"),
    ({"inner": {"pairs": [["a"]]}}, r"inner.pairs\[0\]: expected a list of 2 values"),
    ({"colour": 1}, "colour: unknown key"),
])
def test_each_problem_names_its_key_path(values, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(Outer, values)


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigError) as raised:
        from_dict(Outer, {"flag": 1, "colour": 2, "inner": {"size": 0, "rate": "fast"}})
    message = str(raised.value)
    for part in ("flag: expected true or false", "colour: unknown key", "inner.rate: expected a number",
                 "inner.size must be >= 1, got 0"):
        assert part in message


@pytest.mark.parametrize("text, message", [
    ("[1, 2]", "top level must be an object, got list"),
    ("{oops", "not valid JSON"),
    ("[" * 100_000, "not valid JSON"),
])
def test_files_that_are_not_a_json_object_are_refused(tmp_path, text, message):
    path = tmp_path / "c.json"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        read_json_object(str(path))


def test_a_valid_file_is_read(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"name": "y"}))
    assert read_json_object(str(path)) == {"name": "y"}
