"""Which variants `produce_variants` builds: the likely winners by default, all with a sweep."""

from __future__ import annotations

import pytest

from compression import config as C
from compression import distillation, pruning, qat, variants


@pytest.fixture
def builds(monkeypatch):
    """Replaces the trainings and the int8 conversion with recorders; returns the call log."""
    calls = []

    def recorder(kind):
        def build(networks, *_args):
            calls.append(kind)
            return (kind, networks)
        return build

    monkeypatch.setattr(pruning, "prune_networks", recorder(C.PRUNED))
    monkeypatch.setattr(qat, "qat_networks", recorder(C.QAT))
    monkeypatch.setattr(distillation, "distill", recorder(C.DISTILLED))
    monkeypatch.setattr(variants, "int8_networks", recorder("int8 of"))
    return calls


def _names(cfg):
    return [v.name for v in variants.produce_variants("full networks", None, None, cfg)]


def test_the_default_builds_exactly_the_candidates(builds):
    assert _names(C.CompressionConfig()) == [C.FULL, *C.CANDIDATES]
    assert builds == ["int8 of", C.DISTILLED, "int8 of"]  # no pruning, no QAT


def test_a_sweep_builds_every_variant_each_base_once(builds):
    assert _names(C.CompressionConfig(sweep=True)) == [C.FULL, *C.VARIANTS]
    assert sorted(builds) == sorted([C.PRUNED, C.QAT, C.DISTILLED] + ["int8 of"] * 4)


def test_the_int8_variants_are_flagged_and_built_on_their_base(builds):
    made = {v.name: v for v in variants.produce_variants("full networks", None, None, C.CompressionConfig())}
    assert made[C.DISTILLED_INT8].networks == ("int8 of", (C.DISTILLED, "full networks"))
    assert made[C.INT8].networks == ("int8 of", "full networks")
    assert made[C.DISTILLED_INT8].int8_candidates and not made[C.FULL].int8_candidates
