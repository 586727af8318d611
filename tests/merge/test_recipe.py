"""Recipes: mergekit's YAML shape, defaults and lookups as in mergekit, clear errors."""

from __future__ import annotations

import pytest

from lineage.errors import SpecError, UnknownNameError
from lineage.merge import Recipe, load_recipe

TIES = """
merge_method: ties
base_model: org/base
models:
  - model: org/base
  - model: org/math
    parameters:
      weight: 1.0
      density: 0.5
  - model: org/code
    parameters:
      weight: 0.5
parameters:
  density: 0.3
  int8_mask: true
dtype: bfloat16
"""


def test_mergekit_recipe_resolves_per_model_then_global_then_default():
    plan = Recipe.from_yaml(TIES).plan()
    assert plan.base == "org/base"
    assert plan.inputs == ("org/math", "org/code")  # the listed base is not a task vector
    assert plan.kwargs["weight"] == [1.0, 0.5]
    assert plan.kwargs["density"] == [0.5, 0.3]  # org/code falls back to the global value
    assert plan.kwargs["normalize"] is True  # mergekit's default for ties
    assert plan.kwargs["lambda_"] == 1.0


@pytest.mark.parametrize(("method", "normalize", "rescale"), [
    ("task_arithmetic", False, False), ("ties", True, False), ("dare_ties", False, True),
    ("dare_linear", False, True), ("breadcrumbs", False, False), ("della", True, True),
])
def test_defaults_match_mergekit_registry(method, normalize, rescale):
    data = {"merge_method": method, "base_model": "b",
            "models": [{"model": "m", "parameters": {"weight": 1.0}}]}
    kwargs = Recipe.from_dict(data).plan().kwargs
    assert (kwargs["normalize"], kwargs["rescale"]) == (normalize, rescale)


def test_linear_default_normalize_is_true_and_needs_no_base():
    data = {"merge_method": "linear", "models": [
        {"model": "a", "parameters": {"weight": 1}}, {"model": "b", "parameters": {"weight": 3}}]}
    plan = Recipe.from_dict(data).plan()
    assert plan.kwargs == {"weight": [1.0, 3.0], "normalize": True}
    assert plan.base is None and plan.inputs == ("a", "b")


def test_roundtrip_through_yaml():
    r = Recipe.from_yaml(TIES)
    assert Recipe.from_yaml(r.to_yaml()) == r
    assert r.model_ids == ["org/base", "org/math", "org/code"]


def test_load_recipe_accepts_file_text_and_mapping(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(TIES)
    assert load_recipe(path) == load_recipe(TIES) == load_recipe(str(path))
    assert load_recipe(load_recipe(TIES).to_dict()) == load_recipe(TIES)
    with pytest.raises(SpecError, match="does not exist"):
        load_recipe(str(tmp_path / "missing.yaml"))


def test_unknown_method_lists_the_valid_ones():
    with pytest.raises(UnknownNameError) as e:
        Recipe.from_dict({"merge_method": "tie", "base_model": "b", "models": ["m"]})
    assert "merge method 'tie'" in str(e.value)
    assert "ties" in str(e.value) and "dare_linear" in str(e.value)


def test_unknown_parameter_lists_the_valid_ones():
    data = {"merge_method": "ties", "base_model": "b",
            "models": [{"model": "m", "parameters": {"weight": 1, "densty": 0.5}}]}
    with pytest.raises(UnknownNameError) as e:
        Recipe.from_dict(data)
    assert "'densty'" in str(e.value) and "density" in str(e.value)
    with pytest.raises(UnknownNameError, match="Valid ties parameters: .*lambda"):
        Recipe.from_dict({**data, "models": ["m"], "parameters": {"t": 0.5}})


def test_missing_required_weight_names_the_model():
    data = {"merge_method": "task_arithmetic", "base_model": "b", "models": ["m"]}
    with pytest.raises(SpecError, match="'weight' for model m: is required"):
        Recipe.from_dict(data)


def test_wrong_types_and_unsupported_shapes_are_refused():
    base = {"merge_method": "slerp", "base_model": "b", "models": ["b", "m"]}
    with pytest.raises(SpecError, match="expected a float"):
        Recipe.from_dict({**base, "parameters": {"t": "half"}})
    with pytest.raises(SpecError, match="expected a float"):
        Recipe.from_dict({**base, "parameters": {"t": [0, "half", 1]}})
    with pytest.raises(SpecError, match="mutually exclusive"):
        Recipe.from_dict({**base, "slices": []})
    with pytest.raises(SpecError, match="without base_model"):
        Recipe.from_dict({"merge_method": "ties", "models": ["m"], "parameters": {"weight": 1}})
    with pytest.raises(SpecError, match="exactly 1"):
        Recipe.from_dict({**base, "models": ["b", "m", "n"], "parameters": {"t": 0.5}})
    with pytest.raises(UnknownNameError, match="Valid dtypes"):
        Recipe.from_dict({**base, "parameters": {"t": 0.5}, "dtype": "fp9"})
    with pytest.raises(SpecError, match="not valid YAML"):
        Recipe.from_yaml("merge_method: [")
