"""`lineage kinship` end to end through jobs.cli.main."""

from __future__ import annotations

import json

import pytest

from jobs.cli import main
from lineage.kinship import kinship


def test_json_output_matches_the_library(zoo, capsys):
    args = [str(zoo["ft1"]), str(zoo["ft1_child"]), "--base", str(zoo["base"])]
    assert main(["kinship", *args, "--metrics", "cs,pcc,ed,mother", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    expected = kinship(zoo["ft1"], zoo["ft1_child"], zoo["base"], metrics="cs,pcc,ed,mother")
    assert doc["values"] == pytest.approx(expected.values, rel=1e-12)
    assert doc["base"] == str(zoo["base"]) and doc["method"] == "exact"
    assert doc["layers"] == [] and doc["n_tensors"] == 28


def test_table_per_layer_with_abs_and_notes(zoo, capsys):
    args = [str(zoo["ft1_vocab"]), str(zoo["ft2"]), "--base", str(zoo["base"])]
    assert main(["kinship", *args, "--per-layer", "--abs", "--metrics", "cs,mother"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    cs = kinship(zoo["ft1_vocab"], zoo["ft2"], zoo["base"], metrics="cs").values["cs"]
    assert f"cs      {abs(cs):.6g}" in lines
    assert any(line.startswith("transformer.h.0.attn.c_proj.weight") for line in lines)
    assert any(line.startswith("transformer.wpe.weight") and line.endswith("-") for line in lines)
    assert "note: transformer.wte.weight: compared the first 96 rows only" in out
    assert "skipped transformer.extra_scale: not in b, base" in out


def test_errors_are_one_line(zoo, capsys):
    assert main(["kinship", str(zoo["ft1"]), str(zoo["ft2"]), "--metrics", "cs,kl"]) == 1
    err = capsys.readouterr().err
    assert err == (
        "lineage: error: metric 'kl': is not a known metric. "
        "Valid metrics: cs, ed, l2, mother, pcc\n"
    )
    assert main(["kinship", "org/missing", str(zoo["ft2"])]) == 1
    assert "model 'org/missing': is neither a catalog id" in capsys.readouterr().err
    assert main(["kinship", str(zoo["ft1"]), str(zoo["llama"])]) == 1
    assert "share no float tensor" in capsys.readouterr().err


def test_registering_the_command_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, jobs.commands.kinship; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
