"""`TunerConfig`: the optional hyperparameter search of the two-tower retrieval, checked at load.

The pipeline's `Tuner` node (`trainer.tuning.tuner_fn`) searches the `SearchSpace` choices with
KerasTuner's random search for `max_trials` trials; the Trainer then trains with the best values.
Instead of tuning, `hyperparameters_file` names the best hyperparameters of an earlier run (the
`best_hyperparameters.txt` a Tuner wrote) for the Trainer to reuse; `read_hyperparameters`
checks that file when the config is loaded.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Dict, Mapping, Tuple

from core.config_loader import ConfigError, check, from_dict
from trainer.config import TrainerConfig

HYPERPARAMETERS_FILE_NAME = "best_hyperparameters.txt"  # what TFX's Tuner writes


@dataclasses.dataclass(frozen=True)
class SearchSpace:
    """The `TrainerConfig` keys the Tuner searches, each with its value choices (empty: not searched).

    Every key is a hyperparameter of the retrieval fit, the one the tuning objective (the label
    slice's Recall@K, as early stopping measures it) judges.
    """

    learning_rate: Tuple[float, ...] = (0.001, 0.003, 0.01)
    temperature: Tuple[float, ...] = (0.02, 0.05, 0.1)
    embedding_dim: Tuple[int, ...] = (32, 64)
    optimizer: Tuple[str, ...] = ()
    embedding_l2: Tuple[float, ...] = ()
    tower_layers: Tuple[Tuple[int, ...], ...] = ()  # e.g. [[64], [128, 64], []] ([]: no dense layer)

    def __post_init__(self) -> None:
        problems = []
        for key, choices in self.searched().items():
            for choice in choices:
                try:
                    from_dict(TrainerConfig, {key: choice}, "trainer")
                except ConfigError as err:
                    problems.append((False, f"{key}: choice {choice!r} is invalid ({err})"))
            if len(set(choices)) != len(choices):
                problems.append((False, f"{key}: choices must not repeat, got {list(choices)}"))
        problems.append((bool(self.searched()), "must search at least one key (every list is empty)"))
        check("tuner.space", problems)

    def searched(self) -> Dict[str, Tuple[Any, ...]]:
        """The searched keys and their choices, in field order."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if getattr(self, f.name)}


TUNABLE_KEYS = tuple(f.name for f in dataclasses.fields(SearchSpace))
LAYERS_KEY = "tower_layers"  # a KerasTuner Choice holds scalars: layer widths travel as "128-64"
NO_LAYERS = "none"


def encode_choice(key: str, value: Any) -> Any:
    """`value` of `key` as a KerasTuner `Choice` value (layer widths as a string)."""
    if key != LAYERS_KEY:
        return value
    return "-".join(str(width) for width in value) or NO_LAYERS


def decode_values(values: Mapping[str, Any]) -> Dict[str, Any]:
    """Hyperparameter values as `TrainerConfig` values (layer-width strings back to lists).

    Raises:
      ConfigError: a `tower_layers` value is neither a list nor a string like '128-64' or 'none'.
    """
    decoded = dict(values)
    layers = decoded.get(LAYERS_KEY)
    if isinstance(layers, str):
        parts = [] if layers == NO_LAYERS else layers.split("-")
        if not all(part.isdigit() for part in parts):
            raise ConfigError(f"{LAYERS_KEY}: expected layer widths like '128-64' or '{NO_LAYERS}', got {layers!r}")
        decoded[LAYERS_KEY] = [int(part) for part in parts]
    return decoded


def read_hyperparameters(path: str) -> Dict[str, Any]:
    """The hyperparameter values saved in `path`, checked against `TrainerConfig`.

    Args:
      path: a `best_hyperparameters.txt` written by a Tuner (a KerasTuner `HyperParameters`
        config: `{"space": [...], "values": {...}}`), alone in its folder (the Trainer reads the
        only file of a HyperParameters artifact).

    Returns:
      The values by `TrainerConfig` key.

    Raises:
      ConfigError: the file is missing, not JSON, has no `values` object, not alone in its
        folder, or a value's key is not tunable or its value invalid.
    """
    where = f"tuner.hyperparameters_file {path}"
    if not os.path.isfile(path):
        raise ConfigError(f"{where}: no such file")
    try:
        with open(path, encoding="utf-8") as handle:
            saved = json.load(handle)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"{where}: not valid JSON ({err})") from err
    values = saved.get("values") if isinstance(saved, dict) else None
    if not isinstance(values, dict) or not values:
        raise ConfigError(f"{where}: expected a KerasTuner HyperParameters config with a non-empty 'values' object")
    others = sorted(set(os.listdir(os.path.dirname(os.path.abspath(path)))) - {os.path.basename(path)})
    unknown = sorted(set(values) - set(TUNABLE_KEYS))
    check(where, [
        (not others, f"must be alone in its folder (the Trainer reads the only file there), found also {others}"),
        (not unknown, f"unknown hyperparameters {unknown} (tunable: {', '.join(TUNABLE_KEYS)})"),
    ])
    try:
        from_dict(TrainerConfig, decode_values(values), "trainer")
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from err
    return values


@dataclasses.dataclass(frozen=True)
class TunerConfig:
    """The Tuner node's settings.

    Attributes:
      enabled: add the Tuner to the pipeline (`recsys run --tune`); the Trainer trains with the
        best hyperparameters it finds.
      max_trials: the trial budget (hyperparameter sets tried).
      max_epochs_per_trial: ceiling of each trial's early-stopped retrieval fit (with
        `trainer.max_epochs`, whichever is lower).
      seed: seeds the random search (>= 1: KerasTuner takes 0 as "draw a random seed").
      space: the keys searched and their choices.
      hyperparameters_file: saved best hyperparameters to train with, without tuning ('' none).
    """

    enabled: bool = False
    max_trials: int = 8
    max_epochs_per_trial: int = 10
    seed: int = 1
    space: SearchSpace = SearchSpace()
    hyperparameters_file: str = ""

    def __post_init__(self) -> None:
        check("tuner", [
            (self.max_trials >= 1, f"max_trials must be >= 1, got {self.max_trials}"),
            (self.max_epochs_per_trial >= 1, f"max_epochs_per_trial must be >= 1, got {self.max_epochs_per_trial}"),
            (self.seed >= 1, f"seed must be >= 1 (KerasTuner draws a random seed for 0), got {self.seed}"),
            (not (self.enabled and self.hyperparameters_file),
             "enabled and hyperparameters_file are both set: tune, or reuse saved hyperparameters, not both"),
        ])
        if self.hyperparameters_file:
            read_hyperparameters(self.hyperparameters_file)
