"""Builds typed, frozen config dataclasses from JSON values and checks them before any work.

Every config of the project is a frozen dataclass with typed fields. `from_dict` checks each
value against its field's type (int, float, bool, str, Optional, tuples, nested configs) and
reports every problem at once with its key path (`trainer.epochs: expected an integer, got
'three'`); range and enum rules live in each config's `__post_init__` through `check`, which
also reports every broken rule of that config at once. Errors are `ConfigError`s (a
`ValueError`), which the command lines print as one line per problem with exit code 2.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import typing
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple, Type, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration file or value is invalid; the message names the key."""


def check(where: str, rules: Iterable[Tuple[bool, str]]) -> None:
    """Raises one `ConfigError` listing every rule that does not hold.

    Args:
      where: the config's key path (e.g. 'trainer'), prefixed to each message.
      rules: (holds, message) pairs.
    """
    problems = [f"{where}.{message}" if where else message for ok, message in rules if not ok]
    if problems:
        raise ConfigError("; ".join(problems))


def one_of(value: Any, choices: Iterable[Any]) -> bool:
    """Whether `value` is among `choices` (for `check` rules on enums)."""
    return value in tuple(choices)


def _type_name(kind: Any) -> str:
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
    return names.get(kind, getattr(kind, "__name__", str(kind)))


def _check_value(kind: Any, value: Any, where: str, problems: List[str]) -> Any:
    """`value` converted to field type `kind` (lists to tuples), or a problem appended."""
    origin = typing.get_origin(kind)
    args = typing.get_args(kind)
    if origin is typing.Union:  # Optional[X]
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _check_value(inner[0], value, where, problems)
    if origin in (tuple, Tuple):
        if not isinstance(value, (list, tuple)):
            problems.append(f"{where}: expected a list, got {value!r}")
            return value
        if args and args[-1] is not Ellipsis:  # fixed length, a type per position
            if len(value) != len(args):
                problems.append(f"{where}: expected a list of {len(args)} values, got {value!r}")
                return value
            return tuple(_check_value(k, v, f"{where}[{i}]", problems) for i, (k, v) in enumerate(zip(args, value)))
        item_kind = args[0] if args else Any
        return tuple(_check_value(item_kind, v, f"{where}[{i}]", problems) for i, v in enumerate(value))
    if kind is Any or (isinstance(kind, type) and isinstance(value, kind) and not isinstance(value, bool)):
        return value
    if dataclasses.is_dataclass(kind):
        if not isinstance(value, Mapping):
            problems.append(f"{where}: expected an object, got {value!r}")
            return value
        return _build(kind, value, where, problems)
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok:
            value = float(value)
    elif kind is str:
        ok = isinstance(value, str)
    else:
        ok = True
    if not ok:
        problems.append(f"{where}: expected {_type_name(kind)}, got {value!r}")
    return value


def _build(cls: Type[T], values: Mapping[str, Any], where: str, problems: List[str]) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    kwargs: Dict[str, Any] = {}
    typed_well = True
    for key, value in values.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in fields:
            problems.append(f"{path}: unknown key (known: {', '.join(sorted(fields))})")
            continue
        before = len(problems)
        checked = _check_value(hints[key], value, path, problems)
        if len(problems) == before:
            kwargs[key] = checked
        else:
            typed_well = False
    try:  # the rules are checked on the well-typed values too, so that every problem is reported
        built = cls(**kwargs)
        return built if typed_well else None
    except ConfigError as err:
        problems.append(str(err) if str(err).startswith(where) or not where else f"{where}: {err}")
    except (TypeError, ValueError) as err:
        problems.append(f"{where or cls.__name__}: {err}")
    return None


def from_dict(cls: Type[T], values: Mapping[str, Any], where: str = "") -> T:
    """Builds config dataclass `cls` from plain JSON values (lists become tuples).

    Args:
      cls: a (frozen) config dataclass.
      values: its fields by name; nested configs as nested objects.
      where: the key path of `values`, for messages ('' at the top).

    Raises:
      ConfigError: every unknown key, wrongly typed value and broken rule, by key path.
    """
    if not isinstance(values, Mapping):
        raise ConfigError(f"{where or 'config'}: expected an object, got {type(values).__name__}")
    problems: List[str] = []
    built = _build(cls, values, where, problems)
    if problems:
        raise ConfigError("; ".join(problems))
    return built


def read_json_object(path: str, label: str = "config", error: Type[ValueError] = ConfigError) -> Dict[str, Any]:
    """The JSON object in file `path` (a `label` file, as errors name it).

    Raises:
      error: the file is missing, not JSON, or not a JSON object.
    """
    file = pathlib.Path(path)
    if not file.is_file():
        raise error(f"{label} file {path} does not exist")
    try:
        values = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as err:
        raise error(f"{label} file {path}: not valid JSON ({err})") from err
    if not isinstance(values, dict):
        raise error(f"{label} file {path}: top level must be an object, got {type(values).__name__}")
    return values


def build_config(cls: Type[T], values: Mapping[str, Any], where: str, error: Type[ValueError]) -> T:
    """`from_dict`, its errors raised as `error` (a package's own config error), prefixed by `where`.

    Raises:
      error: a key is unknown, a value has the wrong type, or a rule does not hold.
    """
    try:
        return from_dict(cls, values)
    except ConfigError as err:
        raise error(f"{where}: {err}") from err


def load_json_config(path: Optional[str], cls: Type[T], label: str, error: Type[ValueError],
                     build: Optional[Callable[[Dict[str, Any], str], T]] = None) -> T:
    """Config `cls` from the JSON file `path` (a `label` file, as errors name it); defaults when None.

    Args:
      build: makes `cls` from the file's object and `path` (`build_config` when None).

    Raises:
      error: the file is missing, not JSON, not a JSON object, or invalid.
    """
    if path is None:
        return cls()
    values = read_json_object(path, label, error)
    return build_config(cls, values, path, error) if build is None else build(values, path)
