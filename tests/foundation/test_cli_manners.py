"""How the CLI meets its users (issue 14): one-line errors and exit 1 for every bad input,
argument errors included; Hub-shaped ids for local folders so cards match; catalog ids
wherever a model is taken; Unix manners (quiet broken pipes, CSV with \\n, no duplicate
tables); bounded queries; and no raw control characters on the terminal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

ESC = "\x1b"


def lineage(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lineage", *args], capture_output=True,
                          text=True, cwd=cwd, env={**os.environ, "LINEAGE_CATALOG": ""})


def one_error_line(done: subprocess.CompletedProcess, prefix: str) -> str:
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(prefix), done.stderr
    return lines[0]


def write_model(folder: Path, seed: int, base: str | None = None, noise: float = 0.05) -> Path:
    """A 2-tensor model; a child (noise > 0 from the seed-0 weights) names its base."""
    torch.manual_seed(0)
    w = {"layer.weight": torch.randn(16, 16), "head.weight": torch.randn(8, 16)}
    if seed:
        torch.manual_seed(seed)
        w = {k: v + noise * torch.randn_like(v) for k, v in w.items()}
    folder.mkdir(parents=True, exist_ok=True)
    save_file(w, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"model_type": "pico"}))
    if base:
        (folder / "README.md").write_text(f"---\nbase_model: {base}\n---\n# a child\n")
    return folder


@pytest.fixture(scope="module")
def flat_models(tmp_path_factory) -> Path:
    """org__base and two children whose cards name the base by its Hub id."""
    root = tmp_path_factory.mktemp("flat")
    write_model(root / "org__base", 0)
    write_model(root / "org__ft-a", 1, base="org/base")
    write_model(root / "org__ft-b", 2, base="org/base")
    return root


@pytest.fixture(scope="module")
def flat_catalog(flat_models, tmp_path_factory) -> Path:
    catalog = tmp_path_factory.mktemp("flatcat") / "cat"
    done = lineage("index", str(flat_models), "--quiet", "--catalog", str(catalog))
    assert done.returncode == 0, done.stderr
    return catalog


def sql(catalog: Path, query: str, *extra: str) -> subprocess.CompletedProcess:
    return lineage("sql", query, "--catalog", str(catalog), *extra)


def rows(catalog: Path, query: str) -> list[list]:
    done = sql(catalog, query, "--format", "json")
    assert done.returncode == 0, done.stderr
    return [list(r.values()) for r in json.loads(done.stdout)]


# -- errors ----------------------------------------------------------------------------

def test_argument_errors_are_one_line_and_exit_1(tmp_path):
    line = one_error_line(lineage("kinship"), "lineage kinship: error: ")
    assert "model_a" in line and "--help" in line
    one_error_line(lineage("--no-such-flag"), "lineage: error: ")
    one_error_line(lineage("sql", "SELECT 1", "--timeout", "soon"), "lineage sql: error: ")
    for job in ("recover", "kinship", "index", "merge"):
        done = subprocess.run([sys.executable, "-m", f"jobs.{job}", "--bogus"],
                              capture_output=True, text=True)
        one_error_line(done, f"python -m jobs.{job}: error: ")


def test_a_missing_path_is_one_line_and_creates_nothing(tmp_path):
    catalog = tmp_path / "cat"
    line = one_error_line(lineage("index", str(tmp_path / "nope"), "--catalog", str(catalog)),
                          "lineage: error: path ")
    assert "does not exist" in line
    empty = tmp_path / "empty"
    empty.mkdir()
    line = one_error_line(lineage("index", str(empty), "--catalog", str(catalog)),
                          "lineage: error: path ")
    assert "holds no model folder" in line
    assert not catalog.exists()
    done = subprocess.run([sys.executable, "-m", "jobs.recover", "--catalog", str(catalog)],
                          capture_output=True, text=True)
    assert "does not exist" in one_error_line(done, "jobs.recover: error: catalog ")


def test_sql_errors_fold_duckdbs_caret_block(flat_catalog):
    line = one_error_line(sql(flat_catalog, "SELEC model_id FROM models"), "lineage: error: ")
    assert "syntax error" in line and "(line 1, column 1)" in line and "^" not in line
    line = one_error_line(sql(flat_catalog, "SELECT nope FROM models"), "lineage: error: ")
    assert 'column "nope" not found' in line and "(line 1, column 8)" in line


# -- ids -------------------------------------------------------------------------------

def test_org__name_folders_get_hub_ids_and_their_cards_match(flat_catalog):
    assert rows(flat_catalog, "SELECT model_id FROM models ORDER BY 1") == [
        ["org/base"], ["org/ft-a"], ["org/ft-b"]]
    assert rows(flat_catalog, "SELECT parent, child FROM edges WHERE source = 'card' "
                              "ORDER BY child") == [["org/base", "org/ft-a"],
                                                    ["org/base", "org/ft-b"]]


def test_index_dot_gets_the_folders_real_name(tmp_path):
    write_model(tmp_path / "org__dotted", 0)
    write_model(tmp_path / "plain-model", 0)
    catalog = tmp_path / "cat"
    for folder in ("org__dotted", "plain-model"):
        done = lineage("index", ".", "--quiet", "--catalog", str(catalog),
                       cwd=tmp_path / folder)
        assert done.returncode == 0, done.stderr
    assert rows(catalog, "SELECT model_id FROM models ORDER BY 1") == [
        ["org/dotted"], ["plain-model"]]


def test_the_hugging_face_cache_layout_indexes_as_the_repo_at_its_revision(tmp_path):
    """models--org--name/snapshots/<rev>/ holds symlinks into blobs/, as huggingface_hub
    writes it; the id is org/name, the revision <rev>, whichever path is given."""
    hub = tmp_path / "hub"
    for rev, seed in (("a1b2c3", 0), ("d4e5f6", 1)):
        staged = write_model(tmp_path / f"staged-{rev}", seed)
        repo = hub / "models--org--cached"
        snap = repo / "snapshots" / rev
        snap.mkdir(parents=True)
        (repo / "blobs").mkdir(exist_ok=True)
        for f in staged.iterdir():
            blob = repo / "blobs" / f"{rev}-{f.name}"
            blob.write_bytes(f.read_bytes())
            (snap / f.name).symlink_to(os.path.relpath(blob, snap))
    (hub / "models--org--cached" / "refs").mkdir()
    (hub / "models--org--cached" / "refs" / "main").write_text("d4e5f6")
    catalog = tmp_path / "cat"
    assert lineage("index", str(hub), "--quiet", "--catalog", str(catalog)).returncode == 0
    snapshot = hub / "models--org--cached" / "snapshots" / "a1b2c3"
    assert lineage("index", str(snapshot), "--quiet", "--catalog", str(catalog)).returncode == 0
    assert rows(catalog, "SELECT model_id, revision FROM models ORDER BY 2") == [
        ["org/cached", "a1b2c3"], ["org/cached", "d4e5f6"]]


# -- catalog ids wherever a model is taken ---------------------------------------------

def test_kinship_takes_catalog_ids_or_paths(flat_models, flat_catalog):
    by_id = lineage("kinship", "org/ft-a", "org/ft-b", "--base", "org/base", "--format", "json",
                    "--catalog", str(flat_catalog))
    by_path = lineage("kinship", str(flat_models / "org__ft-a"), str(flat_models / "org__ft-b"),
                      "--base", str(flat_models / "org__base"), "--format", "json")
    assert by_id.returncode == 0 and by_path.returncode == 0, by_id.stderr + by_path.stderr
    ids, paths = json.loads(by_id.stdout), json.loads(by_path.stdout)
    assert ids["values"] == paths["values"] and ids["values"]["cs"] is not None
    line = one_error_line(lineage("kinship", "org/ft-a", "org/none", "--catalog",
                                  str(flat_catalog)), "lineage: error: model 'org/none'")
    assert "neither a catalog id" in line


def test_graph_takes_a_path_for_its_catalog_id(flat_models, flat_catalog):
    assert lineage("recover", "--catalog", str(flat_catalog)).returncode == 0
    by_path = lineage("graph", str(flat_models / "org__ft-a"), "--catalog", str(flat_catalog))
    by_id = lineage("graph", "org/ft-a", "--catalog", str(flat_catalog))
    assert by_path.returncode == 0, by_path.stderr
    assert by_path.stdout == by_id.stdout and '["org/ft-a"]' in by_id.stdout


# -- Unix manners ----------------------------------------------------------------------

def test_broken_pipe_is_quiet_and_csv_ends_lines_with_newline(flat_catalog):
    query = "SELECT * FROM range(200000)"
    piped = subprocess.run(
        ["bash", "-c", f'"{sys.executable}" -m lineage sql "{query}" --format csv '
                       f'--catalog "{flat_catalog}" | head -2; exit ${{PIPESTATUS[0]}}'],
        capture_output=True, text=True)
    assert piped.returncode == 0 and piped.stderr == "" and piped.stdout == "range\n0\n"
    raw = subprocess.run([sys.executable, "-m", "lineage", "sql", "SELECT 1 AS a, 2 AS b",
                          "--format", "csv", "--catalog", str(flat_catalog)],
                         capture_output=True).stdout
    assert raw == b"a,b\n1,2\n"


def test_show_tables_lists_each_table_once(flat_catalog):
    names = [r[0] for r in rows(flat_catalog, "SHOW TABLES")]
    assert len(names) == len(set(names)) and {"models", "edges", "tensors"} <= set(names)


def test_index_json_is_for_scripts(tmp_path, flat_models):
    done = lineage("index", str(flat_models), "--json", "--catalog", str(tmp_path / "c"))
    report = json.loads(done.stdout)
    assert sorted(report["indexed"]) == ["org/base", "org/ft-a", "org/ft-b"]
    assert report["failed"] == {} and done.stderr == ""


# -- bounded queries -------------------------------------------------------------------

def test_a_query_past_its_timeout_is_interrupted(flat_catalog):
    line = one_error_line(sql(flat_catalog, "SELECT count(*) FROM range(1000000000) a, "
                              "range(1000000000) b", "--timeout", "1s"), "lineage: error: ")
    assert "ran past the 1 s timeout" in line


def test_a_query_past_its_memory_limit_fails_cleanly(flat_catalog):
    line = one_error_line(sql(flat_catalog, "SELECT list(range) FROM range(50000000)",
                              "--memory-limit", "64MB"), "lineage: error: ")
    assert "64MB memory limit" in line


# -- no raw control characters on the terminal -------------------------------------------

def test_hostile_ids_and_cards_are_printed_escaped(tmp_path):
    evil = f"red{ESC}[31mX"
    write_model(tmp_path / "models" / evil, 1, base=f"org/{ESC}]0;pwned{chr(7)}")
    catalog = tmp_path / "cat"
    done = lineage("index", str(tmp_path / "models"), "--quiet", "--catalog", str(catalog))
    assert done.returncode == 0, done.stderr
    for fmt in ("table", "csv", "json"):
        out = sql(catalog, "SELECT model_id, card_base_models FROM models", "--format", fmt)
        assert out.returncode == 0
        assert ESC not in out.stdout and chr(7) not in out.stdout
        assert ("\\u001b" if fmt == "json" else "\\x1b") in out.stdout
    error = lineage("kinship", evil, "nothing-here")
    assert ESC not in error.stderr and "\\x1b[31m" in error.stderr


def test_the_demo_prints_a_lineage_command_that_runs(tmp_path, monkeypatch):
    """dev.sh does not activate the venv: the demo's suggestions name the venv's script
    unless `lineage` on PATH is that same script."""
    from jobs.demo import lineage_command

    monkeypatch.setenv("PATH", str(tmp_path))  # no lineage on PATH
    monkeypatch.chdir(tmp_path)
    suggested = lineage_command()
    assert Path(suggested).is_absolute() and Path(suggested).name == "lineage"
    done = subprocess.run([suggested, "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "Recover the heredity" in done.stdout
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))
    assert lineage_command() == "lineage"
