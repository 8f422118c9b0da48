"""`train.build_models`: the fits of a config in order, and the networks they train."""

from __future__ import annotations

import pytest

from trainer.towers import Vocabularies

VOCAB = Vocabularies(users=12, items=9, genders=3, occupations=4, genres=5, title_tokens=11, age_buckets=8,
                     year_buckets=6)


@pytest.mark.parametrize("multitask, stages", [(False, ["retrieval", "ranking"]), (True, ["multitask"])])
def test_fits_and_networks_of_each_mode(multitask, stages):
    from trainer import train
    from trainer.config import TrainerConfig

    cfg = TrainerConfig(embedding_dim=8, tower_layers=(), epochs=3, ranking_epochs=2, multitask=multitask)
    fits, (query, candidate, ranking) = train.build_models(VOCAB, cfg)
    assert [stage for stage, _, _ in fits] == stages
    assert [epochs for _, _, epochs in fits] == ([3, 2] if not multitask else [3])
    assert all(model.optimizer is not None for _, model, _ in fits)  # compiled
    first = fits[0][1]
    assert first.query_tower is query and first.candidate_tower is candidate
    assert fits[-1][1].network is ranking
    assert (query.name, candidate.name, ranking.name) == ("query_tower", "candidate_tower", "ranking_model")
