"""A span that violates the curated schema stops the run before training; nothing is pushed."""

from __future__ import annotations

import glob

import pytest

from core import features as F
from core import version_dirs

pytestmark = pytest.mark.e2e


def _retype_user_age(pattern: str) -> int:
    """Rewrites the files so that user_age is a string feature; returns the rows rewritten."""
    import tensorflow as tf

    rows = 0
    for path in glob.glob(pattern):
        records = [bytes(r.numpy()) for r in tf.data.TFRecordDataset(path, compression_type="GZIP")]
        with tf.io.TFRecordWriter(path, options="GZIP") as writer:
            for record in records:
                example = tf.train.Example.FromString(record)
                age = example.features.feature[F.USER_AGE].int64_list.value[0]
                example.features.feature[F.USER_AGE].Clear()
                example.features.feature[F.USER_AGE].bytes_list.value.append(f"{age} years".encode())
                writer.write(example.SerializeToString())
                rows += 1
    return rows


def test_wrong_type_column_is_not_pushed(tmp_path):
    from components.validation_gate import DataValidationError
    from ingest.config import SyntheticDataConfig
    from pipeline import local_run
    from pipeline.config import PipelineConfig
    cfg = PipelineConfig(synthetic=SyntheticDataConfig(num_users=60, num_items=40, num_interactions=1500))
    cfg = cfg.with_paths(str(tmp_path / "out"))
    local_run.prepare_data(cfg, None)
    assert _retype_user_age(f"{cfg.data_root}/interactions/span-0/eval/*.gz") > 0
    with pytest.raises(Exception) as raised:
        local_run.run_pipeline(cfg)
    chain = [raised.value] + [e for e in (raised.value.__cause__, raised.value.__context__) if e]
    message = " ".join(str(e) for e in chain)
    assert any(isinstance(e, DataValidationError) for e in chain) or "anomalies" in message, message
    assert F.USER_AGE in message and "eval" in message
    assert version_dirs.versions(cfg.serving_model_dir) == []
