"""`CompressionConfig`: which compressed variants to build, how, and the quality budget."""

from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

from core.config_loader import ConfigError

FULL = "full"
PRUNED = "pruned"
QAT = "qat"
INT8 = "int8"
PRUNED_INT8 = "pruned_int8"
QAT_INT8 = "qat_int8"
DISTILLED = "distilled"
DISTILLED_INT8 = "distilled_int8"
VARIANTS = (PRUNED, QAT, INT8, PRUNED_INT8, QAT_INT8, DISTILLED, DISTILLED_INT8)
TFLITE_MODES = ("dynamic_range", "full_integer")
# The selection rule's likely winners, built by default (the rest only with `sweep`). The rule
# picks the smallest *servable* variant within the quality budget, so:
# - TFLite exports never win (not servable by TF Serving);
# - each float variant (pruned, qat, distilled) is beaten by its `_int8` version: the same
#   networks with int8 tables are smaller, and row-wise int8 moved Recall@20 / NDCG@10 by at most
#   0.1 % on every measured data set (BENCHMARKS.md "Compression"), far inside the 1 % budget;
# - of the int8 versions, `distilled_int8` is the smallest on every measured data set
#   (ml-latest-small, synthetic, synthetic-1m), within the budget and chosen on all three;
#   `int8` needs no training, stays within rounding of the full model, and wins whenever the
#   student misses the budget. `pruned_int8` lost 16-22 % Recall@20 on both synthetic data sets;
#   `qat_int8` is at most 2.5 % smaller than `int8` (QAT's int8 grid pays off only in TFLite)
#   and missed the budget on both synthetic data sets. Those two can still win on other data,
#   which a sweep (`sweep`, `recsys run --compression-sweep`) shows.
CANDIDATES = (INT8, DISTILLED_INT8)


class CompressionConfigError(ConfigError):
    """A compression setting is invalid; the message names the field."""


@dataclasses.dataclass(frozen=True)
class CompressionConfig:
    """Settings of the compression stage.

    Attributes:
      variants: compressed variants to build (from `VARIANTS`); the full model is always
        measured as the reference. None (the default): the selection's likely winners
        (`CANDIDATES`), or every variant with `sweep`.
      sweep: build and measure every variant of `VARIANTS` and every TFLite mode of
        `TFLITE_MODES` (for a size/quality study), not only the likely winners; exclusive
        with an explicit `variants` or `tflite_modes`.
      target_sparsity: final fraction of zero weights in every pruned Dense kernel and
        Embedding table.
      sparsity_overrides: (layer name, sparsity) pairs that replace `target_sparsity` for
        the named layers (0.0 leaves a layer unpruned).
      pruning_frequency: steps between two mask updates of the polynomial-decay schedule.
      pruning_ramp: share of the fine-tuning steps over which sparsity ramps up from 0 to
        the target; the remaining steps recover at the final sparsity.
      finetune_epochs: epochs of fine-tuning of the pruned and QAT networks.
      finetune_learning_rate_scale: fine-tuning learning rate as a share of the Trainer's.
      student_embedding_dim / student_tower_layers / student_ranking_layers: the
        distilled student's size.
      student_epochs: epochs of student training (retrieval and ranking each).
      distillation_temperature: softening temperature of the teacher's in-batch logits.
      distillation_alpha: weight of the teacher's targets (1 - alpha on the true labels).
      quality_budget: largest relative drop of every `budget_metrics` value, vs the full
        model, that a variant may have to be selected.
      budget_metrics: two-stage metrics the budget applies to.
      tflite_modes: TFLite exports of the query tower and the ranking model. None (the
        default): none (TFLite never wins the selection), or every mode with `sweep`.
      representative_examples: transformed training examples fed to full-integer TFLite
        calibration.
      latency_repeats: timed calls per batch size (the median is reported).
      max_eval_users: evaluate at most this many users (None: all).
      seed: seed of the fine-tuning and student training.
    """

    variants: Optional[Tuple[str, ...]] = None
    sweep: bool = False
    target_sparsity: float = 0.8
    sparsity_overrides: Tuple[Tuple[str, float], ...] = ()
    pruning_frequency: int = 10
    pruning_ramp: float = 0.6
    finetune_epochs: int = 2
    finetune_learning_rate_scale: float = 0.5
    student_embedding_dim: int = 8
    student_tower_layers: Tuple[int, ...] = (32,)
    student_ranking_layers: Tuple[int, ...] = (32, 16)
    student_epochs: int = 5
    distillation_temperature: float = 2.0
    distillation_alpha: float = 0.5
    quality_budget: float = 0.01
    budget_metrics: Tuple[str, ...] = ("recall_at_20", "ndcg_at_10")
    tflite_modes: Optional[Tuple[str, ...]] = None
    representative_examples: int = 512
    latency_repeats: int = 20
    max_eval_users: Optional[int] = 5000
    seed: int = 11

    def __post_init__(self) -> None:
        for name in ("variants", "tflite_modes"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, tuple(value))
        object.__setattr__(self, "budget_metrics", tuple(self.budget_metrics))
        overrides = tuple((str(name), float(value)) for name, value in self.sparsity_overrides)
        object.__setattr__(self, "sparsity_overrides", overrides)
        _require(isinstance(self.sweep, bool), f"sweep must be true or false, got {self.sweep!r}")
        explicit = [name for name in ("variants", "tflite_modes") if getattr(self, name) is not None]
        _require(not (self.sweep and explicit),
                 f"sweep builds every variant and TFLite mode: it cannot be combined with an explicit "
                 f"{' and '.join(explicit)} (drop them or set sweep false)")
        unknown = [v for v in self.built_variants if v not in VARIANTS]
        _require(not unknown, f"variants: unknown {unknown} (known: {', '.join(VARIANTS)})")
        _require(len(set(self.built_variants)) == len(self.built_variants), "variants: listed twice")
        bad_modes = [m for m in self.built_tflite_modes if m not in TFLITE_MODES]
        _require(not bad_modes, f"tflite_modes: unknown {bad_modes} (known: {TFLITE_MODES})")
        _require(0.0 <= self.target_sparsity < 1.0, "target_sparsity must lie in [0, 1)")
        _require(all(0.0 <= s < 1.0 for _, s in overrides), "sparsity_overrides must lie in [0, 1)")
        _require(self.pruning_frequency >= 1, "pruning_frequency must be >= 1")
        _require(0.0 < self.pruning_ramp <= 1.0, "pruning_ramp must lie in (0, 1]")
        _require(self.finetune_epochs >= 1, "finetune_epochs must be >= 1")
        _require(self.finetune_learning_rate_scale > 0, "finetune_learning_rate_scale must be > 0")
        _require(self.student_embedding_dim >= 1, "student_embedding_dim must be >= 1")
        _require(self.student_epochs >= 1, "student_epochs must be >= 1")
        _require(self.distillation_temperature > 0, "distillation_temperature must be > 0")
        _require(0.0 <= self.distillation_alpha <= 1.0, "distillation_alpha must lie in [0, 1]")
        _require(self.quality_budget >= 0, "quality_budget must be >= 0")
        _require(bool(self.budget_metrics), "budget_metrics must name at least one metric")
        _require(self.representative_examples >= 1, "representative_examples must be >= 1")
        _require(self.latency_repeats >= 1, "latency_repeats must be >= 1")
        _require(self.max_eval_users is None or self.max_eval_users >= 1,
                 "max_eval_users must be >= 1 or None")

    @property
    def built_variants(self) -> Tuple[str, ...]:
        """The compressed variants this run builds: `variants`, else `CANDIDATES` or, with
        `sweep`, every variant."""
        if self.variants is not None:
            return self.variants
        return VARIANTS if self.sweep else CANDIDATES

    @property
    def built_tflite_modes(self) -> Tuple[str, ...]:
        """The TFLite modes this run exports: `tflite_modes`, else none or, with `sweep`, all."""
        if self.tflite_modes is not None:
            return self.tflite_modes
        return TFLITE_MODES if self.sweep else ()

    def not_swept(self) -> Tuple[str, ...]:
        """Record names (variants, then `tflite_<mode>`) a sweep would add that this run skips."""
        variants = [v for v in VARIANTS if v not in self.built_variants]
        modes = [f"tflite_{m}" for m in TFLITE_MODES if m not in self.built_tflite_modes]
        return tuple(variants + modes)

    def sparsity_of(self, layer_name: str) -> float:
        """The configured final sparsity of the layer called `layer_name`."""
        return dict(self.sparsity_overrides).get(layer_name, self.target_sparsity)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise CompressionConfigError(message)
