"""The multitask model (rating + retrieval on shared towers) under a multi-replica strategy.

Its loss is the weighted sum of the retrieval loss (gathered negatives, summed over the local
queries) and the rating loss (averaged over the GLOBAL batch), so 2 logical CPU replicas must
reproduce single-device training, uneven last batch included (the `multitask_replica_run`
fixture of conftest.py runs the comparison in its own process).
"""

from __future__ import annotations

import pytest

from tests.distributed.conftest import MULTITASK_BATCH


@pytest.mark.slow
def test_two_replicas_give_the_single_device_multitask_loss_and_gradients(multitask_replica_run):
    assert multitask_replica_run["replicas"] == 2
    run = multitask_replica_run["multitask"][MULTITASK_BATCH]
    assert run["loss"] == pytest.approx(run["single_loss"], rel=1e-5)
    assert run["max_grad"] > 0
    assert run["max_grad_diff"] <= 1e-5 * run["max_grad"]


@pytest.mark.slow
def test_distributed_multitask_fit_steps_equal_the_single_device_steps(multitask_replica_run):
    run = multitask_replica_run["multitask"][MULTITASK_BATCH]
    assert run["fit_steps"] >= 3
    assert run["fit_max_weight_change"] > 0.1
    assert run["fit_max_weight_diff"] <= 1e-5 * run["fit_max_weight_change"]
    for key in ("loss", "retrieval_loss", "rating_loss", "rmse"):  # what fit reports, summed over replicas
        mirrored, single = run[f"fit_{key}"]
        assert mirrored == pytest.approx(single, rel=1e-4), key
