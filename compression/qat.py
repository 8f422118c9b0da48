"""Quantization-aware training (TF-MOT, default 8-bit scheme) of the towers' Dense layers.

`Dense` layers are annotated with `quantize_annotate_layer` and the network is rebuilt with
`quantize_apply`; `Embedding`, pooling, normalisation and the DCN `Cross` layer stay float
(TF-MOT's default registry does not cover them). After fine-tuning with the Trainer's losses,
`to_float_network` writes the learned int8 weight grid back into a plain functional network
(each kernel replaced by its fake-quantised value), so the result saves, loads and serves with
no TF-MOT code; the full-integer TFLite export applies the learned activation ranges itself.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_model_optimization as tfmot

from compression.config import CompressionConfig
from compression.finetune import TrainingData, copy_network, finetune
from trainer import export
from trainer.config import TrainerConfig

keras = tf.keras
QUANTIZED_PREFIX = "quant_"


def quantize_aware(network: keras.Model) -> keras.Model:
    """A quantization-aware copy of `network` (Dense layers annotated, then applied).

    Raises:
      ValueError: `network` has no Dense layer to quantize.
    """
    def annotate(layer: keras.layers.Layer) -> keras.layers.Layer:
        if type(layer) is keras.layers.Dense:  # pylint: disable=unidiomatic-typecheck
            return tfmot.quantization.keras.quantize_annotate_layer(layer)
        return layer

    if not any(type(layer) is keras.layers.Dense for layer in network.layers):  # pylint: disable=unidiomatic-typecheck
        raise ValueError(f"{network.name} has no Dense layer for quantization-aware training")
    annotated = keras.models.clone_model(copy_network(network), clone_function=annotate)
    return tfmot.quantization.keras.quantize_apply(annotated)


def _short_name(variable) -> str:
    return variable.name.split(":")[0].split("/")[-1]


def quantized_weights(wrapper: keras.layers.Layer, template: keras.layers.Layer) -> list:
    """Values for `template`'s weights from a quantize-wrapped layer, quantized ones fake-quantised.

    The wrapper swaps its quantized weights (e.g. `kernel`) out of the inner layer, so they are
    taken from the wrapper's quantizers; the others (e.g. `bias`) from the inner layer.
    """
    quantized = {
        _short_name(weight): quantizer(weight, training=False, weights=quantizer_vars).numpy()
        for weight, quantizer, quantizer_vars in wrapper._weight_vars  # pylint: disable=protected-access
    }
    values = []
    for weight in template.weights:
        name = _short_name(weight)
        values.append(quantized[name] if name in quantized else getattr(wrapper.layer, name).numpy())
    return values


def to_float_network(qat_network: keras.Model, template: keras.Model) -> keras.Model:
    """A plain copy of `template` carrying the QAT network's (fake-quantised) weights.

    Args:
      qat_network: the network returned by `quantize_aware`, after fine-tuning.
      template: the float network it was made from (architecture only).
    """
    plain = copy_network(template)
    by_name = {layer.name: layer for layer in qat_network.layers}
    for layer in plain.layers:
        if not layer.weights:
            continue
        wrapper = by_name.get(QUANTIZED_PREFIX + layer.name)
        if wrapper is None:
            layer.set_weights(by_name[layer.name].get_weights())
        else:
            layer.set_weights(quantized_weights(wrapper, layer))
    return plain


def qat_networks(networks: export.Networks, data: TrainingData, trainer_cfg: TrainerConfig,
                 cfg: CompressionConfig) -> export.Networks:
    """Quantization-aware fine-tuned copies of the three networks, as plain float networks.

    Args:
      networks: the trained float networks (left unchanged).
      data: training batches.
      trainer_cfg: the Trainer's hyperparameters (losses, learning rates).
      cfg: fine-tuning settings.
    """
    originals = (networks.query_tower, networks.candidate_tower, networks.ranking_model)
    aware = export.Networks(*(quantize_aware(n) for n in originals))
    print("quantization-aware training: fine-tuning the Dense layers on the int8 grid", flush=True)
    finetune(aware, data, trainer_cfg, cfg.finetune_epochs, cfg.finetune_learning_rate_scale)
    trained = (aware.query_tower, aware.candidate_tower, aware.ranking_model)
    return export.Networks(*(to_float_network(q, t) for q, t in zip(trained, originals)))
