"""The learner's base data reader on UTF-8 text: MovieLens titles are not ASCII."""

from __future__ import annotations

import numpy as np


def test_non_ascii_titles_and_ids_load_through_the_transform_layer(tmp_path, tiny_base):
    import tensorflow_transform as tft

    from core import features as F
    from online import base_data
    from tests.online.conftest import _write_data

    def accented(row):
        return {**row, F.ITEM_TITLE: f"Amélie – {row[F.ITEM_TITLE]}"}

    rows = [accented(r) for r in tiny_base.rows]
    rows[0] = {**rows[0], F.USER_ID: "Zoë"}
    _write_data(str(tmp_path / "data"), rows, [accented(c) for c in tiny_base.catalog])
    layer = tft.TFTransformOutput(tiny_base.transform_dir).transform_features_layer()
    base = base_data.load(str(tmp_path / "data"), [0], layer)
    titles = set(base.train_raw[F.ITEM_TITLE]) | set(base.eval_raw[F.ITEM_TITLE])
    assert titles == {accented(r)[F.ITEM_TITLE] for r in tiny_base.rows}
    assert "Zoë" in set(base.train_raw[F.USER_ID]) | set(base.eval_raw[F.USER_ID])
    assert len(base.train[F.ITEM_ID_XF]) == len(base.train_raw[F.USER_ID])
    assert np.all(base.train[F.ITEM_ID_XF] >= 0)
