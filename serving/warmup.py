"""Warmup requests in TF Serving's format: write them beside an export, read them on load.

The file is ``<version>/assets.extra/tf_serving_warmup_requests``, a TFRecord file of
``PredictionLog`` protos whose ``predict_log.request`` is a ``PredictRequest``; the stock
``tensorflow_model_server`` replays the same file.  ``write_warmup_requests`` is called by the
exporter on the not-yet-renamed version directory; the version manager replays the records on
every new version before it serves traffic (a failing record fails the load).
"""

from __future__ import annotations

import concurrent.futures
import os
from typing import List, Mapping, Sequence, Tuple

from google.protobuf.message import DecodeError
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

from serving.errors import ServingError
from serving.signatures import LoadError, SignatureSpec, raise_if_unknown, validate_inputs
from serving.tensor_codec import to_ndarray, to_tensor_proto
from serving.workers import WorkerPool
from trainer.features import SERVING_INPUT_USER, SERVING_SIGNATURE

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
            request.inputs[SERVING_INPUT_USER].CopyFrom(
                to_tensor_proto(np.array(chunk, dtype=object)))
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    os.replace(temp, path)
    return path


def read_warmup_requests(saved_model_dir: str, max_records: int = MAX_WARMUP_RECORDS
                         ) -> List[predict_pb2.PredictRequest]:
    """Read the Predict requests of a version's warmup file.

    Args:
        saved_model_dir: the version directory.
        max_records: the most records accepted.

    Returns:
        The requests (empty when the version has no warmup file).

    Raises:
        LoadError: the file is corrupt, has too many records, or holds a non-Predict log.
    """
    import tensorflow as tf
    # the plain record reader, not tf.data: no eager dataset state is left behind per version
    from tensorflow.python.lib.io import tf_record

    path = warmup_path(saved_model_dir)
    if not os.path.exists(path):
        return []
    requests = []
    try:
        for record in tf_record.tf_record_iterator(path):
            if len(requests) >= max_records:
                raise LoadError(f"{path} has more than {max_records} warmup records")
            log = prediction_log_pb2.PredictionLog()
            log.ParseFromString(record)
            if log.WhichOneof("log_type") != "predict_log":
                raise LoadError(f"{path}: only predict_log warmup records are supported, "
                                f"got {log.WhichOneof('log_type')}")
            requests.append(log.predict_log.request)
    except (tf.errors.OpError, ValueError, DecodeError) as err:
        raise LoadError(f"cannot read warmup file {path}: {type(err).__name__}: {err}") from None
    return requests


def replay_warmup_requests(pool: WorkerPool, servable: Tuple[str, int], saved_model_dir: str,
                           specs: Mapping[str, SignatureSpec], max_records: int,
                           max_elements: int, timeout_s: float) -> int:
    """Run a version's warmup requests on its workers before it serves traffic.

    Args:
        pool: the worker pool the version is loaded in.
        servable: ``(model name, version)``.
        saved_model_dir: the version directory.
        specs: the version's signatures.
        max_records: the most records accepted.
        max_elements: the element limit applied to each request.
        timeout_s: how long one request may take.

    Returns:
        The number of requests replayed (per worker).

    Raises:
        LoadError: a record cannot be read, does not fit its signature, or fails to run.
    """
    requests = read_warmup_requests(saved_model_dir, max_records)
    workers = [0] if pool.shares_models else list(range(pool.num_workers))
    for index, request in enumerate(requests):
        name = request.model_spec.signature_name or SERVING_SIGNATURE
        try:
            spec = raise_if_unknown(specs, name)
            inputs = {k: to_ndarray(v, k, max_elements) for k, v in request.inputs.items()}
            validate_inputs(spec, inputs, max_elements)
        except ServingError as err:
            raise LoadError(f"warmup record {index} does not fit the model: {err.message}") from None
        for worker in workers:
            try:
                pool.run(worker, servable, name, inputs).result(timeout=timeout_s)
            except concurrent.futures.TimeoutError:
                raise LoadError(f"warmup record {index} timed out after {timeout_s:.0f}s") from None
            except Exception as err:  # the model failed on its own warmup data: a load error
                raise LoadError(f"warmup record {index} failed: {err}") from None
    return len(requests)
