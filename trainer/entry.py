"""TFX Trainer entry point (`run_fn`): read hyperparameters and data, build, fit, save.

Warm start. When the pipeline hands the Trainer a base model (the latest blessed serving model,
`PipelineConfig.warm_start`), the networks it was built from lie in `trained/` beside its
`Format-Serving` (`components.build_serving_model` copies them there with their vocabularies).
The new networks then start from those weights, every embedding row remapped through the old
and new vocabularies (`trainer.warm_start`: ids in both keep their rows, new ids keep their fresh
initialisation, the OOV rows carry over), and train for `warm_start_epochs` /
`warm_start_ranking_epochs` instead of the full schedule.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from typing import Callable, Dict, Optional, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
from tfx import v1 as tfx

from core import features as F
from core.config_loader import from_dict
from trainer import (bias_model, distribution, export, fault_tolerance, holdout_inputs, inputs, multi_worker,
                     ps_training, rating_residual, train, warm_start)
from trainer.bias_model import Biases
from trainer.config import TrainerConfig
from trainer.early_stopping import BestEpoch, RecallAtK
from trainer.tuning import apply_hyperparameters, recall_stopper

HPARAMS_KEY = "trainer"
TRAINED_SUBDIR = "trained"  # beside a serving model's Format-Serving: the networks it was built from


def warm_start_source(base_model: Optional[str]) -> Optional[str]:
    """The networks directory of the base serving model `base_model`, or None.

    Args:
      base_model: `fn_args.base_model` (`<artifact>/Format-Serving`), or None.

    Returns:
      `<artifact>/trained` when it holds networks and vocabularies; None without a base model.

    Raises:
      FileNotFoundError: a base model was given but its networks or vocabularies are missing.
    """
    if not base_model:
        return None
    source = os.path.join(os.path.dirname(base_model.rstrip("/")), TRAINED_SUBDIR)
    for needed in export.NETWORKS + (warm_start.VOCABULARIES_FILE,):
        if not tf.io.gfile.exists(os.path.join(source, needed)):
            raise FileNotFoundError(f"base model {base_model}: {os.path.join(source, needed)} is missing, "
                                    "so the run cannot warm-start from it")
    return source


WARM_START_FILE = "warm_start.json"  # beside the networks: what a warm start carried over


def warm_starter(source: str, tft_output, record: Optional[dict] = None
                 ) -> Callable[[Dict[str, tf.keras.Model]], None]:
    """The `train.train(initialize=...)` hook that copies the networks of `source` in.

    Args:
      source: networks directory of the base model (`warm_start_source`).
      tft_output: the Transform output of this run (its vocabularies).
      record: when given, filled with the warm start's report (source, layers copied,
        embeddings remapped with their kept and new rows, layers left fresh).
    """
    previous = export.load_trained(source).as_dict()
    previous_vocabularies = warm_start.load_vocabularies(source)
    current_vocabularies = warm_start.vocabularies(tft_output)

    def initialize(networks: Dict[str, tf.keras.Model]) -> None:
        report = warm_start.warm_start_networks(previous, previous_vocabularies, networks, current_vocabularies)
        kept = sum(counts["kept"] for counts in report.remapped.values())
        new = sum(counts["new"] for counts in report.remapped.values())
        print(f"warm start from {source}: {len(report.copied)} layers copied, {len(report.remapped)} embeddings "
              f"remapped (rows kept {kept}, new {new}), {len(report.fresh)} left fresh {report.fresh}", flush=True)
        if record is not None:
            record.update(source=source, copied=report.copied, remapped=report.remapped, fresh=report.fresh)

    return initialize


FIT_PART_SUBDIR = "fit_part"  # the networks fitted without the label slice (the ranker's sources)
SUMMARY_FILE = "training_summary.json"


def _rating_rmse(network: tf.keras.Model, data: tf.data.Dataset, biases: Optional[Biases]) -> Dict[str, float]:
    """RMSE of `network` and of the bias model `biases` over the batches of `data`."""
    predictions, labels, users, items = [], [], [], []
    for batch in data:
        predictions.append(network({n: batch[n] for n in network.input_names}, training=False).numpy())
        labels.append(batch[F.RATING_XF].numpy())
        users.append(batch[F.USER_ID_XF].numpy())
        items.append(batch[F.ITEM_ID_XF].numpy())
    if not labels:
        return {}
    labels_ = np.concatenate(labels)
    out = {"model": bias_model.rmse(np.concatenate(predictions), labels_), "examples": int(len(labels_))}
    if biases is not None:
        out["bias_model"] = bias_model.rmse(biases.predict(np.concatenate(users), np.concatenate(items)), labels_)
    return out


def _biases(cfg: TrainerConfig, ratings, vocab) -> Optional[Biases]:
    users, items, values = ratings
    return bias_model.fit_biases(users, items, values, vocab.users, vocab.items,
                                 cfg.rating_bias_l2_user, cfg.rating_bias_l2_item)


def _stage_callbacks(run_dir: str, part: str, stoppers: Dict[str, BestEpoch], backup_steps: int):
    """The `train.train(callbacks=...)` factory: the fit's backup first (it restores the state of
    an interrupted run at train begin, `trainer.fault_tolerance`), then early stopping (its metric
    reaches the logs before TensorBoard writes them), then TensorBoard under `run_dir/part/stage`."""
    def make(stage: str):
        backup = fault_tolerance.backup_callbacks(run_dir, f"{part}/{stage}", backup_steps)
        board = tf.keras.callbacks.TensorBoard(os.path.join(run_dir, part, stage), update_freq="epoch")
        return [*backup, stoppers[stage], board] if stage in stoppers else [*backup, board]
    return make


def _stoppers(cfg: TrainerConfig, data: holdout_inputs.HoldoutInputs) -> Dict[str, BestEpoch]:
    """The early-stopping callbacks of the fit-part fit, by stage (none when it is off)."""
    if not cfg.early_stopping_patience:
        return {}
    recall = recall_stopper(cfg, data)
    if cfg.multitask:
        return {"multitask": recall}
    rmse = BestEpoch("val_rmse", "min", cfg.early_stopping_patience,
                     evaluate_before=lambda model: model.evaluate(data.label, verbose=0, return_dict=True)["rmse"])
    return {"retrieval": recall, "ranking": rmse}


def tuned_config(cfg: TrainerConfig, hyperparameters: Optional[dict]) -> Tuple[TrainerConfig, Dict[str, object]]:
    """`cfg` with the Trainer's `hyperparameters` input applied (the Tuner's best, or imported).

    Args:
      cfg: the configured Trainer settings.
      hyperparameters: `fn_args.hyperparameters`: a KerasTuner `HyperParameters` config
        (`{"space": [...], "values": {...}}`), or None when the Trainer has no such input.

    Returns:
      The config to train with and the values applied (empty without hyperparameters).
    """
    if not hyperparameters:
        return cfg, {}
    tuned, applied = apply_hyperparameters(cfg, hyperparameters.get("values", {}))
    print(f"applied hyperparameters: {json.dumps(applied, sort_keys=True)}", flush=True)
    return tuned, applied


def run_fn(fn_args: tfx.components.FnArgs) -> None:
    """Trains the retrieval and ranking networks and writes them to the serving_model_dir.

    1. The train split is cut into the fit part and the label slice (`trainer.label_slice`, the
       way the run is split: `TrainerConfig.split`).
    2. The networks are fitted on the fit part; with `early_stopping_patience` > 0 the retrieval
       fit stops on the label slice's Recall@K and the ranking fit on its rating RMSE, the best
       epochs' weights restored (`trainer.early_stopping`). They are saved to
       `serving_model_dir/fit_part/` (networks that never saw the label slice).
    3. With `refit_on_all`, fresh networks are trained on the whole train split for the epoch
       counts found and saved at the root of `serving_model_dir` (what is served); without it
       the root holds the fit-part networks.
    4. `serving_model_dir/training_summary.json` records the epochs, the validation curves, the
       rating RMSE against the bias model, and which data each network saw.

    With `trainer.strategy: parameter_server` (or 'auto' on a cluster with parameter servers) the
    run is `trainer.ps_training.run` instead.
    """
    cfg, hyperparameters = tuned_config(from_dict(TrainerConfig, fn_args.custom_config.get(HPARAMS_KEY, {}), "trainer"),
                                        fn_args.hyperparameters)
    if ps_training.applies(cfg):  # its own run (trainer.ps_training); worker and ps tasks serve there
        ps_training.run(fn_args, cfg, hyperparameters)
        return
    # First: a cluster strategy (TF_CONFIG) configures the runtime before any other op runs.
    strategy = distribution.choose_strategy(cfg.strategy, tpu_address=cfg.tpu_address)
    # Every worker of a cluster saves (saving runs collectives); only the chief's copy is kept.
    model_dir = multi_worker.write_dir(fn_args.serving_model_dir, strategy)
    try:
        _fit_and_save(fn_args, cfg, hyperparameters, strategy, model_dir)
    finally:
        multi_worker.discard(model_dir, fn_args.serving_model_dir)


def _fit_and_save(fn_args: tfx.components.FnArgs, cfg: TrainerConfig, hyperparameters: Dict[str, object],
                  strategy: tf.distribute.Strategy, model_dir: str) -> None:
    """`run_fn`'s steps 1-4 under `strategy`, writing what goes to the serving_model_dir to `model_dir`."""
    tft_output = tft.TFTransformOutput(fn_args.transform_output)
    source = warm_start_source(fn_args.base_model)
    initialize, record = None, {}
    if source is not None:
        initialize = warm_starter(source, tft_output, record)
        # A warm start trains its fixed few epochs: the base model has seen most of the data.
        cfg = dataclasses.replace(cfg, epochs=cfg.warm_start_epochs, ranking_epochs=cfg.warm_start_ranking_epochs,
                                  early_stopping_patience=0)
    vocab = inputs.vocabularies(tft_output)
    data = holdout_inputs.training_inputs(fn_args.train_files, fn_args.eval_files, tft_output, vocab, cfg)
    # On a cluster each worker reads its share of every global batch (one process: unchanged).
    data, cluster_steps = multi_worker.trainer_inputs(data, strategy, tft_output, cfg)
    logging.info("training on %d users x %d items (vocabulary sizes incl. OOV), input held in %s; %s",
                 vocab.users, vocab.items, "memory" if data.mode == "memory" else "files (streamed)", data.counts)
    stoppers = _stoppers(cfg, data)
    fit_cfg = cfg
    if stoppers:
        fit_cfg = dataclasses.replace(cfg, epochs=cfg.max_epochs, ranking_epochs=cfg.ranking_max_epochs)
    fit_biases = _biases(cfg, data.fit_ratings, vocab) if cfg.rating_bias else None
    fitted = train.train(data.fit, data.label, vocab, fit_cfg, item_probabilities=data.fit_probabilities,
                         strategy=strategy,
                         callbacks=_stage_callbacks(fn_args.model_run_dir, FIT_PART_SUBDIR, stoppers, cfg.backup_steps),
                         steps_per_epoch=fn_args.train_steps or cluster_steps.fit, initialize=initialize, biases=fit_biases)
    retrieval_stage = "multitask" if cfg.multitask else "retrieval"
    epochs = {
        "retrieval": stoppers[retrieval_stage].best_epoch if stoppers else cfg.epochs,
        "ranking": stoppers["ranking"].best_epoch if "ranking" in stoppers else cfg.ranking_epochs,
    }
    summary: Dict[str, object] = {
        "split": cfg.split, "validation_fraction": cfg.validation_fraction, "input": data.mode,
        "examples": data.counts, "validation_users": data.validation.users,
        "early_stopping": {stage: stopper.summary() for stage, stopper in stoppers.items()},
        "epochs": epochs, "hyperparameters": hyperparameters,
    }
    if not stoppers:
        summary["validation_at_end"] = {
            f"recall_at_{cfg.validation_cutoff}": RecallAtK(data.validation, cfg.validation_cutoff)(fitted)}
    rmse = {"label_slice_unshrunk": _rating_rmse(fitted.ranking_model, data.label, fit_biases)}
    scale = rating_residual.calibrate(fitted.ranking_model, data.label, fit_biases) if fit_biases is not None else None
    summary["rating_residual_scale"] = scale
    rmse["label_slice"] = _rating_rmse(fitted.ranking_model, data.label, fit_biases)
    fit_dir = os.path.join(model_dir, FIT_PART_SUBDIR)
    fit_networks = export.Networks(fitted.query_tower, fitted.candidate_tower, fitted.ranking_model)
    export.save_trained(fit_networks, fit_dir)
    warm_start.save_vocabularies(tft_output, fit_dir)
    if cfg.refit_on_all:
        all_cfg = dataclasses.replace(cfg, epochs=epochs["retrieval"], ranking_epochs=epochs["ranking"])
        all_biases = _biases(cfg, data.train_ratings, vocab) if cfg.rating_bias else None
        refitted = train.train(data.train, data.eval, vocab, all_cfg, item_probabilities=data.train_probabilities,
                               strategy=strategy,
                               callbacks=_stage_callbacks(fn_args.model_run_dir, "refit", {}, cfg.backup_steps),
                               steps_per_epoch=fn_args.train_steps or cluster_steps.train, initialize=initialize, biases=all_biases)
        if scale is not None and all_biases is not None:  # the fit part's scale: no held-out ratings remain
            rating_residual.shrink_towards(refitted.ranking_model, all_biases, scale)
        served = export.Networks(refitted.query_tower, refitted.candidate_tower, refitted.ranking_model)
        rmse["eval"] = _rating_rmse(refitted.ranking_model, data.eval, all_biases)
        summary["networks"] = {
            "root": f"fresh networks trained on the whole train split ({data.counts['train']} examples) for "
                    f"{all_cfg.epochs} retrieval and {all_cfg.ranking_epochs} ranking epochs (refit_on_all)",
            FIT_PART_SUBDIR: f"trained on the fit part ({data.counts['fit_part']} examples), never on the label "
                             f"slice ({data.counts['label_slice']} examples)"}
    else:
        served = fit_networks
        rmse["eval"] = _rating_rmse(fitted.ranking_model, data.eval, fit_biases)
        summary["networks"] = {
            "root": f"the fit-part networks ({data.counts['fit_part']} examples; refit_on_all is off)",
            FIT_PART_SUBDIR: f"the same networks, never trained on the label slice ({data.counts['label_slice']} "
                             "examples)"}
    summary["rating_rmse"] = rmse
    export.save_trained(served, model_dir)
    warm_start.save_vocabularies(tft_output, model_dir)
    with tf.io.gfile.GFile(os.path.join(model_dir, SUMMARY_FILE), "w") as handle:
        handle.write(json.dumps(summary, indent=2, sort_keys=True, default=float))
    logging.info("training summary: %s", json.dumps({k: summary[k] for k in ("epochs", "rating_rmse")}))
    if record:
        with tf.io.gfile.GFile(os.path.join(model_dir, WARM_START_FILE), "w") as handle:
            handle.write(json.dumps(record, indent=2, sort_keys=True))

