"""The ScaNN retrieval-index variant: export, load and serve through the project's model server.

Skipped when scann is not installed. On the tiny world's catalog, an index that searches every
leaf and re-scores every item exactly must give brute force's answers; the SavedModel is served
by the project's server (which registers ScaNN's ops) and answers the real TF Serving stubs, and
a server process without scann refuses it with one line naming the package.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("scann")

import grpc  # noqa: E402
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc  # noqa: E402

from core import features as F  # noqa: E402
from serving.tensor_codec import to_ndarray, to_tensor_proto  # noqa: E402
from trainer.retrieval_index import RetrievalIndexConfig  # noqa: E402
from trainer.serving_model import ServingOptions  # noqa: E402

# 48 items; retrieval keeps 5 candidates (+ up to 10 for seen items), so the index must rank.
OPTIONS = ServingOptions(top_k=5, candidates_to_rank=5)
EXHAUSTIVE = RetrievalIndexConfig(kind="scann", num_leaves=6, leaves_to_search=6, reorder=48, seen_headroom=10)


@pytest.fixture(scope="module")
def exports(teacher, context, tmp_path_factory):
    """(brute-force SavedModel, ScaNN SavedModel, user ids) of the tiny teacher."""
    import dataclasses

    from compression.serving_variants import export_variant

    ctx = dataclasses.replace(context, options=OPTIONS)
    root = tmp_path_factory.mktemp("scann_exports")
    brute = export_variant(teacher, ctx, str(root / "brute" / "1"), int8_candidates=False)
    scann = export_variant(teacher, ctx, str(root / "scann" / "1"), int8_candidates=False, index=EXHAUSTIVE)
    users = [key.decode() for key in context.tables.user_keys]
    return brute, scann, users


@pytest.fixture(scope="module")
def loaded(exports):
    """The two SavedModels loaded once: (brute force, ScaNN)."""
    import tensorflow as tf

    brute, scann, _ = exports
    return tf.saved_model.load(brute), tf.saved_model.load(scann)


def _graph_ops(path: str) -> set:
    from tensorflow.core.protobuf import saved_model_pb2

    model = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as handle:
        model.ParseFromString(handle.read())
    graph = model.meta_graphs[0].graph_def
    return {node.op for node in graph.node} | {n.op for f in graph.library.function for n in f.node_def}


def test_only_the_scann_variant_holds_scann_ops(exports):
    brute, scann, _ = exports
    assert not any(op.startswith("Scann>") for op in _graph_ops(brute))
    assert any(op.startswith("Scann>") for op in _graph_ops(scann))


def test_without_other_sources_the_float_matrix_is_not_saved_beside_the_index(exports):
    import tensorflow as tf

    def names(path):
        return [name for name, _ in tf.train.list_variables(os.path.join(path, "variables", "variables"))]

    brute, scann, _ = exports
    assert any("candidate_embeddings" in name for name in names(brute))
    assert not any("candidate_embeddings" in name for name in names(scann))


@pytest.mark.parametrize("signature", ["retrieve", "retrieve_unfiltered", F.SERVING_SIGNATURE])
def test_exhaustive_scann_agrees_with_brute_force(exports, loaded, signature):
    import tensorflow as tf

    ids = tf.constant(exports[2] + ["stranger"])
    want = loaded[0].signatures[signature](user_id=ids)
    got = loaded[1].signatures[signature](user_id=ids)
    np.testing.assert_array_equal(got[F.SERVING_OUTPUT_ITEMS].numpy(), want[F.SERVING_OUTPUT_ITEMS].numpy())
    np.testing.assert_allclose(got[F.SERVING_OUTPUT_SCORES].numpy(), want[F.SERVING_OUTPUT_SCORES].numpy(),
                               rtol=1e-4, atol=1e-4)


def test_seen_items_are_removed_by_the_scann_variant(exports, loaded, world):
    import tensorflow as tf

    users = exports[2]
    out = loaded[1].signatures["retrieve"](user_id=tf.constant(users))
    seen = {}
    for row in world.train_rows:
        seen.setdefault(row[F.USER_ID], set()).add(row[F.ITEM_ID])
    for user, items in zip(users, out[F.SERVING_OUTPUT_ITEMS].numpy()):
        assert not {item.decode() for item in items} & seen[user]


def test_the_project_server_serves_the_scann_variant_to_tf_serving_stubs(exports, loaded, tmp_path):
    import shutil

    import tensorflow as tf

    from serving.server import ModelServer
    from tests.serving.conftest import MODEL, make_config

    _, scann, users = exports
    base = tmp_path / MODEL
    shutil.copytree(scann, base / "1")
    server = ModelServer(make_config(str(base)))
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.ports.grpc}") as channel:
            request = predict_pb2.PredictRequest()
            request.model_spec.name = MODEL
            request.inputs[F.SERVING_INPUT_USER].CopyFrom(
                to_tensor_proto(np.array([u.encode() for u in users[:6]], dtype=object)))
            response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30)
    finally:
        server.stop(grace_s=1.0)
    items = to_ndarray(response.outputs[F.SERVING_OUTPUT_ITEMS], F.SERVING_OUTPUT_ITEMS, 10 ** 6)
    want = loaded[0].signatures[F.SERVING_SIGNATURE](user_id=tf.constant(users[:6]))
    np.testing.assert_array_equal(items, want[F.SERVING_OUTPUT_ITEMS].numpy())


def _load_in_fresh_process(path: str, block_scann: bool) -> str:
    """stdout of a fresh process that loads `path` with the server's SavedModelRunner (nothing
    else imports scann there); with `block_scann` the package cannot be imported."""
    script = ("import sys\n"
              + ("sys.modules['scann'] = None\n" if block_scann else "")
              + "from serving.signatures import LoadError\n"
              "from serving.workers import SavedModelRunner\n"
              "assert 'scann' not in sys.modules or sys.modules['scann'] is None\n"
              "try:\n    runner = SavedModelRunner(sys.argv[1])\n"
              "except LoadError as err:\n    print('LOADERROR', err)\n"
              "else:\n    print('LOADED', runner.run('retrieve', {'user_id': [b'x']})['item_ids'].shape)\n")
    env = dict(os.environ, PYTHONPATH=os.getcwd(), TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-c", script, path], capture_output=True, text=True, env=env,
                          timeout=120, check=True)
    return done.stdout


def test_the_server_registers_scann_ops_before_loading(exports):
    out = _load_in_fresh_process(exports[1], block_scann=False)
    assert "LOADED (1, 5)" in out, out


def test_a_server_without_scann_refuses_the_variant_in_one_line(exports):
    out = _load_in_fresh_process(exports[1], block_scann=True)
    lines = [line for line in out.splitlines() if line.startswith("LOADERROR")]
    assert len(lines) == 1, out
    assert "Scann>" in lines[0] and "pip install scann==1.3.2" in lines[0]


def test_more_leaves_than_items_is_a_one_line_error(teacher, context):
    from compression.serving_variants import make_serving_model

    with pytest.raises(ValueError, match=r"^retrieval_index.num_leaves \(100\) exceeds the catalog's 48 items$"):
        make_serving_model(teacher, context, False, RetrievalIndexConfig(kind="scann", num_leaves=100,
                                                                         leaves_to_search=10))


def test_with_the_item_item_source_the_variant_keeps_the_exact_product(teacher, world):
    import dataclasses

    import tensorflow as tf

    from compression.serving_variants import ServingContext, make_serving_model
    from trainer.item_item_config import ItemItemConfig

    ctx = ServingContext.load(world.transform_dir, [world.transformed_train], [world.catalog_file],
                              dataclasses.replace(OPTIONS, item_item_weight=0.5), item_item=ItemItemConfig())
    brute = make_serving_model(teacher, ctx, False)
    scann = make_serving_model(teacher, ctx, False, EXHAUSTIVE)
    assert scann.candidate_embeddings is not None
    users = tf.constant([key.decode() for key in ctx.tables.user_keys])
    for signature in ("recommend", "retrieve"):
        want, got = getattr(brute, signature)(users), getattr(scann, signature)(users)
        np.testing.assert_array_equal(got[F.SERVING_OUTPUT_ITEMS].numpy(), want[F.SERVING_OUTPUT_ITEMS].numpy())


@pytest.mark.parametrize("signature", ["retrieve", "retrieve_unfiltered", "recommend"])  # recommend: serving_default
def test_an_index_that_finds_too_few_items_pads_with_distinct_unseen_items(teacher, context, world, signature):
    """One leaf of 16 searched holds about 3 of the 48 items, far fewer than the 20 asked for
    (a leaf of 20 would take 5 times its share, whatever the trained embeddings): ScaNN pads
    with row 0 and NaN scores, which must not reach the answer as repeated items."""
    import dataclasses

    import tensorflow as tf

    from compression.serving_variants import make_serving_model

    ctx = dataclasses.replace(context, options=ServingOptions(top_k=20, candidates_to_rank=20))
    sparse = RetrievalIndexConfig(kind="scann", num_leaves=16, leaves_to_search=1, reorder=0, seen_headroom=10)
    module = make_serving_model(teacher, ctx, False, sparse)
    users = [key.decode() for key in ctx.tables.user_keys]
    out = getattr(module, signature)(tf.constant(users))
    items, scores = out[F.SERVING_OUTPUT_ITEMS].numpy(), out[F.SERVING_OUTPUT_SCORES].numpy()
    seen = {}
    for row in world.train_rows:
        seen.setdefault(row[F.USER_ID], set()).add(row[F.ITEM_ID].encode())
    padded_rows = 0
    for user, row, row_scores in zip(users, items, scores):
        assert len(set(row)) == len(row), row
        assert np.all(np.isfinite(row_scores))
        if signature != "retrieve_unfiltered":
            assert not set(row) & seen[user]
        padded_rows += int(np.min(row_scores) <= -3e9)
    assert padded_rows > 0, "the index was meant to come up short"


def test_automatic_leaves_cover_what_a_query_asks_for(teacher, context):
    import dataclasses

    import tensorflow as tf

    from compression.serving_variants import make_serving_model

    ctx = dataclasses.replace(context, options=ServingOptions(top_k=20, candidates_to_rank=20))
    module = make_serving_model(teacher, ctx, False, RetrievalIndexConfig(kind="scann", reorder=0))
    assert module.index.leaves == (7, 7)  # 7 leaves of about 7 items: 20 + seen need all of them
    users = tf.constant([key.decode() for key in ctx.tables.user_keys])
    assert np.all(module.retrieve(users)[F.SERVING_OUTPUT_SCORES].numpy() > -1e9)
