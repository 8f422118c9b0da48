"""The compression stage end to end on the tiny world: exports, measurements, choice, report."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from core import features as F

pytestmark = pytest.mark.slow

K = 5
VARIANTS = ("int8", "distilled_int8")  # the default: the selection's likely winners
TFLITE = ("tflite_dynamic_range", "tflite_full_integer")
NOT_SWEPT = ["pruned", "qat", "pruned_int8", "qat_int8", "distilled"]
CUTOFFS = (5, 10, 20)


@pytest.fixture(scope="module")
def compressed(world, teacher_dir, trainer_cfg, tmp_path_factory):
    from components.compress_model import compress_model
    from compression.config import CompressionConfig
    from trainer.serving_model import ServingOptions

    root = tmp_path_factory.mktemp("compressed")
    cfg = CompressionConfig(tflite_modes=("dynamic_range", "full_integer"), student_epochs=2, latency_repeats=2,
                            representative_examples=32, max_eval_users=None)
    outcome = compress_model(
        teacher_dir, world.transform_dir, [world.transformed_train], [world.raw_train], [world.raw_eval],
        [world.catalog_file], str(root / "model"), str(root / "report"), trainer_cfg, cfg,
        ServingOptions(top_k=10), CUTOFFS,
    )
    return outcome, str(root / "model"), str(root / "report"), cfg


def _records(outcome):
    return {r.name: r for r in outcome.records}


def test_report_lists_every_variant_and_the_choice(compressed):
    from compression import report, select

    outcome, model_dir, report_dir, cfg = compressed
    names = [r.name for r in outcome.records]
    assert names == ["full", *VARIANTS, *TFLITE]
    text = open(os.path.join(report_dir, report.REPORT_MD), encoding="utf-8").read()
    assert f"**Selected:** `{outcome.selection.chosen}`" in text
    for name in names:
        assert f"| {name} |" in text
    assert "**Not swept:** " + ", ".join(f"`{name}`" for name in NOT_SWEPT) in text
    assert "--compression-sweep" in text
    for name in NOT_SWEPT:
        assert f"| {name} |" not in text
    with open(os.path.join(report_dir, report.REPORT_PNG), "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    saved = report.read_report(report_dir)
    assert saved["selection"]["chosen"] == outcome.selection.chosen
    assert saved["built"] == names and saved["not_swept"] == NOT_SWEPT
    again = select.select_variant(
        [select.Candidate(r.name, r.gzip_bytes, r.metrics, r.kind == report.SAVED_MODEL) for r in outcome.records],
        cfg.quality_budget, cfg.budget_metrics)
    assert again == outcome.selection
    assert os.listdir(os.path.join(report_dir, "tensorboard"))


def test_handed_on_model_has_the_trainers_layout(compressed):
    from compression.serving_variants import Int8ServingModel, read_marker, serving_model_class
    from trainer import export
    from trainer.serving_model import ServingModel

    outcome, model_dir, _, _ = compressed
    networks = export.load_trained(model_dir)
    marker = read_marker(model_dir)
    assert marker["variant"] == outcome.selection.chosen
    assert marker["int8_candidate_embeddings"] == outcome.selection.chosen.endswith("int8")
    assert networks.query_tower.input_names
    expected = Int8ServingModel if marker["int8_candidate_embeddings"] else ServingModel
    assert serving_model_class(model_dir) is expected


def test_every_serving_export_loads_and_keeps_the_contract(compressed):
    import tensorflow as tf

    outcome, _, _, _ = compressed
    users = tf.constant(["ua0", "ub3", "nobody"])
    for record in outcome.records:
        if record.kind != "saved_model":
            continue
        out = tf.saved_model.load(record.path).signatures[F.SERVING_SIGNATURE](**{F.SERVING_INPUT_USER: users})
        items, scores = out[F.SERVING_OUTPUT_ITEMS], out[F.SERVING_OUTPUT_SCORES]
        assert items.dtype == tf.string and scores.dtype == tf.float32
        assert items.shape == scores.shape == (3, 10), record.name
        assert np.all(np.diff(scores.numpy(), axis=1) <= 1e-6), f"{record.name}: not best first"


def _expected_bytes(network, int8_tables: bool) -> int:
    """Checkpoint bytes of a network: float32 weights, or int8 rows + a float32 scale per row."""
    import tensorflow as tf

    total = 0
    for layer in network.layers:
        for weight in layer.weights:
            rows, size = weight.shape[0], int(np.prod(weight.shape))
            embedding = type(layer) is tf.keras.layers.Embedding
            total += size + 4 * rows if (embedding and int8_tables) else 4 * size
    return total


def test_int8_tables_take_a_quarter_of_the_bytes(compressed, teacher, context):
    outcome, _, _, _ = compressed
    full, quantized = _records(outcome)["full"].bytes_by_group, _records(outcome)["int8"].bytes_by_group
    n, d = len(context.tables.item_keys), teacher.candidate_tower.output_shape[-1]
    assert full["candidate_embeddings"] == 4 * n * d
    assert quantized["candidate_embeddings"] == n * d + 4 * n
    for group, network in (("query_tower", teacher.query_tower), ("ranking_model", teacher.ranking_model)):
        assert full[group] == _expected_bytes(network, False)
        assert quantized[group] == _expected_bytes(network, True)


def test_int8_top_k_agrees_with_the_float_model(compressed, context):
    import tensorflow as tf

    outcome, _, _, _ = compressed
    users = tf.constant([key.decode() for key in context.tables.user_keys])
    tops = {}
    for name in ("full", "int8"):
        fn = tf.saved_model.load(_records(outcome)[name].path).signatures["retrieve_unfiltered"]
        tops[name] = fn(**{F.SERVING_INPUT_USER: users})[F.SERVING_OUTPUT_ITEMS].numpy()[:, :K]
    overlap = [len(set(a) & set(b)) / K for a, b in zip(tops["full"], tops["int8"])]
    same = np.mean([a == 1.0 for a in overlap])
    assert np.mean(overlap) >= 0.9 and same >= 0.75, (np.mean(overlap), same)


def test_quality_is_measured_as_the_evaluation_step_measures_it(compressed, world):
    from evaluation.model_eval import TWO_STAGE, evaluate

    outcome, _, _, _ = compressed
    full = _records(outcome)["full"]
    catalog_ids = [row[F.ITEM_ID] for row in world.catalog_rows]
    results, _ = evaluate(full.path, [world.raw_train], [world.raw_eval], catalog_ids, CUTOFFS, None)
    for metric in ("recall_at_20", "ndcg_at_10", "recall_at_5", "rmse"):
        assert full.metrics[metric] == pytest.approx(results[TWO_STAGE][metric]), metric


def test_tflite_query_towers_follow_the_keras_tower(compressed, teacher, context):
    from compression.tflite_export import TFLiteNetwork

    outcome, _, _, _ = compressed
    feats = {name: column[:-1] for name, column in context.tables.user_features.items()}
    feats[F.TIMESTAMP_XF] = np.ones(len(context.tables.user_keys), np.float32)
    want = teacher.query_tower({n: feats[n] for n in teacher.query_tower.input_names}).numpy()
    for mode, tolerance in (("dynamic_range", 0.05), ("full_integer", 0.15)):
        got = TFLiteNetwork(os.path.join(_records(outcome)[f"tflite_{mode}"].path, "query_tower.tflite"))(feats)
        assert got.shape == want.shape
        cosine = np.sum(got * want, axis=1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
        assert np.all(cosine >= 1 - tolerance), (mode, cosine.min())


def test_int8_variant_is_served_by_the_project_server(compressed, tmp_path):
    import tensorflow as tf

    from serving.client import RecommendationClient
    from serving.config import ModelConfig, ServerConfig
    from serving.server import ModelServer
    from tests.serving.tiny_models import install

    outcome, _, _, _ = compressed
    path = _records(outcome)["distilled_int8"].path
    base = str(tmp_path / "models" / "recsys")
    install(path, base, 1)
    users = ["ua0", "uc5", "nobody"]
    direct = tf.saved_model.load(path).signatures[F.SERVING_SIGNATURE](
        **{F.SERVING_INPUT_USER: tf.constant(users)})
    server = ModelServer(ServerConfig(models=(ModelConfig("recsys", base),), grpc_port=0, rest_port=None))
    server.start()
    try:
        with RecommendationClient(f"127.0.0.1:{server.ports.grpc}") as client:
            answers = client.recommend(users, "recsys")
    finally:
        server.stop(grace_s=1.0)
    for (items, scores), want_items, want_scores in zip(
            answers, direct[F.SERVING_OUTPUT_ITEMS].numpy(), direct[F.SERVING_OUTPUT_SCORES].numpy()):
        assert items == [i.decode() for i in want_items]
        np.testing.assert_allclose(scores, want_scores, rtol=1e-6)
    saved = json.loads(open(os.path.join(os.path.dirname(os.path.dirname(path)), "compression.json")).read())
    assert saved["variants"][0]["name"] == "full"
