"""run_fn: the label slice is held out of the fit, the refit uses the epoch count found, and the
fit-part networks, the served networks and the training summary are written."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core import features as F


def _fn_args(transformed_tiny, tmp_path, **trainer):
    from tfx.components.trainer.fn_args_utils import FnArgs

    from trainer import entry

    hparams = {"embedding_dim": 8, "tower_layers": [], "batch_size": 64, "max_epochs": 4, "ranking_max_epochs": 2,
               "learning_rate": 0.01, "split": "random", **trainer}
    return FnArgs(train_files=[transformed_tiny.train_pattern], eval_files=[transformed_tiny.train_pattern],
                  transform_output=transformed_tiny.transform_dir, serving_model_dir=str(tmp_path / "model"),
                  model_run_dir=str(tmp_path / "logs"), custom_config={entry.HPARAMS_KEY: hparams}, train_steps=None)


@pytest.fixture
def recorded_fits(monkeypatch):
    """Every `train.train` call of run_fn: its training data's (user, item) pairs and its config."""
    from trainer import train

    calls = []
    original = train.train

    def recording(train_data, eval_data, vocab, cfg, **kwargs):
        pairs = set()
        for batch in train_data:
            pairs.update(zip(batch[F.USER_ID_XF].numpy().tolist(), batch[F.ITEM_ID_XF].numpy().tolist()))
        trained = original(train_data, eval_data, vocab, cfg, **kwargs)
        calls.append({"pairs": pairs, "cfg": cfg, "trained": trained})
        return trained

    monkeypatch.setattr(train, "train", recording)
    return calls


def _all_pairs(pattern, tft_output):
    from trainer import inputs

    arrays = inputs.load_arrays(pattern, tft_output)
    return arrays


def test_label_slice_is_held_out_and_refit_uses_the_found_epochs(transformed_tiny, tmp_path, recorded_fits,
                                                                 monkeypatch):
    import tensorflow_transform as tft

    from trainer import entry, export, rating_residual
    from trainer.label_slice import label_slice_mask

    shrinks = []
    original_shrink = rating_residual.shrink_towards

    def recording_shrink(network, biases, scale):
        shrinks.append((network, scale))
        original_shrink(network, biases, scale)

    monkeypatch.setattr(rating_residual, "shrink_towards", recording_shrink)

    entry.run_fn(_fn_args(transformed_tiny, tmp_path))
    arrays = _all_pairs(transformed_tiny.train_pattern, tft.TFTransformOutput(transformed_tiny.transform_dir))
    users, items = arrays[F.USER_ID_XF], arrays[F.ITEM_ID_XF]
    mask = label_slice_mask(users, items, arrays[F.TIMESTAMP_XF], "random", 0.2)
    label = set(zip(users[mask].tolist(), items[mask].tolist()))
    every = set(zip(users.tolist(), items.tolist()))
    fit, refit = recorded_fits
    assert label and not fit["pairs"] & label  # the fit part never holds a label-slice interaction
    assert fit["pairs"] == every - label
    assert refit["pairs"] == every  # the refit sees the whole train split

    summary = json.loads((tmp_path / "model" / entry.SUMMARY_FILE).read_text())
    found = summary["early_stopping"]["retrieval"]["best_epoch"]
    assert 1 <= found <= 4 and len(summary["early_stopping"]["retrieval"]["curve"]) >= found
    assert refit["cfg"].epochs == found == summary["epochs"]["retrieval"]
    assert refit["cfg"].ranking_epochs == summary["epochs"]["ranking"] == summary["early_stopping"]["ranking"]["best_epoch"]
    assert len(refit["trained"].retrieval_history["loss"]) == found
    rmse = summary["rating_rmse"]
    # the residual shrunk on the label slice: never worse there than the bias model or the unshrunk network
    assert 0.0 <= summary["rating_residual_scale"] <= 1.0
    assert rmse["label_slice"]["model"] <= rmse["label_slice"]["bias_model"] + 1e-6
    assert rmse["label_slice"]["model"] <= rmse["label_slice_unshrunk"]["model"] + 1e-6
    # the fit part's network is shrunk on the label slice, the refitted one by the same scale
    assert [(network, scale) for network, scale in shrinks] == [
        (fit["trained"].ranking_model, summary["rating_residual_scale"]),
        (refit["trained"].ranking_model, summary["rating_residual_scale"])]
    assert rmse["eval"]["examples"] > 0 and np.isfinite(rmse["eval"]["model"])
    fit_part = export.load_trained(str(tmp_path / "model" / entry.FIT_PART_SUBDIR))
    served = export.load_trained(str(tmp_path / "model"))
    probe = fit["trained"].candidate_tower.get_weights()[0]
    np.testing.assert_allclose(fit_part.candidate_tower.get_weights()[0], probe)
    assert not np.allclose(served.candidate_tower.get_weights()[0], probe)


def test_without_refit_the_root_serves_the_fit_part_networks(transformed_tiny, tmp_path, recorded_fits):
    from trainer import entry, export

    entry.run_fn(_fn_args(transformed_tiny, tmp_path, refit_on_all=False, early_stopping_patience=0, epochs=1,
                          ranking_epochs=1))
    assert len(recorded_fits) == 1
    served = export.load_trained(str(tmp_path / "model"))
    fit_part = export.load_trained(str(tmp_path / "model" / entry.FIT_PART_SUBDIR))
    np.testing.assert_allclose(served.query_tower.get_weights()[-1], fit_part.query_tower.get_weights()[-1])
    summary = json.loads((tmp_path / "model" / entry.SUMMARY_FILE).read_text())
    assert summary["early_stopping"] == {} and "refit_on_all is off" in summary["networks"]["root"]
    assert 0.0 <= summary["validation_at_end"]["recall_at_20"] <= 1.0
