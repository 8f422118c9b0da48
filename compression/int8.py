"""Row-wise int8 embedding tables: storage as int8 + a float32 scale per row, dequantised on lookup.

Each row ``w`` of a float table is stored as ``q = round(w / s)`` (int8 in [-127, 127]) with
``s = max|w| / 127``; a lookup gathers the int8 rows and their scales and returns
``float32(q) * s`` with stock ops only (GatherV2, Cast, Mul), so a SavedModel holding these
layers loads with plain `tf.saved_model.load` and runs on the stock TF Serving binary. The
per-element error is at most ``s / 2``, and zeros stay exactly zero (pruned tables keep their
sparsity). Tables shrink from 4 bytes to 1 byte per value (+ 4 bytes per row).

* `Int8Embedding`: the Keras layer (a drop-in for `Embedding`, mask semantics included).
* `quantize_embeddings`: a copy of a functional network with every `Embedding` replaced.
* `Int8Matrix`: a `tf.Module` holding an int8 matrix (the catalog's candidate embeddings),
  usable wherever a float tensor is expected.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np
import tensorflow as tf

keras = tf.keras
INT8_MAX = 127


def quantize_rows(matrix: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Symmetric per-row int8 quantisation.

    Args:
      matrix: float [V, D].

    Returns:
      (int8 [V, D] values, float32 [V] scales) with ``values * scales[:, None] ~ matrix``.

    Raises:
      ValueError: `matrix` is not 2-D or holds non-finite values.
    """
    matrix = np.asarray(matrix, dtype=np.float32)
    if matrix.ndim != 2:
        raise ValueError(f"expected a 2-D table, got shape {matrix.shape}")
    if not np.all(np.isfinite(matrix)):
        raise ValueError("cannot quantise a table holding NaN or infinite values")
    scale = np.abs(matrix).max(axis=1) / INT8_MAX if matrix.shape[1] else np.zeros(len(matrix))
    safe = np.where(scale > 0, scale, 1.0)[:, None]
    values = np.clip(np.rint(matrix / safe), -INT8_MAX, INT8_MAX).astype(np.int8)
    return values, scale.astype(np.float32)


def dequantize_rows(values: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """The float32 table that `values` and `scale` (from `quantize_rows`) stand for."""
    return values.astype(np.float32) * scale[:, None].astype(np.float32)


@keras.utils.register_keras_serializable(package="recsys_compression")
class Int8Embedding(keras.layers.Layer):
    """An `Embedding` whose table is stored row-wise as int8 + a float32 scale per row.

    Args:
      input_dim: number of rows.
      output_dim: embedding size.
      mask_zero: as in `Embedding`: index 0 is padding and masked for later layers.
    """

    def __init__(self, input_dim: int, output_dim: int, mask_zero: bool = False, **kwargs) -> None:
        kwargs.pop("dtype", None)  # the layer always outputs float32
        super().__init__(dtype="float32", **kwargs)
        if input_dim < 1 or output_dim < 1:
            raise ValueError(f"input_dim and output_dim must be >= 1, got {input_dim}, {output_dim}")
        self.input_dim = int(input_dim)
        self.output_dim = int(output_dim)
        self.mask_zero = bool(mask_zero)
        self.supports_masking = self.mask_zero

    def build(self, input_shape) -> None:
        self.quantized = self.add_weight(
            name="quantized", shape=(self.input_dim, self.output_dim), dtype=tf.int8,
            initializer="zeros", trainable=False,
        )
        self.scale = self.add_weight(
            name="scale", shape=(self.input_dim,), dtype=tf.float32, initializer="zeros",
            trainable=False,
        )
        super().build(input_shape)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        ids = tf.cast(inputs, tf.int32) if inputs.dtype not in (tf.int32, tf.int64) else inputs
        rows = tf.cast(tf.gather(self.quantized, ids), tf.float32)
        return rows * tf.expand_dims(tf.gather(self.scale, ids), -1)

    def compute_mask(self, inputs: tf.Tensor, mask=None):
        if not self.mask_zero:
            return None
        return tf.not_equal(inputs, 0)

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(input_shape).concatenate([self.output_dim])

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(input_dim=self.input_dim, output_dim=self.output_dim, mask_zero=self.mask_zero)
        return config

    def set_table(self, table: np.ndarray) -> None:
        """Quantises float table [input_dim, output_dim] into this (built) layer's weights."""
        table = np.asarray(table)
        if table.shape != (self.input_dim, self.output_dim):
            raise ValueError(f"{self.name}: table shape {table.shape} != {(self.input_dim, self.output_dim)}")
        values, scale = quantize_rows(table)
        self.set_weights([values, scale])

    def table(self) -> np.ndarray:
        """The dequantised float32 table."""
        return dequantize_rows(self.quantized.numpy(), self.scale.numpy())


def _replacement(layer: keras.layers.Layer) -> keras.layers.Layer:
    if type(layer) is keras.layers.Embedding:  # pylint: disable=unidiomatic-typecheck
        return Int8Embedding(layer.input_dim, layer.output_dim, mask_zero=layer.mask_zero, name=layer.name)
    return layer.__class__.from_config(layer.get_config())


def quantize_embeddings(model: keras.Model) -> keras.Model:
    """A copy of functional `model` with every `Embedding` stored as an `Int8Embedding`.

    Args:
      model: a functional Keras model (its weights are copied, not shared).

    Returns:
      The new functional model, same name, inputs and outputs.

    Raises:
      ValueError: `model` is not a functional model.
    """
    if not getattr(model, "_is_graph_network", False):
        raise ValueError(f"{model.name} is not a functional Keras model")
    clone = keras.models.clone_model(model, clone_function=_replacement)
    for layer in clone.layers:
        source = model.get_layer(layer.name)
        if isinstance(layer, Int8Embedding):
            layer.set_table(source.get_weights()[0])
        else:
            layer.set_weights(source.get_weights())
    return clone


def count_int8_layers(model: keras.Model) -> int:
    """Number of `Int8Embedding` layers of `model`."""
    return sum(isinstance(layer, Int8Embedding) for layer in model.layers)


class Int8Matrix(tf.Module):
    """A float32 [N, D] matrix stored as int8 rows + float32 row scales.

    Converting it to a tensor (e.g. passing it to `tf.matmul`) dequantises it with stock ops.

    Args:
      matrix: the float matrix to store.
      name: module name.
    """

    def __init__(self, matrix: np.ndarray, name: str = "int8_matrix") -> None:
        super().__init__(name=name)
        values, scale = quantize_rows(matrix)
        self.values = tf.Variable(values, trainable=False, name="values")
        self.scale = tf.Variable(scale, trainable=False, name="scale")

    def dequantize(self) -> tf.Tensor:
        """The float32 matrix."""
        return tf.cast(self.values, tf.float32) * tf.expand_dims(self.scale, 1)

    def gather(self, rows: tf.Tensor) -> tf.Tensor:
        """The float32 rows `rows` (any integer shape S): [*S, D], only those rows dequantised."""
        return tf.cast(tf.gather(self.values, rows), tf.float32) * tf.expand_dims(tf.gather(self.scale, rows), -1)


def _int8_matrix_to_tensor(value: Int8Matrix, dtype=None, name=None, as_ref=False) -> tf.Tensor:
    del name, as_ref
    if dtype is not None and dtype != tf.float32:
        raise ValueError(f"an Int8Matrix converts to float32, not {dtype}")
    return value.dequantize()


tf.register_tensor_conversion_function(Int8Matrix, _int8_matrix_to_tensor)
