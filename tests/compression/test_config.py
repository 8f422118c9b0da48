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
    ({"sweep": True, "variants": ("int8",)}, "sweep .* explicit variants"),
    ({"sweep": True, "tflite_modes": ()}, "sweep .* explicit tflite_modes"),
    ({"sweep": "yes"}, "sweep must be true or false"),
])
def test_bad_values_name_the_field(values, field):
    with pytest.raises(CompressionConfigError, match=field):
        CompressionConfig(**values)


def test_the_default_builds_the_likely_winners_and_a_sweep_builds_everything():
    from compression import config as C

    default, sweep = CompressionConfig(), CompressionConfig(sweep=True)
    assert default.built_variants == C.CANDIDATES == ("int8", "distilled_int8")
    assert default.built_tflite_modes == ()
    assert default.not_swept() == ("pruned", "qat", "pruned_int8", "qat_int8", "distilled",
                                   "tflite_dynamic_range", "tflite_full_integer")
    assert sweep.built_variants == C.VARIANTS and sweep.built_tflite_modes == C.TFLITE_MODES
    assert sweep.not_swept() == ()
    chosen = CompressionConfig(variants=("pruned",), tflite_modes=("dynamic_range",))
    assert chosen.built_variants == ("pruned",) and chosen.built_tflite_modes == ("dynamic_range",)


def test_the_sweep_key_is_typed_and_exclusive_with_explicit_lists():
    from core.config_loader import ConfigError

    assert from_dict(CompressionConfig, {"sweep": True}, "compression").sweep is True
    with pytest.raises(ConfigError, match="compression.sweep: expected true or false"):
        from_dict(CompressionConfig, {"sweep": "yes"}, "compression")
    with pytest.raises(ConfigError, match="explicit variants"):
        from_dict(CompressionConfig, {"sweep": True, "variants": ["int8"]}, "compression")


def test_json_round_trip_as_the_component_receives_it():
    import dataclasses
    import json

    cfg = CompressionConfig(variants=("int8", "distilled"), sparsity_overrides=(("user_id_embedding", 0.5),),
                            max_eval_users=None)
    assert from_dict(CompressionConfig, json.loads(json.dumps(dataclasses.asdict(cfg)))) == cfg
    for default in (CompressionConfig(), CompressionConfig(sweep=True)):
        assert from_dict(CompressionConfig, json.loads(json.dumps(dataclasses.asdict(default)))) == default


def test_the_stage_refuses_a_budget_metric_it_would_not_compute(tmp_path):
    from components.compress_model import compress_model
    from trainer.serving_model import ServingOptions

    with pytest.raises(ValueError, match="recall_at_20"):
        compress_model("unused", "unused", [], [], [], [], str(tmp_path / "m"), str(tmp_path / "r"),
                       None, CompressionConfig(), ServingOptions(), cutoffs=(10, 50))
