"""TFLite exports of the query tower and the ranking model, for on-device use.

Two modes:

* `dynamic_range`: weights stored as int8, activations computed in float.
* `full_integer`: weights and activations int8 (builtin int8 kernels only), activation ranges
  calibrated on a representative set of transformed training examples; the model's inputs and
  outputs stay float32 / int64 so that callers feed the same features.

`TFLiteNetwork` runs an exported model on batches of features (the interpreter is resized to
each batch) so that the exports can be measured and evaluated like the Keras networks.
"""

from __future__ import annotations

import os
from typing import Dict, Iterator, List, Mapping, Sequence

import numpy as np
import tensorflow as tf

from compression.config import TFLITE_MODES

DYNAMIC_RANGE, FULL_INTEGER = TFLITE_MODES


def representative_examples(dataset: tf.data.Dataset, names: Sequence[str],
                            count: int) -> List[Dict[str, np.ndarray]]:
    """Up to `count` single examples (batch of one, numpy) of the features `names`.

    Raises:
      ValueError: `dataset` yields no example.
    """
    examples: List[Dict[str, np.ndarray]] = []
    for batch in dataset:
        size = int(batch[names[0]].shape[0])
        for row in range(size):
            examples.append({name: batch[name][row:row + 1].numpy() for name in names})
            if len(examples) == count:
                return examples
    if not examples:
        raise ValueError("no representative examples: the dataset is empty")
    return examples


def convert(network: tf.keras.Model, mode: str,
            representative: Sequence[Mapping[str, np.ndarray]] = ()) -> bytes:
    """The TFLite flatbuffer of a functional network.

    Args:
      network: a query tower or ranking model (dict inputs).
      mode: `dynamic_range` or `full_integer`.
      representative: calibration examples (required for `full_integer`).

    Raises:
      ValueError: unknown mode, or `full_integer` without representative examples.
    """
    if mode not in TFLITE_MODES:
        raise ValueError(f"unknown TFLite mode {mode!r} (known: {TFLITE_MODES})")
    converter = tf.lite.TFLiteConverter.from_keras_model(network)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == FULL_INTEGER:
        if not representative:
            raise ValueError("full-integer quantization needs representative examples")
        names = network.input_names

        def examples() -> Iterator[Dict[str, np.ndarray]]:
            for example in representative:
                yield {name: example[name] for name in names}

        converter.representative_dataset = examples
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return converter.convert()


def write(content: bytes, path: str) -> str:
    """Writes a flatbuffer to `path` (parent folders created); returns `path`."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(content)
    return path


class TFLiteNetwork:
    """Runs a TFLite export of a network on feature batches.

    Args:
      path: the .tflite file.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._interpreter = tf.lite.Interpreter(model_path=path)
        signatures = self._interpreter.get_signature_list()
        if len(signatures) != 1:
            raise ValueError(f"{path}: expected one signature, found {list(signatures)}")
        (self._key, spec), = signatures.items()
        self.input_names = list(spec["inputs"])
        self._output = spec["outputs"][0]
        self._runner = self._interpreter.get_signature_runner(self._key)

    def __call__(self, features: Mapping[str, np.ndarray], batch_size: int = 256) -> np.ndarray:
        """Outputs for every row of `features` (name -> [N, ...] array), computed in batches."""
        missing = [name for name in self.input_names if name not in features]
        if missing:
            raise KeyError(f"{self.path}: missing input features {missing}")
        n = len(features[self.input_names[0]])
        outputs = []
        for start in range(0, n, batch_size):
            batch = {name: np.ascontiguousarray(features[name][start:start + batch_size])
                     for name in self.input_names}
            outputs.append(self._runner(**batch)[self._output])
        return np.concatenate(outputs) if outputs else np.zeros((0,), np.float32)
