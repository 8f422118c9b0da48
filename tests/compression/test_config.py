"""CompressionConfig validation and its JSON form (as the component receives it)."""

from __future__ import annotations

import pytest

from compression.config import CompressionConfig, CompressionConfigError
from core.config_loader import from_dict


def test_from_json_values_gives_tuples_and_overrides():
    cfg = from_dict(CompressionConfig, {"variants": ["int8"], "sparsity_overrides": [["a", 0.5]]})
    assert cfg.variants == ("int8",)
    assert cfg.sparsity_of("a") == 0.5 and cfg.sparsity_of("b") == cfg.target_sparsity


@pytest.mark.parametrize("values, field", [
    ({"variants": ("int4",)}, "variants"),
    ({"variants": ("int8", "int8")}, "variants"),
    ({"target_sparsity": 1.0}, "target_sparsity"),
    ({"sparsity_overrides": (("a", -0.1),)}, "sparsity_overrides"),
    ({"tflite_modes": ("float16",)}, "tflite_modes"),
    ({"distillation_alpha": 1.5}, "distillation_alpha"),
    ({"quality_budget": -0.01}, "quality_budget"),
    ({"max_eval_users": 0}, "max_eval_users"),
])
def test_bad_values_name_the_field(values, field):
    with pytest.raises(CompressionConfigError, match=field):
        CompressionConfig(**values)


def test_json_round_trip_as_the_component_receives_it():
    import dataclasses
    import json

    cfg = CompressionConfig(variants=("int8", "distilled"), sparsity_overrides=(("user_id_embedding", 0.5),),
                            max_eval_users=None)
    assert from_dict(CompressionConfig, json.loads(json.dumps(dataclasses.asdict(cfg)))) == cfg


def test_the_stage_refuses_a_budget_metric_it_would_not_compute(tmp_path):
    from components.compress_model import compress_model
    from trainer.serving_model import ServingOptions

    with pytest.raises(ValueError, match="recall_at_20"):
        compress_model("unused", "unused", [], [], [], [], str(tmp_path / "m"), str(tmp_path / "r"),
                       None, CompressionConfig(), ServingOptions(), cutoffs=(10, 50))
