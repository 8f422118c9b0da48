"""The EASE block: closed form against a hand-built reference, scoring equal to numpy."""

import numpy as np

from trainer.ease_block import EaseBlock, fit_ease_block


def test_block_weights_and_scores_match_numpy():
    rng = np.random.default_rng(0)
    users = rng.integers(0, 30, 300)
    rows = np.minimum(rng.geometric(0.15, 300) - 1, 19)  # popular rows are the small ones
    tables = fit_ease_block(users, rows, n_items=20, max_items=8, l2=2.0)
    counts = np.bincount(rows, minlength=20)
    block = np.argsort(-counts, kind="stable")[:8]
    np.testing.assert_array_equal(tables.rows, block)
    x = np.zeros((30, 8))
    for u, r in zip(users, rows):
        if r in block:
            x[u, list(block).index(r)] = 1.0
    p = np.linalg.inv(x.T @ x + 2.0 * np.eye(8))
    expected = -p / np.diag(p)
    np.fill_diagonal(expected, 0.0)
    np.testing.assert_allclose(tables.weights, expected, rtol=1e-4, atol=1e-6)

    history = np.array([[block[0], block[0], block[3], 19, -1], [-1, -1, -1, -1, -1]])  # repeats count once
    scores = EaseBlock(tables, 20).scores(history).numpy()
    want = tables.weights[0] + tables.weights[3] + (tables.weights[list(block).index(19)] if 19 in block else 0)
    np.testing.assert_allclose(scores[0, block], want, rtol=1e-5)
    outside = np.setdiff1d(np.arange(20), block)
    assert np.isneginf(scores[:, outside]).all()
    np.testing.assert_allclose(scores[1, block], 0.0)
