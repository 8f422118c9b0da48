"""The TFX Tuner's module (`tuner_fn`): a KerasTuner random search over the retrieval fit.

Each trial trains the two-tower retrieval model with the project's own training code on the fit
part of the train split, with the Trainer's early stopping, and scores it with the same metric
that early stopping monitors: the full-catalog Recall@`validation_cutoff` of the label slice
(`trainer.label_slice`). The eval split is never looked at. Trials are bounded by
`TunerConfig.max_epochs_per_trial`. The searched keys and their choices come from
`TunerConfig.space`; `apply_hyperparameters` sets a trial's (or the best) values on a
`TrainerConfig`, which is also how `run_fn` applies the Tuner's `best_hyperparameters`.
Each trial's epoch curve goes to TensorBoard under the report folder, and once the search ends
`trainer.tuning_report` writes the trial table, its PNG and the objective per trial there.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from typing import Any, Dict, Mapping, Tuple

import keras_tuner
import tensorflow as tf
import tensorflow_transform as tft
from tfx import v1 as tfx

from core.config_loader import from_dict
from trainer import distribution, holdout_inputs, inputs, train, tuning_report
from trainer.config import TrainerConfig
from trainer.early_stopping import BestEpoch, RecallAtK
from trainer.holdout import HoldoutInputs
from trainer.towers import Vocabularies
from trainer.tuner_config import TUNABLE_KEYS, SearchSpace, TunerConfig, decode_values, encode_choice

TRAINER_KEY = "trainer"  # custom_config keys of the Tuner
TUNER_KEY = "tuner"
REPORT_DIR_KEY = "report_dir"  # set by components.tuner: the folder of the trial report
PROJECT_NAME = "retrieval_search"

logger = logging.getLogger(__name__)


def objective_name(cfg: TrainerConfig) -> str:
    """The tuning objective: the early-stopping metric of the retrieval fit."""
    return f"val_recall_at_{cfg.validation_cutoff}"


def recall_stopper(cfg: TrainerConfig, data: HoldoutInputs) -> BestEpoch:
    """Early stopping of the retrieval fit on the label slice's Recall@K (the Trainer's and the
    Tuner's), restoring the best epoch's weights."""
    return BestEpoch(objective_name(cfg), "max", cfg.early_stopping_patience,
                     compute=RecallAtK(data.validation, cfg.validation_cutoff))


def hyperparameters(space: SearchSpace) -> keras_tuner.HyperParameters:
    """The KerasTuner search space of `space`: one `Choice` per searched key (layer widths as
    strings, `tuner_config.encode_choice`)."""
    hp = keras_tuner.HyperParameters()
    for key, choices in space.searched().items():
        hp.Choice(key, [encode_choice(key, choice) for choice in choices])
    return hp


def apply_hyperparameters(cfg: TrainerConfig, values: Mapping[str, Any]) -> Tuple[TrainerConfig, Dict[str, Any]]:
    """`cfg` with the tunable keys of `values` set.

    Args:
      cfg: the configured Trainer settings.
      values: hyperparameter values by `TrainerConfig` key (a KerasTuner `HyperParameters`'
        `values`); keys outside `tuner_config.TUNABLE_KEYS` are not applied.

    Returns:
      The new config and the values applied.

    Raises:
      ConfigError: an applied value is invalid for `TrainerConfig`.
    """
    applied = {key: value for key, value in values.items() if key in TUNABLE_KEYS}
    ignored = sorted(set(values) - set(applied))
    if ignored:
        logger.warning("hyperparameters %s are not tunable and were not applied", ignored)
    merged = {**dataclasses.asdict(cfg), **decode_values(applied)}
    return from_dict(TrainerConfig, merged, "trainer"), applied


class RetrievalTuner(keras_tuner.engine.base_tuner.BaseTuner):
    """Runs each trial as the Trainer's early-stopped retrieval fit on the fit part.

    Args:
      oracle: the KerasTuner oracle (its objective: `objective_name(cfg)`, maximised).
      data: the train split with the label slice held out.
      vocab: embedding input sizes.
      cfg: the Trainer's settings the trials start from.
      max_epochs: ceiling of each trial's fit.
      report_dir: where each trial's TensorBoard logs and the final report go.
      directory: KerasTuner's working folder (oracle state).
    """

    def __init__(self, oracle: keras_tuner.Oracle, data: HoldoutInputs, vocab: Vocabularies, cfg: TrainerConfig,
                 max_epochs: int, report_dir: str, directory: str) -> None:
        super().__init__(oracle, directory=directory, project_name=PROJECT_NAME, overwrite=True)
        self.data, self.vocab, self.cfg = data, vocab, cfg
        self.max_epochs, self.report_dir = max_epochs, report_dir

    def run_trial(self, trial, *args, **kwargs) -> Dict[str, float]:
        """Trains with the trial's values; returns the best epoch's Recall@K and the epoch."""
        cfg, applied = apply_hyperparameters(self.cfg, trial.hyperparameters.values)
        tf.keras.utils.set_random_seed(cfg.seed)
        strategy = tf.distribute.get_strategy()
        policy = distribution.precision_policy(cfg.mixed_precision, strategy)
        with strategy.scope(), distribution.precision_scope(policy):
            if cfg.multitask:
                model = train.build_multitask(self.vocab, cfg, self.data.fit_probabilities)
            else:
                model = train.build_retrieval(self.vocab, cfg, self.data.fit_probabilities)
        stopper = recall_stopper(cfg, self.data)
        board = tf.keras.callbacks.TensorBoard(tuning_report.trial_log_dir(self.report_dir, trial.trial_id),
                                               update_freq="epoch")
        model.fit(self.data.fit, epochs=self.max_epochs, callbacks=[stopper, board], verbose=2)
        print(f"trial {trial.trial_id}: {json.dumps(applied, sort_keys=True)}: {objective_name(cfg)} = "
              f"{stopper.best:.4f} at epoch {stopper.best_epoch}", flush=True)
        return {objective_name(cfg): stopper.best, "best_epoch": float(stopper.best_epoch)}

    def on_search_end(self) -> None:
        trials = self.oracle.trials.values()
        tuning_report.write_report(self.report_dir, tuning_report.trial_rows(trials, self.oracle.objective.name),
                                   self.oracle.objective.name)


def build_tuner(data: HoldoutInputs, vocab: Vocabularies, cfg: TrainerConfig, tuner_cfg: TunerConfig,
                report_dir: str, directory: str) -> RetrievalTuner:
    """The random-search tuner of `tuner_cfg` over `cfg` (each trial's fit bounded by
    `tuner_cfg.max_epochs_per_trial`; its patience is `cfg.early_stopping_patience`, 0: none)."""
    max_epochs = min(cfg.max_epochs, tuner_cfg.max_epochs_per_trial)
    return RetrievalTuner(build_oracle(cfg, tuner_cfg), data, vocab, cfg, max_epochs, report_dir, directory)


def build_oracle(cfg: TrainerConfig, tuner_cfg: TunerConfig) -> keras_tuner.Oracle:
    """KerasTuner's random search over `tuner_cfg.space`, seeded, maximising `objective_name(cfg)`."""
    return keras_tuner.oracles.RandomSearchOracle(
        objective=keras_tuner.Objective(objective_name(cfg), "max"),
        max_trials=tuner_cfg.max_trials,
        seed=tuner_cfg.seed,  # >= 1: KerasTuner draws a random seed for 0
        hyperparameters=hyperparameters(tuner_cfg.space),
        allow_new_entries=False,
        tune_new_entries=False,
        max_consecutive_failed_trials=1,  # a failing trial stops the search with its error
    )


def tuner_fn(fn_args: tfx.components.FnArgs) -> tfx.components.TunerFnResult:
    """TFX Tuner entry point: the search over the transformed train split.

    `fn_args.custom_config` holds the Trainer's settings (`trainer`), the Tuner's (`tuner`) and
    the report folder (`report_dir`, set by `components.tuner`; else under the working dir).
    """
    custom = fn_args.custom_config or {}
    cfg = from_dict(TrainerConfig, custom.get(TRAINER_KEY, {}), "trainer")
    tuner_cfg = from_dict(TunerConfig, custom.get(TUNER_KEY, {}), "tuner")
    report_dir = custom.get(REPORT_DIR_KEY) or os.path.join(fn_args.working_dir, "trials")
    tft_output = tft.TFTransformOutput(fn_args.transform_graph_path)
    vocab = inputs.vocabularies(tft_output)
    data = holdout_inputs.training_inputs(fn_args.train_files, fn_args.eval_files, tft_output, vocab, cfg)
    tuner = build_tuner(data, vocab, cfg, tuner_cfg, report_dir, fn_args.working_dir)
    # verbose 0: KerasTuner's per-trial display stays off the terminal (run_trial prints one line)
    return tfx.components.TunerFnResult(tuner=tuner, fit_kwargs={"verbose": 0})
