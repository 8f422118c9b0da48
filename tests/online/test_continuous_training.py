"""Continuous training: the Trainer's warm start from the latest blessed model's networks."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from core import features as F


def _blessed_artifact(tmp_path, tiny_base):
    """A serving-model artifact laid out as BuildServingModel writes it (networks in trained/)."""
    import tensorflow_transform as tft

    from trainer import warm_start
    from trainer.entry import TRAINED_SUBDIR

    artifact = tmp_path / "serving_model" / "7"
    os.makedirs(artifact / "Format-Serving")
    shutil.copytree(tiny_base.trained_dir, artifact / TRAINED_SUBDIR)
    warm_start.save_vocabularies(tft.TFTransformOutput(tiny_base.transform_dir), str(artifact / TRAINED_SUBDIR))
    return str(artifact / "Format-Serving"), str(artifact / TRAINED_SUBDIR)


def test_the_base_model_networks_are_found_beside_format_serving(tmp_path, tiny_base):
    from trainer.entry import warm_start_source

    assert warm_start_source(None) is None and warm_start_source("") is None
    base_model, trained = _blessed_artifact(tmp_path, tiny_base)
    assert warm_start_source(base_model) == trained
    os.remove(os.path.join(trained, "vocabularies.json"))
    with pytest.raises(FileNotFoundError, match="vocabularies.json is missing"):
        warm_start_source(base_model)


def _tiny_training_data(tiny_base):
    import tensorflow_transform as tft

    from ingest import writer
    from online import base_data
    from trainer import inputs

    tft_output = tft.TFTransformOutput(tiny_base.transform_dir)
    layer = tft_output.transform_features_layer()
    arrays = {s: base_data.transform(base_data.read_raw([writer.split_pattern(tiny_base.data_root, 0, s)]), layer)
              for s in (F.TRAIN_SPLIT, F.EVAL_SPLIT)}
    vocab = inputs.vocabularies(tft_output)
    inputs.add_histories(arrays[F.TRAIN_SPLIT], arrays[F.EVAL_SPLIT], num_users=vocab.users - F.OOV_BUCKETS)
    return tft_output, vocab, arrays[F.TRAIN_SPLIT]


def test_a_warm_started_run_starts_where_the_blessed_model_left_off(tmp_path, tiny_base):
    """One epoch from the blessed weights has a far lower loss than one epoch from scratch."""
    from trainer import export, inputs, train
    from trainer.config import TrainerConfig
    from trainer.entry import warm_start_source, warm_starter

    base_model, _ = _blessed_artifact(tmp_path, tiny_base)
    tft_output, vocab, rows = _tiny_training_data(tiny_base)
    # The tiny base model's architecture (tests/online/conftest.py), one epoch of each model.
    cfg = TrainerConfig(embedding_dim=16, tower_layers=(), epochs=1, batch_size=64, learning_rate=0.2,
                        optimizer="adagrad", user_id_embedding=True, temperature=0.1, ranking_epochs=1, top_k=5,
                        seed=3)
    data = inputs.array_dataset(rows, cfg.batch_size, shuffle=True, seed=cfg.seed)
    probabilities = inputs.item_probabilities(data, vocab.items)
    seen = {}

    def initialize(networks):
        warm_starter(warm_start_source(base_model), tft_output)(networks)
        seen.update(networks)

    warm = train.train(data, None, vocab, cfg, item_probabilities=probabilities, initialize=initialize)
    fresh = train.train(data, None, vocab, cfg, item_probabilities=probabilities)
    assert set(seen) == set(export.NETWORKS)
    warm_loss, fresh_loss = train.final_losses(warm), train.final_losses(fresh)
    assert warm_loss[0] < 0.8 * fresh_loss[0], (warm_loss, fresh_loss)
    assert warm_loss[1] < fresh_loss[1], (warm_loss, fresh_loss)


def test_warm_start_shortens_the_schedule_and_saves_the_vocabularies(tmp_path, tiny_base, monkeypatch):
    """run_fn with a base model trains `warm_start_*epochs` and leaves vocabularies for the next run."""
    from tfx.components.trainer.fn_args_utils import FnArgs

    from trainer import entry as run_module
    from trainer import warm_start

    base_model, trained = _blessed_artifact(tmp_path, tiny_base)
    tft_output, vocab, rows = _tiny_training_data(tiny_base)
    calls = {}
    real_train = run_module.train.train

    def fake_training_inputs(train_files, eval_files, output, vocab, cfg):
        from trainer import holdout_inputs

        train_arrays, eval_arrays = ({k: v.copy() for k, v in rows.items() if k != F.USER_HISTORY} for _ in "te")
        return holdout_inputs.from_arrays(train_arrays, eval_arrays, vocab, cfg)

    def fake_train(train_data, eval_data, vocab, cfg, initialize=None, **kwargs):
        calls["epochs"] = (cfg.epochs, cfg.ranking_epochs)
        calls["initialize"] = initialize
        return real_train(train_data, None, vocab, cfg, initialize=initialize,
                          **{k: v for k, v in kwargs.items() if k != "callbacks"})

    monkeypatch.setattr(run_module.holdout_inputs, "training_inputs", fake_training_inputs)
    monkeypatch.setattr(run_module.train, "train", fake_train)
    out = tmp_path / "model"
    custom = {run_module.HPARAMS_KEY: {"embedding_dim": 16, "tower_layers": [], "epochs": 9, "ranking_epochs": 9,
                                       "warm_start_epochs": 1, "warm_start_ranking_epochs": 2, "batch_size": 64,
                                       "user_id_embedding": True, "rating_bias": False}}
    fn_args = FnArgs(train_files=["unused"], eval_files=["unused"], transform_output=tiny_base.transform_dir,
                     serving_model_dir=str(out), model_run_dir=str(tmp_path / "logs"), base_model=base_model,
                     custom_config=custom, train_steps=None)
    run_module.run_fn(fn_args)
    assert calls["epochs"] == (1, 2) and calls["initialize"] is not None
    assert warm_start.load_vocabularies(str(out)) == warm_start.vocabularies(tft_output)
    with open(out / run_module.WARM_START_FILE) as handle:
        record = json.load(handle)
    assert record["source"] == trained and not record["fresh"]
    assert record["remapped"][f"query_tower/{F.USER_ID}_embedding"] == {"kept": len(tft_output.vocabulary_by_name(F.USER_ID_VOCAB)), "new": 0}
    networks = run_module.export.load_trained(str(out))
    assert networks.query_tower.get_layer(f"{F.USER_ID}_embedding").input_dim == vocab.users
