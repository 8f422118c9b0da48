"""`trainer.strategy: parameter_server` on loopback: 1 chief, 2 workers and 2 parameter servers
as separate processes (`tests.distributed.ps_cluster`) train the tiny world's models through the
Trainer's `run_fn`, checkpoint them and write the networks; the serving model built from those
networks is exported and called.

The run is shared by the tests of this module (one cluster, a few minutes on 2 busy cores).
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from core import features as F

MIN_SHARD_BYTES = 4096  # tables of >= 8 KiB are split: the id and history tables below, no dense layer
TOP_K = 5
TRAINER = {"strategy": "parameter_server", "ps_min_shard_bytes": MIN_SHARD_BYTES, "embedding_dim": 16,
           "user_id_embedding": True,
           "tower_layers": [], "ranking_layers": [8], "ranking_low_rank": 4, "epochs": 1, "ranking_epochs": 1,
           "batch_size": 64, "top_k": TOP_K}
TRAIN_STEPS = 3
CHIEF_TIMEOUT_S = 600

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ps_run(tmp_path_factory):
    """The world, the chief's model and run folders, and the exported serving model."""
    from tests.compression import tiny_world
    from tests.distributed import ps_cluster
    from trainer.serving_model import ServingOptions

    root = tmp_path_factory.mktemp("parameter_server")
    # 240 users and 160 items: their 16-wide tables (10-15 KiB) are the large ones.
    world = tiny_world.build_world(root / "world", tiny_world.Shape(users_per_group=60, items_per_group=40,
                                                                    groups="abcd"))
    logs = root / "logs"
    logs.mkdir()
    args = {"train_files": [world.transformed_train], "eval_files": [world.transformed_train],
            "transform_output": world.transform_dir, "serving_model_dir": str(root / "model"),
            "model_run_dir": str(root / "run"), "trainer": TRAINER, "train_steps": TRAIN_STEPS}
    cluster = ps_cluster.cluster_spec()
    with ps_cluster.servers(cluster, logs) as servers:
        done = ps_cluster.run_chief(cluster, args, logs, CHIEF_TIMEOUT_S)
        alive = [server.poll() is None for server in servers]
    assert done.returncode == 0, (logs / "chief.log").read_text()[-6000:]
    assert all(alive), "a worker or ps server ended during the run"

    from components.build_serving_model import build_serving_model

    export_dir = str(root / "serving")
    build_serving_model(args["serving_model_dir"], world.transform_dir, [world.transformed_train],
                        [world.catalog_file], export_dir, ServingOptions(top_k=TOP_K, candidates_to_rank=20))
    return {"world": world, "model_dir": args["serving_model_dir"], "run_dir": args["model_run_dir"],
            "export_dir": export_dir, "cluster": cluster}


def _summary(ps_run) -> dict:
    with open(os.path.join(ps_run["model_dir"], "training_summary.json")) as handle:
        return json.load(handle)


def _large_tables(ps_run) -> dict:
    """`<network>/<layer>/embeddings` -> full shape, for every embedding table of the written
    networks of at least 2 x MIN_SHARD_BYTES."""
    import tensorflow as tf

    from trainer import export

    tables = {}
    for name, network in export.load_trained(ps_run["model_dir"]).as_dict().items():
        for layer in network.submodules:
            if isinstance(layer, tf.keras.layers.Embedding):
                shape = tuple(layer.embeddings.shape)
                if np.prod(shape) * 4 >= 2 * MIN_SHARD_BYTES:
                    tables[f"{name}/{layer.name}/embeddings"] = shape
    return tables


def test_every_large_table_is_split_across_both_parameter_servers(ps_run):
    summary = _summary(ps_run)
    assert (summary["strategy"], summary["workers"], summary["parameter_servers"]) == ("parameter_server", 2, 2)
    tables = _large_tables(ps_run)
    # the user-id, item-id and history tables of the towers and of the ranking network
    assert {"query_tower/user_id_embedding/embeddings", "candidate_tower/item_id_embedding/embeddings",
            "query_tower/user_history_embedding/embeddings", "ranking_model/user_id_embedding/embeddings",
            "ranking_model/item_id_embedding/embeddings"} <= set(tables)
    layout = summary["sharded_variables"]
    for key, shape in tables.items():
        assert key in layout, f"{key} {shape} was not partitioned: {sorted(layout)}"
        shards = layout[key]
        assert tuple(shards["shape"]) == shape
        assert sum(shards["rows"]) == shape[0] and min(shards["rows"]) > 0
        tasks = sorted(device.split("/device:")[0] for device in shards["devices"])
        assert tasks == ["/job:ps/replica:0/task:0", "/job:ps/replica:0/task:1"], (key, shards["devices"])


def test_checkpoints_hold_whole_tables_and_the_written_networks_are_restored_from_them(ps_run):
    import tensorflow as tf

    from trainer import export

    path = tf.train.latest_checkpoint(os.path.join(ps_run["run_dir"], "checkpoints", "retrieval"))
    assert path is not None and path.endswith("ckpt-1")  # one epoch
    reader = tf.train.load_checkpoint(path)
    shapes = reader.get_variable_to_shape_map()
    networks = export.load_trained(ps_run["model_dir"])
    for tower in (networks.query_tower, networks.candidate_tower):
        for layer in tower.submodules:
            if not isinstance(layer, tf.keras.layers.Embedding):
                continue
            value = layer.embeddings.numpy()
            keys = [k for k, s in shapes.items() if tuple(s) == value.shape and "OPTIMIZER" not in k
                    and k.endswith("embeddings/.ATTRIBUTES/VARIABLE_VALUE")]
            assert any(np.array_equal(reader.get_tensor(k), value) for k in keys), layer.name


def test_exported_model_serves_the_contract(ps_run):
    import tensorflow as tf

    from serving import signatures

    signatures.check_contract(signatures.servable_specs(signatures.read_signature_defs(ps_run["export_dir"])))
    serve = tf.saved_model.load(ps_run["export_dir"]).signatures[F.SERVING_SIGNATURE]
    users = ["ua0", "ub7", "ud59", "nobody-knows-me"]
    out = serve(**{F.USER_ID: tf.constant(users)})
    items, scores = out[F.SERVING_OUTPUT_ITEMS], out[F.SERVING_OUTPUT_SCORES]
    assert items.dtype == tf.string and scores.dtype == tf.float32
    assert items.shape == (len(users), TOP_K) and scores.shape == (len(users), TOP_K)
    catalog = {row[F.ITEM_ID] for row in ps_run["world"].catalog_rows}
    seen = {(row[F.USER_ID], row[F.ITEM_ID]) for row in ps_run["world"].train_rows}
    for user, row, row_scores in zip(users, items.numpy(), scores.numpy()):
        ids = [item.decode() for item in row]
        assert set(ids) <= catalog and len(set(ids)) == TOP_K
        assert not {(user, item) for item in ids} & seen  # rated items are not recommended back
        assert np.all(np.isfinite(row_scores)) and np.all(np.diff(row_scores) <= 1e-6)  # best first
