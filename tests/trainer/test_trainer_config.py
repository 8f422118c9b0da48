"""The Trainer's convergence keys are validated at load, every error naming its key."""

from __future__ import annotations

import pytest

from core.config_loader import ConfigError, from_dict
from trainer.config import TrainerConfig


@pytest.mark.parametrize("values,key", [
    ({"optimizer": "sgd"}, "trainer.optimizer"),
    ({"split": "hash"}, "trainer.split"),
    ({"validation_fraction": 1.0}, "trainer.validation_fraction"),
    ({"validation_fraction": 0.0}, "trainer.validation_fraction"),
    ({"early_stopping_patience": -1}, "trainer.early_stopping_patience"),
    ({"max_epochs": 0}, "trainer.max_epochs"),
    ({"ranking_max_epochs": 0}, "trainer.ranking_max_epochs"),
    ({"validation_cutoff": 0}, "trainer.validation_cutoff"),
    ({"embedding_l2": -0.1}, "trainer.embedding_l2"),
    ({"rating_bias_l2_user": -1.0}, "trainer.rating_bias_l2_user"),
    ({"refit_on_all": "yes"}, "trainer.refit_on_all"),
    ({"user_id_embedding": 1}, "trainer.user_id_embedding"),
])
def test_bad_values_name_their_key(values, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        from_dict(TrainerConfig, values, "trainer")


def test_the_run_split_sets_the_trainer_split():
    from pipeline.config import load_config

    assert load_config(overrides={"split": "random"}).trainer.split == "random"
    assert load_config(overrides={"split": "time", "trainer": {"split": "random"}}).trainer.split == "time"
