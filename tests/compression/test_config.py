"""CompressionConfig validation and its JSON form (as the component receives it)."""

from __future__ import annotations

import pytest

from pipeline.config import from_dict
from trainer.compression.config import CompressionConfig, CompressionConfigError


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
