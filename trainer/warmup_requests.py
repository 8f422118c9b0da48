"""Warmup requests written into an exported SavedModel (`assets.extra/tf_serving_warmup_requests`).

TF Serving (and this project's server) replays these `PredictionLog` records before a new
version takes traffic, so the first real requests do not pay for graph tracing. Written at
export time by whoever builds a serving model: the pipeline's BuildServingModel and the online
learner.
"""

from __future__ import annotations

import os
from typing import Sequence

from core.features import SERVING_INPUT_USER, SERVING_SIGNATURE

WARMUP_DIR = "assets.extra"
WARMUP_FILE = "tf_serving_warmup_requests"
MAX_WARMUP_RECORDS = 1000  # TF Serving's limit


def warmup_path(saved_model_dir: str) -> str:
    """Where the warmup file of a version directory lives."""
    return os.path.join(saved_model_dir, WARMUP_DIR, WARMUP_FILE)


def write_warmup_requests(saved_model_dir: str, model_name: str, user_ids: Sequence[str],
                          signature_name: str = SERVING_SIGNATURE, num_records: int = 10,
                          batch_size: int = 8) -> str:
    """Write warmup Predict requests for the recommender signature.

    Args:
        saved_model_dir: the SavedModel (version) directory.
        model_name: the model name written into each request's ModelSpec.
        user_ids: user ids to ask for (cycled through the records).
        signature_name: the signature the requests call.
        num_records: how many records to write (1..1000).
        batch_size: user ids per request.

    Returns:
        The path of the written file.

    Raises:
        ValueError: no user ids, or a record count outside 1..1000.
    """
    import numpy as np
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    if not user_ids:
        raise ValueError("write_warmup_requests needs at least one user id")
    if not 1 <= num_records <= MAX_WARMUP_RECORDS:
        raise ValueError(f"num_records must be in [1, {MAX_WARMUP_RECORDS}], got {num_records}")
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    path = warmup_path(saved_model_dir)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    temp = path + ".tmp"
    ids = [u.encode("utf-8") if isinstance(u, str) else bytes(u) for u in user_ids]
    with tf.io.TFRecordWriter(temp) as writer:
        for index in range(num_records):
            start = (index * batch_size) % len(ids)
            chunk = [ids[(start + j) % len(ids)] for j in range(min(batch_size, len(ids)))]
            request = predict_pb2.PredictRequest()
            request.model_spec.name = model_name
            request.model_spec.signature_name = signature_name
            request.inputs[SERVING_INPUT_USER].CopyFrom(tf.make_tensor_proto(np.array(chunk, dtype=object)))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    os.replace(temp, path)
    return path
