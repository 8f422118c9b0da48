"""Warm start of a pipeline run from the previous blessed model's networks.

A new pipeline run on new spans has new vocabularies: new users and items get rows, and the
rows of known ids move. `warm_start_networks` copies the previous weights into freshly built
networks:

* an embedding fed by a vocabulary input (`VOCABULARY_INPUTS`) is copied row by row through the
  tokens: the row of every token present in both vocabularies, the OOV row(s) and the padding
  row; rows of new tokens keep their fresh initialisation;
* every other layer with the same name and weight shapes is copied whole; the rest (a changed
  architecture) keeps its initialisation and is reported.

The vocabularies of a trained model are saved beside its networks with `save_vocabularies` so
that the next run can map its rows.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Dict, List, Mapping, Sequence

import numpy as np
import tensorflow as tf

from core import features as F
from trainer.towers import embedding_input

VOCABULARIES_FILE = "vocabularies.json"

# Input feature -> (vocabulary name, shift of its values: 1 where 0 is the padding token).
VOCABULARY_INPUTS = {
    F.USER_ID_XF: (F.USER_ID_VOCAB, 0),
    F.ITEM_ID_XF: (F.ITEM_ID_VOCAB, 0),
    F.USER_HISTORY: (F.ITEM_ID_VOCAB, 1),
    F.USER_GENDER_XF: (F.GENDER_VOCAB, 0),
    F.USER_OCCUPATION_XF: (F.OCCUPATION_VOCAB, 0),
    F.ITEM_GENRES_XF: (F.GENRE_VOCAB, 1),
    F.ITEM_TITLE_XF: (F.TITLE_TOKEN_VOCAB, 1),
}


@dataclasses.dataclass
class WarmStartReport:
    """What was carried over: layers copied whole, embeddings remapped, layers left fresh."""

    copied: List[str] = dataclasses.field(default_factory=list)
    remapped: Dict[str, Dict[str, int]] = dataclasses.field(default_factory=dict)
    fresh: List[str] = dataclasses.field(default_factory=list)


def vocabularies(tf_transform_output) -> Dict[str, List[str]]:
    """The token lists of every vocabulary an embedding reads."""
    names = sorted({name for name, _ in VOCABULARY_INPUTS.values()})
    return {name: [t.decode() if isinstance(t, bytes) else str(t) for t in tf_transform_output.vocabulary_by_name(name)]
            for name in names}


def save_vocabularies(tf_transform_output, model_dir: str) -> str:
    """Writes the vocabularies next to the trained networks; returns the file path."""
    path = os.path.join(model_dir, VOCABULARIES_FILE)
    tf.io.gfile.makedirs(model_dir)
    with tf.io.gfile.GFile(path, "w") as handle:
        handle.write(json.dumps(vocabularies(tf_transform_output)))
    return path


def load_vocabularies(model_dir: str) -> Dict[str, List[str]]:
    """Reads `save_vocabularies`' file (FileNotFoundError naming it when absent)."""
    path = os.path.join(model_dir, VOCABULARIES_FILE)
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"{path} not found: the previous model was saved without its vocabularies")
    with tf.io.gfile.GFile(path) as handle:
        return json.loads(handle.read())


def remap_rows(old_table: np.ndarray, new_table: np.ndarray, old_tokens: Sequence[str],
               new_tokens: Sequence[str], shift: int) -> Dict[str, int]:
    """Copies rows of shared tokens, padding and OOV rows from `old_table` into `new_table`.

    Row layout: [padding rows (shift)] [one row per token] [OOV rows to the end].

    Returns:
      Counts: ``kept`` token rows copied, ``new`` token rows left fresh.
    """
    old_index = {token: i for i, token in enumerate(old_tokens)}
    pairs = [(j + shift, old_index[t] + shift) for j, t in enumerate(new_tokens) if t in old_index]
    if pairs:
        targets, sources = map(list, zip(*pairs))
        new_table[targets] = old_table[sources]
    new_table[:shift] = old_table[:shift]
    old_oov = old_table[len(old_tokens) + shift:]
    new_oov = slice(len(new_tokens) + shift, len(new_tokens) + shift + len(old_oov))
    new_table[new_oov] = old_oov[: new_table[new_oov].shape[0]]
    return {"kept": len(pairs), "new": len(new_tokens) - len(pairs)}


def warm_start_networks(previous: Mapping[str, tf.keras.Model], previous_vocabularies: Mapping[str, Sequence[str]],
                        target: Mapping[str, tf.keras.Model], target_vocabularies: Mapping[str, Sequence[str]]) -> WarmStartReport:
    """Copies the weights of `previous` networks into `target` networks (see the module docstring).

    Args:
      previous / target: network name -> functional network (`trainer.export.Networks.as_dict()`).
      previous_vocabularies / target_vocabularies: vocabulary name -> tokens (`vocabularies`).

    Returns:
      The report of what was copied.
    """
    report = WarmStartReport()
    for name, network in target.items():
        old_layers = {layer.name: layer for layer in previous[name].layers} if name in previous else {}
        for layer in network.layers:
            if not layer.weights or any(layer is other for other in target.values()):
                continue  # a network nested in another (multitask: the shared towers) is warm-started once
            where = f"{name}/{layer.name}"
            old = old_layers.get(layer.name)
            feature = embedding_input(layer)
            if old is not None and feature in VOCABULARY_INPUTS and embedding_input(old) == feature:
                vocab, shift = VOCABULARY_INPUTS[feature]
                (table,) = layer.get_weights()
                report.remapped[where] = remap_rows(old.get_weights()[0], table, previous_vocabularies[vocab],
                                                    target_vocabularies[vocab], shift)
                layer.set_weights([table])
            elif old is not None and [w.shape for w in old.weights] == [w.shape for w in layer.weights]:
                layer.set_weights(old.get_weights())
                report.copied.append(where)
            else:
                report.fresh.append(where)
    return report
