"""One test per row of issue 11's table (rows 7, 8 in test_catalog_crash.py; rows 10-12
in test_hub_server.py; the whole corpus in one call in test_bar.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from catalog import Catalog
from jobs.local_index import index_local
from lineage.errors import MalformedMetadataError, MalformedWeightsError
from lineage.weights import open_model, read_header
from lineage.weights.card import read_card
from lineage.weights.metadata import read_metadata
from lineage.weights.untrusted import load_json, load_yaml
from tests.hardening.corpus import (
    ALIAS_BOMB,
    LORA,
    adapter,
    deep_json,
    deep_yaml,
    good_model,
    raw_safetensors,
    secret_as_number,
    weights,
)


def _index(tmp_path: Path, *folders: Path):
    return index_local(Catalog(tmp_path / "cat"), list(folders), progress=False)


# -- row 1: alias bombs in the card ------------------------------------------------------
@pytest.mark.parametrize("field", ["tags", "license"])
def test_row1_an_alias_bomb_card_is_refused_fast_and_the_model_indexed(tmp_path, field):
    model = good_model(tmp_path / "bomb", 0)
    (model / "README.md").write_text(ALIAS_BOMB.format(field=field))
    assert len((model / "README.md").read_bytes()) < 600
    started = time.perf_counter()
    card = read_card(model)
    assert time.perf_counter() - started < 1.0
    assert "expands to more than 20000 nodes (an alias bomb?)" in card.error
    assert card.tags == () and card.license is None
    report = _index(tmp_path, model)
    assert report.indexed == ["bomb"]


def test_row1_aliases_within_budget_still_work():
    doc = load_yaml("base: &b org/base\nbase_model: [*b]\ntags: [a, b]\n", "card")
    assert doc == {"base": "org/base", "base_model": ["org/base"], "tags": ["a", "b"]}


# -- row 2: wrongly typed JSON fields --------------------------------------------------------
BAD_ADAPTERS = {
    "base-dict": ({**LORA, "base_model_name_or_path": {"a": 1}}, "must be a string, got an object"),
    "base-int": ({**LORA, "base_model_name_or_path": 3}, "must be a string, got an integer"),
    "base-list": ({**LORA, "base_model_name_or_path": ["a"]}, "must be a string, got a list"),
    "rank-huge": ({**LORA, "r": 2**70}, "'r': is a 71-bit number, outside 1..1048576"),
    "rank-float": ({**LORA, "r": 4.5}, "'r': must be an integer, got a number"),
    "peft-type-int": ({**LORA, "peft_type": 7}, "'peft_type': must be a string"),
}
BAD_CONFIGS = {
    "type-dict": ({"model_type": {"a": 1}}, "'model_type': must be a string, got an object"),
    "arch-int": (
        {"architectures": 5},
        "'architectures': must be a list of strings, got an integer",
    ),
    "arch-mixed": ({"architectures": [{"a": 1}, 2]}, "got a list holding an object"),
}


def test_row2_wrong_types_fail_their_model_alone_and_reruns_work(tmp_path):
    good = [good_model(tmp_path / "m" / f"good{i}", i) for i in range(2)]
    bad = [adapter(tmp_path / "m" / n, 5, cfg) for n, (cfg, _) in BAD_ADAPTERS.items()]
    bad += [good_model(tmp_path / "m" / n, 6, cfg) for n, (cfg, _) in BAD_CONFIGS.items()]
    for attempt in range(2):  # the same call again works
        report = _index(tmp_path, tmp_path / "m")
        want_indexed = [] if attempt else ["good0", "good1"]
        assert sorted(report.indexed) == want_indexed
        assert sorted(report.unchanged) == ([] if not attempt else ["good0", "good1"])
        assert report.accounted == len(good) + len(bad)
        for name, (_, phrase) in {**BAD_ADAPTERS, **BAD_CONFIGS}.items():
            assert phrase in report.failed[name], report.failed[name]
            assert "Fix or remove" in report.failed[name]


def test_row2_good_metadata_reads_as_typed_values(tmp_path):
    lora = adapter(tmp_path / "lora", 0, {**LORA, "r": 8})
    meta = read_metadata("peft-adapter", lora, [])
    assert (meta.adapter_base, meta.adapter_rank, meta.model_type) == ("good/a", 8, "lora")


# -- row 3: deep nesting -----------------------------------------------------------------------
@pytest.mark.parametrize("where", ["config.json", "model_index.json", "index", "header"])
def test_row3_deeply_nested_json_is_refused_in_linear_time(tmp_path, where):
    folder = tmp_path / "deep"
    if where == "config.json":
        good_model(folder, 0)
        (folder / "config.json").write_text(deep_json())
    elif where == "model_index.json":
        good_model(folder / "unet", 0)
        (folder / "model_index.json").write_text(deep_json())
    elif where == "index":
        folder.mkdir()
        (folder / "model.safetensors.index.json").write_text(deep_json())
    else:
        raw_safetensors(
            folder / "model.safetensors", ('{"w": ' + "[" * 100_000 + "]" * 100_000 + "}").encode()
        )
    started = time.perf_counter()
    report = _index(tmp_path, folder, good_model(tmp_path / "ok", 1))
    assert time.perf_counter() - started < 60
    assert report.indexed == ["ok"]
    assert "nests 100001 levels deep, over the limit of 64" in report.failed["deep"]


def test_row3_a_deep_card_is_recorded_never_fatal(tmp_path):
    model = good_model(tmp_path / "deep", 0)
    (model / "README.md").write_text(deep_yaml())
    assert "nests deeper than 64 levels" in read_card(model).error
    assert _index(tmp_path, model).indexed == ["deep"]


def test_row3_the_depth_scan_ignores_brackets_inside_strings():
    assert load_json('{"a": "' + "[" * 1000 + '"}', "x") == {"a": "[" * 1000}
    with pytest.raises(MalformedMetadataError, match="nests 65 levels"):
        load_json("[" * 65 + "]" * 65, "x")


# -- row 4: a diffusers index that is not an object --------------------------------------------
@pytest.mark.parametrize("doc", ["[1, 2]", "5", '"text"', "null"])
def test_row4_a_model_index_that_is_not_an_object_fails_its_model(tmp_path, doc):
    good_model(tmp_path / "pipe" / "unet", 0)
    (tmp_path / "pipe" / "model_index.json").write_text(doc)
    report = _index(tmp_path, tmp_path / "pipe", good_model(tmp_path / "ok", 1))
    assert report.indexed == ["ok"]
    assert "expected a JSON object" in report.failed["pipe"]


# -- row 5: zero-size tensor with an enormous dim ----------------------------------------------
@pytest.mark.parametrize("shape", [[0, 2**64], [0, 2**63], [2**40, 2**40, 0], [1] * 33])
def test_row5_unrepresentable_shapes_are_refused_at_header_validation(tmp_path, shape):
    entry = {"dtype": "F32", "shape": shape, "data_offsets": [0, 0]}
    path = tmp_path / "model.safetensors"
    raw_safetensors(path, json.dumps({"w": entry}).encode(), data=b"" if 0 in shape else bytes(4))
    if 0 not in shape:
        entry["data_offsets"] = [0, 4]
        raw_safetensors(path, json.dumps({"w": entry}).encode(), data=bytes(4))
    with pytest.raises(MalformedWeightsError, match="2\\*\\*62|over the limit of 32"):
        read_header(path)


def test_row5_a_legitimate_zero_size_tensor_still_reads(tmp_path):
    entry = {"dtype": "F32", "shape": [0, 16], "data_offsets": [0, 0]}
    raw_safetensors(tmp_path / "model.safetensors", json.dumps({"w": entry}).encode())
    with open_model(tmp_path / "model.safetensors") as model:
        assert tuple(model.tensor("w").shape) == (0, 16)


# -- row 6: a file larger than RAM -----------------------------------------------------------------
SIZE_WITH_AUDIT = """
import sys
from pathlib import Path
events = []
sys.addaudithook(lambda e, a: events.append((e, a)) if e in ("mmap.__new__", "open") else None)
from jobs.local_index import _size
n = _size(Path(sys.argv[1]), allow_pickle=bool(int(sys.argv[2])))
weights = [a for e, a in events if e == "mmap.__new__" or
           (e == "open" and str(a[0]).endswith((".safetensors", ".bin")))]
print(n, len(weights))
"""


def _size_in_child(folder: Path, allow_pickle: bool) -> tuple[int, int]:
    out = subprocess.run(
        [sys.executable, "-c", SIZE_WITH_AUDIT, str(folder), str(int(allow_pickle))],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    size, touched = out.stdout.split()
    return int(size), int(touched)


def _sparse_model(folder: Path, tensor_bytes: int) -> Path:
    """A valid safetensors file whose one tensor is `tensor_bytes` of (sparse) zeros."""
    header = json.dumps(
        {"w": {"dtype": "U8", "shape": [tensor_bytes], "data_offsets": [0, tensor_bytes]}}
    ).encode()
    raw_safetensors(folder / "model.safetensors", header)
    os.truncate(folder / "model.safetensors", 8 + len(header) + tensor_bytes)
    return folder


def test_row6_sizing_a_file_larger_than_ram_only_stats_it(tmp_path):
    big = _sparse_model(tmp_path / "big", 1 << 40)  # 1 TiB, sparse
    size, touched = _size_in_child(big, allow_pickle=False)
    assert size == os.stat(big / "model.safetensors").st_size > 1 << 40
    assert touched == 0  # no weights file opened, nothing mapped


def _more_than_ram_and_swap() -> int:
    """4 x (RAM + swap) in bytes: a private map that size is refused under
    vm.overcommit_memory=0 (the heuristic refuses maps larger than RAM + swap)."""
    info = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    kib = sum(int(info[k].split()[0]) for k in ("MemTotal", "SwapTotal"))
    return 4 * kib * 1024


def _commit_limit_is_enforced() -> bool:
    try:
        return Path("/proc/sys/vm/overcommit_memory").read_text().strip() == "0"
    except OSError:
        return False


@pytest.mark.skipif(not _commit_limit_is_enforced(), reason="needs vm.overcommit_memory=0")
def test_row6_a_file_the_machine_cannot_map_fails_alone(tmp_path):
    _sparse_model(tmp_path / "m" / "big", _more_than_ram_and_swap())  # sparse: no disk used
    good_model(tmp_path / "m" / "ok", 0)
    report = _index(tmp_path, tmp_path / "m")
    assert report.indexed == ["ok"]
    assert "memory map, which this machine refuses" in report.failed["big"]


# -- row 9: pickles without --allow-pickle -------------------------------------------------------
def test_row9_a_refused_pickle_is_never_opened_not_even_to_size_it(tmp_path):
    import torch

    folder = tmp_path / "pkl"
    folder.mkdir()
    torch.save(weights(0), folder / "pytorch_model.bin")
    (folder / "adapter_config.json").write_text(json.dumps(LORA))
    assert _size_in_child(folder, allow_pickle=False) == (0, 0)
    allowed_size, _ = _size_in_child(folder, allow_pickle=True)
    assert allowed_size == os.stat(folder / "pytorch_model.bin").st_size
    report = _index(tmp_path, folder)
    assert "pickle format" in report.failed["pkl"]


# -- row 13: header-length errors leak nothing ---------------------------------------------------
def test_row13_a_symlink_to_a_secret_is_refused_without_echoing_its_bytes(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("SECRETS!" * 4)
    (tmp_path / "link").mkdir()
    os.symlink(secret, tmp_path / "link" / "model.safetensors")
    report = _index(tmp_path, tmp_path / "link")
    why = report.failed["link"]
    assert "header length field exceeds" in why
    assert secret_as_number(tmp_path) not in why and "SECRETS" not in why


def test_row13_header_errors_do_not_echo_raw_bytes(tmp_path):
    path = tmp_path / "m.safetensors"
    raw_safetensors(path, b"\xff\xfeSECRET")
    with pytest.raises(MalformedWeightsError) as err:
        read_header(path)
    assert "SECRET" not in str(err.value) and "0xff" not in str(err.value)
    raw_safetensors(path, b"{}", length=(1 << 40) + 12345)
    with pytest.raises(MalformedWeightsError) as err:
        read_header(path)
    assert str((1 << 40) + 12345) not in str(err.value)


def test_row13_control_characters_in_metadata_fail_the_model(tmp_path):
    bad = adapter(tmp_path / "ansi", 0, {**LORA, "base_model_name_or_path": "\x1b[2J/x"})
    report = _index(tmp_path, bad)
    assert "contains control characters" in report.failed["ansi"]
    assert "\x1b" not in report.failed["ansi"]
