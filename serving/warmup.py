"""Warmup requests in TF Serving's format: read them on load and replay them.

The file is ``<version>/assets.extra/tf_serving_warmup_requests``, a TFRecord file of
``PredictionLog`` protos whose ``predict_log.request`` is a ``PredictRequest``; the stock
``tensorflow_model_server`` replays the same file.  The exporter writes it on the not-yet-renamed
version directory (``trainer.warmup_requests``); the version manager replays the records on
every new version before it serves traffic (a failing record fails the load).
"""

from __future__ import annotations

import concurrent.futures
import os
from typing import List, Mapping, Tuple

from google.protobuf.message import DecodeError
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

from core.features import SERVING_SIGNATURE
from serving.errors import ServingError
from serving.signatures import LoadError, SignatureSpec, raise_if_unknown, validate_inputs
from serving.tensor_codec import to_ndarray
from serving.workers import WorkerPool
from trainer.warmup_requests import MAX_WARMUP_RECORDS, warmup_path


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
