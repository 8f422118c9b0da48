"""Fixtures: one tiny world on disk (4 taste groups, interactions only) and its trained teacher."""

from __future__ import annotations

import pytest

from tests.compression import tiny_world

SHAPE = tiny_world.Shape(users_per_group=12, items_per_group=12, groups="abcd", side_features=False)


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> tiny_world.World:
    """Raw + transformed examples of a world whose tastes show only in the interactions."""
    return tiny_world.build_world(tmp_path_factory.mktemp("compression_world"), SHAPE)


@pytest.fixture(scope="session")
def trainer_cfg():
    return tiny_world.trainer_config()


@pytest.fixture(scope="session")
def teacher_dir(world, trainer_cfg, tmp_path_factory) -> str:
    """The trained full networks, saved in the Trainer's layout."""
    out = str(tmp_path_factory.mktemp("teacher") / "model")
    tiny_world.train_teacher(world, trainer_cfg, out)
    return out


@pytest.fixture(scope="session")
def teacher(teacher_dir):
    from trainer import export

    return export.load_trained(teacher_dir)


@pytest.fixture(scope="session")
def training_data(world, trainer_cfg):
    from compression.finetune import load_training_data

    return load_training_data(world.transform_dir, [world.transformed_train], trainer_cfg, seed=1)


@pytest.fixture(scope="session")
def context(world):
    from compression.serving_variants import ServingContext
    from trainer.serving_model import ServingOptions

    return ServingContext.load(world.transform_dir, [world.transformed_train], [world.catalog_file],
                               ServingOptions(top_k=10))


def recall_at(networks, context, world, k: int = 5) -> float:
    """Mean share of each user's eval items among their top-k unseen catalog items (numpy)."""
    import numpy as np

    from core import features as F
    from trainer import tables as T

    table = context.tables
    feats = {name: column[:-1] for name, column in table.user_features.items()}
    feats[F.TIMESTAMP_XF] = np.full(len(table.user_keys), context.options.context_timestamp, np.float32)
    query = networks.query_tower({n: feats[n] for n in networks.query_tower.input_names}).numpy()
    scores = query @ T.embed_catalog(networks.candidate_tower, context.item_features).T
    keys = [key.decode() for key in table.item_keys]
    recalls = []
    for row, user in enumerate(key.decode() for key in table.user_keys):
        seen = {r[F.ITEM_ID] for r in world.train_rows if r[F.USER_ID] == user}
        relevant = {r[F.ITEM_ID] for r in world.eval_rows if r[F.USER_ID] == user}
        top = [keys[j] for j in np.argsort(-scores[row], kind="stable") if keys[j] not in seen][:k]
        recalls.append(len(relevant & set(top)) / len(relevant))
    return float(np.mean(recalls))
