"""`retrieval_index.kind: scann` in the pipeline's path: BuildServingModel's function, the
evaluator, `recsys recommend` and the online learner's note, on the tiny world.

Skipped when scann is not installed. The index below has the automatic number of leaves
(round(sqrt(48 items)) = 7) and searches all 7 and re-scores every item exactly, so its answers
must be brute force's. The evaluator and `recsys recommend` run in fresh processes, where nothing
has imported scann before they load the model: they must register ScaNN's ops themselves.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("scann")

from core import features as F  # noqa: E402
from trainer.retrieval_index import RetrievalIndexConfig  # noqa: E402
from trainer.serving_model import ServingOptions  # noqa: E402

OPTIONS = ServingOptions(top_k=5, candidates_to_rank=5)
ALL_LEAVES = RetrievalIndexConfig(kind="scann", leaves_to_search=7, reorder=48, seen_headroom=10)
CUTOFFS = (5,)


@pytest.fixture(scope="module")
def built(world, teacher_dir, tmp_path_factory):
    """SavedModels written by `build_serving_model`: brute force, ScaNN, and ScaNN's full model."""
    from components.build_serving_model import build_serving_model

    root = tmp_path_factory.mktemp("scann_pipeline")
    args = (teacher_dir, world.transform_dir, [world.transformed_train], [world.catalog_file])
    out = {"brute": str(root / "brute"), "scann": str(root / "scann"), "scann_full": str(root / "scann_full")}
    build_serving_model(*args, out["brute"], OPTIONS)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        build_serving_model(*args, out["scann"], OPTIONS, full_export_dir=out["scann_full"], index=ALL_LEAVES)
    out["printed"] = printed.getvalue()
    return out


def _run_fresh(script: str, *args: str) -> str:
    env = dict(os.environ, PYTHONPATH=os.getcwd(), TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_both_exports_retrieve_through_the_index_and_say_so(built):
    from trainer.scann_serving_model import uses_scann_index

    assert uses_scann_index(built["scann"]) and uses_scann_index(built["scann_full"])
    assert not uses_scann_index(built["brute"])
    assert "serving model: ScaNN retrieval index, 7 leaves, 7 searched per query" in built["printed"]


@pytest.mark.parametrize("signature", [F.SERVING_SIGNATURE, "retrieve"])
def test_an_index_searching_every_leaf_answers_as_brute_force(built, world, signature):
    import tensorflow as tf

    users = tf.constant(sorted({row[F.USER_ID] for row in world.train_rows}) + ["stranger"])
    want = tf.saved_model.load(built["brute"]).signatures[signature](user_id=users)
    got = tf.saved_model.load(built["scann"]).signatures[signature](user_id=users)
    assert got[F.SERVING_OUTPUT_ITEMS].shape == (len(users), OPTIONS.top_k)
    np.testing.assert_array_equal(got[F.SERVING_OUTPUT_ITEMS].numpy(), want[F.SERVING_OUTPUT_ITEMS].numpy())
    np.testing.assert_allclose(got[F.SERVING_OUTPUT_SCORES].numpy(), want[F.SERVING_OUTPUT_SCORES].numpy(),
                               rtol=1e-4, atol=1e-4)


_EVALUATE = """import json, sys
assert 'scann' not in sys.modules
from evaluation import model_eval
results, _ = model_eval.evaluate(sys.argv[1], [sys.argv[2]], [sys.argv[3]], json.loads(sys.argv[4]), (5,), None)
assert 'scann' in sys.modules
print(json.dumps(results))
"""


def test_the_evaluator_loads_and_scores_the_scann_model(built, world):
    from evaluation import model_eval

    catalog = [row[F.ITEM_ID] for row in world.catalog_rows]
    out = _run_fresh(_EVALUATE, built["scann"], world.raw_train, world.raw_eval, json.dumps(catalog))
    got = json.loads(out.strip().splitlines()[-1])
    want, _ = model_eval.evaluate(built["brute"], [world.raw_train], [world.raw_eval], catalog, CUTOFFS, None)
    for model in (model_eval.TWO_STAGE, model_eval.RETRIEVAL):
        assert got[model]["recall_at_5"] > 0.3  # the tiny teacher finds the held-out items of its groups
        assert got[model] == pytest.approx(want[model], abs=1e-6)


def test_recsys_recommend_serves_the_scann_model(built):
    import tensorflow as tf

    version_dir = os.path.join(os.path.dirname(built["scann_full"]), "pushed", "1")  # as the Pusher lays it out
    if not os.path.exists(version_dir):
        shutil.copytree(built["scann_full"], version_dir)
    out = _run_fresh("import sys\nfrom cli.main import main\nsys.exit(main(sys.argv[1:]))",
                     "recommend", "--model", os.path.dirname(version_dir), "--user", "ua0", "-k", "3")
    rows = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
    want = tf.saved_model.load(built["brute"]).signatures[F.SERVING_SIGNATURE](user_id=tf.constant(["ua0"]))
    assert [row[2] for row in rows] == [item.decode() for item in want[F.SERVING_OUTPUT_ITEMS].numpy()[0][:3]]


def test_the_learner_notes_a_pushed_scann_model_only(built):
    from online import artifacts

    assert artifacts.retrieval_note(built["scann_full"]) == (
        "the pushed model retrieves through a ScaNN index; learned versions retrieve by brute force "
        "(the index is not rebuilt online)")
    assert artifacts.retrieval_note(built["brute"]) is None
    assert artifacts.retrieval_note("") is None
