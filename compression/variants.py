"""Orchestration: the networks of every configured variant, produced one after another.

    full ─┬─ int8                      (row-wise int8 tables of the trained networks)
          ├─ pruned ─── pruned_int8    (TF-MOT magnitude pruning, fine-tuned, stripped)
          ├─ qat ────── qat_int8       (TF-MOT quantization-aware training of the Dense layers)
          └─ distilled ─ distilled_int8 (a small student trained on the teacher's scores)

An `_int8` variant stores every embedding table of its networks as `Int8Embedding` and the
catalog's candidate embeddings of its serving model as int8 (`Variant.int8_candidates`).
Variants are yielded lazily so that each can be exported and measured before the next is built.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Dict, Iterator

from compression import config as C
from compression import distillation, int8, pruning, qat
from compression.finetune import TrainingData
from trainer import export
from trainer.config import TrainerConfig

DESCRIPTIONS = {
    C.FULL: "trained float32 networks (reference)",
    C.INT8: "row-wise int8 embedding tables + int8 candidate embeddings",
    C.PRUNED: "magnitude pruning of Dense + Embedding weights, fine-tuned",
    C.PRUNED_INT8: "pruned, then row-wise int8 tables",
    C.QAT: "quantization-aware training of the Dense layers (int8 weight grid)",
    C.QAT_INT8: "QAT, then row-wise int8 tables",
    C.DISTILLED: "small student distilled from the full model",
    C.DISTILLED_INT8: "distilled student with row-wise int8 tables",
}
BASE_OF_INT8 = {C.INT8: C.FULL, C.PRUNED_INT8: C.PRUNED, C.QAT_INT8: C.QAT,
                C.DISTILLED_INT8: C.DISTILLED}


@dataclasses.dataclass(frozen=True)
class Variant:
    """One variant's networks and how its serving model stores the catalog embeddings."""

    name: str
    networks: export.Networks
    int8_candidates: bool
    description: str


def int8_networks(networks: export.Networks) -> export.Networks:
    """Copies of the three networks with row-wise int8 embedding tables."""
    return export.Networks(int8.quantize_embeddings(networks.query_tower),
                           int8.quantize_embeddings(networks.candidate_tower),
                           int8.quantize_embeddings(networks.ranking_model))


def produce_variants(full: export.Networks, data: TrainingData, trainer_cfg: TrainerConfig,
                     cfg: C.CompressionConfig) -> Iterator[Variant]:
    """Yields the full model first, then each variant of `cfg.built_variants`, in that order.

    A variant's base (e.g. `pruned` for `pruned_int8`) is built once, even when the base
    itself is not among `cfg.built_variants`.

    Args:
      full: the trained networks (left unchanged).
      data: training batches for fine-tuning and distillation.
      trainer_cfg: the Trainer's hyperparameters.
      cfg: the compression settings.
    """
    builders: Dict[str, Callable[[], export.Networks]] = {
        C.PRUNED: lambda: pruning.prune_networks(full, data, trainer_cfg, cfg),
        C.QAT: lambda: qat.qat_networks(full, data, trainer_cfg, cfg),
        C.DISTILLED: lambda: distillation.distill(full, data, trainer_cfg, cfg),
    }
    built: Dict[str, export.Networks] = {C.FULL: full}

    def networks_of(name: str) -> export.Networks:
        if name not in built:
            if name in BASE_OF_INT8:
                built[name] = int8_networks(networks_of(BASE_OF_INT8[name]))
            else:
                built[name] = builders[name]()
        return built[name]

    yield Variant(C.FULL, full, False, DESCRIPTIONS[C.FULL])
    for name in cfg.built_variants:
        print(f"compression: building variant {name!r} ({DESCRIPTIONS[name]})", flush=True)
        yield Variant(name, networks_of(name), name in BASE_OF_INT8, DESCRIPTIONS[name])
