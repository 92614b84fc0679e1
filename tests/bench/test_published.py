"""Published anchors and the verdict a report prints beside them."""

from __future__ import annotations

import pytest

from bench.models import list_models
from bench.published import ANCHORS, Anchor, published_accuracy, published_anchor, verdict


def test_every_anchor_names_a_registered_model_and_its_source():
    for (_, _, model), anchor in ANCHORS.items():
        assert model in list_models()
        assert anchor.source and anchor.protocol


def test_the_neural_cde_table_is_in_with_its_stds():
    ncde = published_anchor("character-trajectories", "70% missing", "ncde")
    assert (ncde.mean, ncde.std, ncde.runs) == (99.4, 0.4, 5)
    assert ncde.text() == "99.4 ± 0.4"
    assert published_anchor("character-trajectories", "30% missing", "gru-decay").mean == 93.2
    assert published_accuracy("character-trajectories", "100Hz->200Hz", "lmu") == (6.0, ANCHORS[
        ("character-trajectories", "100Hz->200Hz", "lmu")].source)
    assert published_anchor("character-trajectories", "30% missing", "gru-d") is None  # Che et al.'s: not the row


@pytest.mark.parametrize(("anchor", "honest", "reference", "expected"), [
    (Anchor(90.0, "s", "p"), 88.1, None, "reproduced"),          # within 2 points
    (Anchor(90.0, "s", "p", std=8.4), 82.0, None, "reproduced"),  # within the published std
    (Anchor(90.0, "s", "p"), 80.0, 91.5, "reproduced"),           # the reference selection is within 2
    (Anchor(90.0, "s", "p"), 80.0, 95.0, "between our selections"),
    (Anchor(90.0, "s", "p"), 80.0, 85.0, "off by -5.0 (reference)"),
    (Anchor(90.0, "s", "p"), 95.0, None, "off by +5.0"),
    (Anchor(90.0, "s", "p", std=0.3), 92.1, None, "off by +2.1"),
])  # fmt: skip
def test_verdict(anchor, honest, reference, expected):
    assert verdict(anchor, honest, reference) == expected
