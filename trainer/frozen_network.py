"""A Keras network held by a serving `tf.Module` as its variables and a call, not as a Keras object.

`tf.saved_model.save` re-serialises every Keras model it finds among a module's attributes: it
traces each layer's call functions and writes Keras metadata, which takes most of an export's
time and is never used by the signatures (they call the network directly). A `FrozenNetwork`
tracks only the network's variables (so the checkpoint holds them and the signatures' captures
resolve on load) and keeps the Keras model in a closure, out of the object graph. The network
keeps computing with its current weights: training it in place (the online learner) changes
what the wrapper returns.
"""

from __future__ import annotations

from typing import List, Mapping

import tensorflow as tf


class FrozenNetwork(tf.Module):
    """A Keras network seen as its variables and a function.

    Args:
      model: the network (a functional Keras model; its inputs a dict of named features or one
        tensor).
    """

    def __init__(self, model: tf.keras.Model) -> None:
        super().__init__(name=f"frozen_{model.name}")
        self.network_variables = list(model.variables)
        self.input_names: List[str] = list(model.input_names)
        # A closure, not an attribute holding the model: the Keras object is neither tracked nor saved.
        self._forward = lambda inputs: model(inputs, training=False)

    def __call__(self, inputs, training: bool = False) -> tf.Tensor:
        """The network's output on `inputs` (inference mode whatever `training` says); a mapping
        of features is cut to the network's own inputs."""
        if isinstance(inputs, Mapping):
            inputs = {name: inputs[name] for name in self.input_names}
        return self._forward(inputs)
