"""The master scale: PDO scores, grades, classes and the checks on a scale file."""

from __future__ import annotations

import math

import numpy as np
import pytest
import yaml
from pydantic import ValidationError

from training.master_scale import DEFAULT_PATH, MasterScale


@pytest.fixture(scope="module")
def scale() -> MasterScale:
    return MasterScale.load()


def test_default_scale_has_seven_plus_grades_a_default_grade_and_four_classes(scale):
    assert len(scale.live_grades) >= 7
    assert scale.default_grade.risk_class == "D"
    assert {g.risk_class for g in scale.live_grades} == {"A", "B", "C", "D"}


def test_points_to_double_odds(scale):
    pd_at_base = 1 / (1 + 50)  # 50:1 good:bad
    assert scale.score([pd_at_base])[0] == 600
    # doubling the good:bad odds adds 20 points
    odds = np.array([50.0, 100.0, 200.0])
    scores = scale.score_float(1 / (1 + odds))
    np.testing.assert_allclose(np.diff(scores), [20.0, 20.0])
    np.testing.assert_allclose(scale.pd_from_score(scores), 1 / (1 + odds))


def test_score_falls_and_grade_and_class_rise_with_pd(scale):
    p = np.geomspace(1e-5, 0.99, 400)
    assert np.all(np.diff(scale.score(p)) <= 0)
    assert np.all(np.diff(scale.grade_index(p)) >= 0)
    classes = scale.risk_class(p)
    assert np.all(np.diff(["ABCD".index(c) for c in classes]) >= 0)


def test_grade_boundaries_are_half_open(scale):
    g = scale.live_grades[3]
    assert scale.grade([g.pd_min])[0] == g.grade
    assert scale.grade([g.pd_max])[0] == scale.live_grades[4].grade


def test_pd_floor_applies(scale):
    assert scale.floor([0.0])[0] == scale.pd_floor
    assert scale.score([0.0])[0] == scale.score([scale.pd_floor])[0]


def test_configurable_pdo():
    doc = yaml.safe_load(DEFAULT_PATH.read_text(encoding="utf-8"))
    doc["score"] = {"base_score": 500, "base_odds": 20.0, "pdo": 50.0}
    custom = MasterScale.model_validate(doc)
    assert custom.score([1 / 21])[0] == 500
    assert custom.factor == pytest.approx(50 / math.log(2))


def test_yaml_round_trip(scale):
    again = MasterScale.from_yaml(scale.to_yaml())
    assert again == scale


@pytest.mark.parametrize(
    "break_it, message",
    [
        (lambda d: d["grades"].pop(2), "contiguous"),
        (lambda d: d["grades"].__setitem__(slice(0, 3), []), "at least 7"),
        (lambda d: d["grades"][4].__setitem__("class", "A"), "class falls"),
        (lambda d: d["grades"][-1].__setitem__("default", False), "exactly one default"),
        (lambda d: d.__setitem__("colour", "red"), "colour"),
        (lambda d: d["score"].__setitem__("pod", 20), "pod"),
    ],
)
def test_bad_scales_are_rejected(break_it, message):
    doc = yaml.safe_load(DEFAULT_PATH.read_text(encoding="utf-8"))
    break_it(doc)
    with pytest.raises(ValidationError, match=message):
        MasterScale.model_validate(doc)


def test_table_lists_score_ranges(scale):
    rows = scale.table()
    live = [r for r in rows if not r["default"]]
    assert live[0]["score_max"] > live[-1]["score_min"]
    for upper, lower in zip(live, live[1:]):
        assert upper["score_min"] == lower["score_max"] + 1
