#!/usr/bin/env bash
# The README's quick start: all set-up on a fresh machine, then the demo or the tests.
#   bash infra/dev.sh demo [args]   build the tiny zoo, serve it, crawl, recover, report
#   bash infra/dev.sh test [args]   the whole test suite (extra args go to pytest)
# Creates or reuses .venv and installs the project with infra/constraints.txt, which pins
# the CPU torch wheel (pyproject.toml keeps a range so GPU clusters bring their own).
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${LINEAGE_VENV:-.venv}"
python="${PYTHON:-$(command -v python3.11 || command -v python3)}"
stamp="$venv/.lineage-installed"

if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ infra/constraints.txt -nt "$stamp" ]; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    # torch first and pinned: anything that asks for an unpinned torch later is satisfied.
    "$venv/bin/python" -m pip install --quiet -c infra/constraints.txt "torch==2.13.0"
    "$venv/bin/python" -m pip install --quiet -c infra/constraints.txt -e ".[test]"
    touch "$stamp"
fi

command="${1:-}"
shift || true
case "$command" in
    demo) exec "$venv/bin/python" -m jobs.demo "$@" ;;
    test) exec "$venv/bin/python" -m pytest "$@" ;;
    *) echo "usage: bash infra/dev.sh demo|test [args]" >&2; exit 2 ;;
esac
