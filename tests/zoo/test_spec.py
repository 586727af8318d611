"""Spec parsing and planning: pure, no training."""

from __future__ import annotations

import pytest

from lineage.errors import SpecError, UnknownNameError
from lineage.zoo import PRESETS, load_spec, parse_spec, plan_zoo
from lineage.zoo.tasks import get_task

MINI = {
    "name": "mini",
    "seed": 3,
    "cards": {"omit_base": 0.25, "wrong_base": 0.25},
    "trees": [{"arch": "vit", "branching": [2, 2], "relation": ["finetune", ["lora", "finetune"]]}],
}


def test_vthr_preset_has_the_motHer_shape():
    nodes = plan_zoo(load_spec("vthr"))
    assert len(nodes) == 210
    for split in ("ft", "lora"):
        part = [n for n in nodes if n.split == split]
        assert len(part) == 105
        assert sum(n.relation == "root" for n in part) == 5
        assert sorted({n.depth for n in part}) == [0, 1, 2]
        assert sum(n.depth == 2 for n in part) == 80
    ranks = {n.rank for n in nodes if n.relation == "lora"}
    assert ranks == {2, 4, 8}
    assert {n.relation for n in nodes if n.split == "ft"} == {"root", "finetune"}


def test_presets_cover_every_relation_and_architecture():
    tiny = plan_zoo(load_spec("tiny"))
    assert 12 <= len(tiny) <= 18
    mixed = plan_zoo(load_spec("mixed"))
    relations = {"root", "finetune", "lora", "adapter", "merge", "quantized", "reupload"}
    assert {n.relation for n in mixed} == relations
    assert {n.relation for n in tiny} == relations
    assert {n.arch for n in mixed} == {"vit", "llama", "gpt2"}
    assert {(n.arch, n.init) for n in mixed if n.relation == "root"} >= {
        ("vit", "hf"),
        ("vit", "torch"),
        ("llama", "hf"),
        ("llama", "torch"),
    }


def test_plan_is_ordered_and_reproducible():
    spec = parse_spec(MINI)
    nodes = plan_zoo(spec)
    seen: set[str] = set()
    for n in nodes:
        assert set(n.parents) <= seen, f"{n.id} comes before a parent"
        seen.add(n.id)
    again = plan_zoo(parse_spec(MINI))
    assert [vars(n) for n in again] == [vars(n) for n in nodes]
    other = plan_zoo(parse_spec({**MINI, "seed": 4}))
    assert [n.seed for n in other] != [n.seed for n in nodes]


def test_relations_per_depth_cycle_over_edges():
    nodes = plan_zoo(parse_spec({**MINI, "trees": [{**MINI["trees"][0], "adapters": False}]}))
    depth1 = [n.relation for n in nodes if n.depth == 1]
    depth2 = [n.relation for n in nodes if n.depth == 2]
    assert depth1 == ["finetune", "finetune"]
    assert depth2 == ["lora", "finetune", "lora", "finetune"]


def test_card_lies_follow_the_fractions():
    nodes = plan_zoo(parse_spec(MINI))
    non_roots = [n for n in nodes if n.parents]
    lies = [n.card_lie for n in non_roots]
    assert lies.count("omitted") == round(0.25 * len(non_roots))
    assert lies.count("wrong") == round(0.25 * len(non_roots))
    for n in non_roots:
        if n.card_lie == "wrong":
            assert n.card_base and not set(n.card_base) & set(n.parents)
            assert n.card_base[0] != n.id
        elif n.card_lie == "omitted":
            assert n.card_base == []
        else:
            assert n.card_base == n.parents


def test_yaml_toml_and_dict_give_the_same_hash(tmp_path):
    (tmp_path / "z.yaml").write_text(
        "name: mini\nseed: 3\ncards: {omit_base: 0.25, wrong_base: 0.25}\n"
        "trees:\n  - arch: vit\n    branching: [2, 2]\n    relation: [finetune, [lora, finetune]]\n"
    )
    (tmp_path / "z.toml").write_text(
        'name = "mini"\nseed = 3\n[cards]\nomit_base = 0.25\nwrong_base = 0.25\n'
        '[[trees]]\narch = "vit"\nbranching = [2, 2]\n'
        'relation = ["finetune", ["lora", "finetune"]]\n'
    )
    expected = parse_spec(MINI).hash()
    assert load_spec(tmp_path / "z.yaml").hash() == expected
    assert load_spec(str(tmp_path / "z.toml")).hash() == expected
    assert parse_spec({**MINI, "seed": 4}).hash() != expected


def test_spec_errors_say_what_and_how():
    with pytest.raises(UnknownNameError) as err:
        parse_spec({"name": "x", "trees": [{"arch": "resnet"}]})
    assert str(err.value) == (
        "trees[0].arch 'resnet': is not a known trees[0].arch. "
        "Valid trees[0].archs: bert, gpt2, llama, unet, vit"
    )
    with pytest.raises(UnknownNameError, match="'branchin'.*Valid.*branching"):
        parse_spec({"name": "x", "trees": [{"branchin": [2]}]})
    with pytest.raises(SpecError, match="no model in the tree has that many children"):
        plan_zoo(parse_spec({"name": "x", "trees": [{"branching": [2], "merges": [{"of": 3}]}]}))
    with pytest.raises(SpecError, match="'text-sort': does not fit architecture 'vit'"):
        parse_spec({"name": "x", "trees": [{"arch": "vit", "tasks": ["text-sort"]}]})
    with pytest.raises(UnknownNameError, match="'digits-rot45'.*Valid"):
        parse_spec({"name": "x", "trees": [{"arch": "vit", "root_task": "digits-rot45"}]})
    with pytest.raises(SpecError, match="has no trees"):
        parse_spec({"name": "x", "trees": []})
    with pytest.raises(SpecError, match=r"must lie in \[0, 1\]"):
        parse_spec({**MINI, "cards": {"omit_base": 0.8, "wrong_base": 0.5}})
    with pytest.raises(UnknownNameError, match="Valid zoo presets: mixed, tiny, vthr"):
        load_spec("tinyy")
    assert set(PRESETS) == {"tiny", "vthr", "vthr-ft", "vthr-lora", "mixed"}


def test_tasks_have_disjoint_train_and_eval():
    for name in ("digits-rot90", "digits-low", "text-arith", "text-general"):
        data = get_task(name)._data
        if name.startswith("text"):
            train = {tuple(r.tolist()) for r in data["train_ids"]}
            assert not any(tuple(r.tolist()) in train for r in data["eval_ids"])
        else:
            assert len(data["train_x"]) > 3 * len(data["eval_x"]) > 0
    low = get_task("digits-low")._data
    assert set(low["eval_y"].tolist()) == {0, 1, 2, 3, 4}
