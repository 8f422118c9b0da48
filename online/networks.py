"""Network surgery for online learning: reserved embedding rows for new ids, frozen wrappers.

Growth rule. The Transform vocabularies fix the id embedding tables; an id outside them maps to
the single OOV row. The online learner therefore rebuilds each network with extra rows after
the vocabulary (`with_reserved_rows`): ``reserve_users`` rows for user ids and
``reserve_items`` rows for item ids (in every table indexed by item: the candidate tower's id
embedding and the query tower's history bag). The k-th new id seen online gets row
``vocabulary size + OOV buckets + k``; new rows start as a copy of the OOV row, so a new id
starts out exactly like an unknown one and moves away from it as its events are learned.
Once a reserve is used up, further new ids keep the OOV row (they are learned by the next
pipeline run, whose Transform puts them into the vocabulary).

Compressed networks. The pushed networks may be a compressed variant whose embedding tables
are row-wise int8 (`compression.int8.Int8Embedding`: int8 values and a scale per row).
Gradients cannot move int8 values, so `dequantized` turns each such table back into a float
`Embedding` holding exactly the values the int8 layer computes (values x scale): the learner
starts from the served function itself. `Int8Grid.rounded` then puts those tables back on the
int8 grid (quantise, dequantise: `compression.int8.quantize_rows`) for the time of an
export, so every online version computes what the re-quantised int8 network computes; the
learner's own (float) weights are put back afterwards and keep learning. A row that no update
touched comes back bit for bit (quantising a dequantised row is exact).

The serving modules hold the networks as `trainer.frozen_network.FrozenNetwork`s.
"""

from __future__ import annotations

import contextlib
from typing import Dict, Iterator, List, Mapping, Sequence, Tuple

import numpy as np
import tensorflow as tf

from core import features as F
from compression import int8
from trainer.towers import embedding_input

keras = tf.keras


def item_indexed_inputs() -> Dict[str, int]:
    """Inputs holding item indices, and the shift of their values (history tokens are + 1)."""
    return {F.ITEM_ID_XF: 0, F.USER_HISTORY: 1}


def id_rows(model: keras.Model) -> Dict[str, int]:
    """Input name -> rows of the embedding table it feeds, for every directly embedded input."""
    return {name: layer.input_dim for layer in model.layers if (name := embedding_input(layer))}


def with_reserved_rows(model: keras.Model, extra_rows: Mapping[str, int]) -> keras.Model:
    """A network like `model` whose embeddings of the given inputs have extra rows.

    Only the grown Embedding layers are new; every other layer is shared with `model` (so layers
    revived from a SavedModel, whose classes cannot be rebuilt from their config, work too).

    Args:
      model: a functional network (it should not be trained on afterwards).
      extra_rows: input name -> rows appended to the embedding table that input feeds
        (inputs the model lacks are ignored).

    Returns:
      The new network; each new row is a copy of the old last (OOV) row.
    """
    grown = {layer.name: extra_rows[name] for layer in model.layers
             if (name := embedding_input(layer)) in extra_rows and extra_rows[name] > 0}
    tables = {}

    def clone(layer: keras.layers.Layer) -> keras.layers.Layer:
        if layer.name not in grown:
            return layer
        config = layer.get_config()
        config["input_dim"] = layer.input_dim + grown[layer.name]
        (table,) = layer.get_weights()
        tables[layer.name] = np.concatenate([table, np.repeat(table[-1:], grown[layer.name], axis=0)])
        return keras.layers.Embedding.from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone)
    for layer in copy.layers:
        if layer.name in tables:
            layer.set_weights([tables[layer.name]])
    return copy


def dequantized(model: keras.Model) -> Tuple[keras.Model, List[str]]:
    """`model` with every `Int8Embedding` replaced by a float `Embedding` of its dequantised table.

    Args:
      model: a functional network (left unchanged; layers that are not int8 are shared).

    Returns:
      (the network, names of the replaced layers); `model` itself when it has no int8 table.
    """
    tables = {layer.name: layer.table() for layer in model.layers if isinstance(layer, int8.Int8Embedding)}
    if not tables:
        return model, []

    def clone(layer: keras.layers.Layer) -> keras.layers.Layer:
        if layer.name not in tables:
            return layer
        return keras.layers.Embedding(layer.input_dim, layer.output_dim, mask_zero=layer.mask_zero, name=layer.name)

    copy = keras.models.clone_model(model, clone_function=clone)
    for layer in copy.layers:
        if layer.name in tables:
            layer.set_weights([tables[layer.name]])
    return copy, sorted(tables)


class Int8Grid:
    """Embedding tables that the served model stores as int8 (see the module docstring).

    Args:
      tables: the float variables of those tables (in the learner's networks).
    """

    def __init__(self, tables: Sequence[tf.Variable]) -> None:
        self.tables = list(tables)

    @classmethod
    def of(cls, models: Sequence[keras.Model], names: Sequence[str]) -> "Int8Grid":
        """The grid of the `Embedding` layers called `names` in any of `models`."""
        found = {}
        for model in models:
            for layer in model.layers:
                if layer.name in names and isinstance(layer, keras.layers.Embedding):
                    found[id(layer.embeddings)] = layer.embeddings
        return cls(list(found.values()))

    @contextlib.contextmanager
    def rounded(self) -> Iterator[None]:
        """Puts the tables on the int8 grid inside the block, their own values back after it."""
        kept = [table.numpy() for table in self.tables]
        try:
            for table, value in zip(self.tables, kept):
                table.assign(int8.dequantize_rows(*int8.quantize_rows(value)))
            yield
        finally:
            for table, value in zip(self.tables, kept):
                table.assign(value)
