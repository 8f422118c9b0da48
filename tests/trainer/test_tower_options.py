"""Tower options: the query tower without the user-id embedding; the residual rating network."""

from __future__ import annotations

import numpy as np

from core import features as F
from tests.trainer.tower_inputs import tiny_inputs, tiny_vocab


def test_query_tower_without_user_id_keeps_the_input_but_ignores_it():
    from trainer import towers

    query = towers.build_query_tower(tiny_vocab(), 8, (), user_id_embedding=False)
    assert F.USER_ID_XF in query.input_names
    assert "user_id_embedding" not in [layer.name for layer in query.layers]
    feats = tiny_inputs(np.array([0, 2]), np.array([0, 0]))
    out = query({n: feats[n] for n in query.input_names}).numpy()
    np.testing.assert_allclose(out[0], out[1])  # same side features and history: same query
    with_id = towers.build_query_tower(tiny_vocab(), 8, (), user_id_embedding=True)
    assert "user_id_embedding" in [layer.name for layer in with_id.layers]


def test_residual_ranking_network_starts_at_the_bias_model():
    from trainer import bias_model, towers

    vocab = tiny_vocab()
    biases = bias_model.Biases(3.5, np.array([0.5, -0.5, 0.0]), np.array([0.25, 0.0, -0.25, 0.0]))
    network = towers.build_ranking_model(vocab, 8, (8,), 1, biases=biases)
    feats = tiny_inputs(users=np.array([0, 1, 2]), items=np.array([0, 2, 1]))
    np.testing.assert_allclose(network(feats).numpy(), [4.25, 2.75, 3.5], rtol=1e-6)
