#!/usr/bin/env bash
# The project's two entry points for a fresh machine (see README):
#   ./dev.sh nsqd [flags...]   install into .venv and start nsqd (Go nsqd's defaults)
#   ./dev.sh test [pytest args] install into .venv and run every check: ruff, mypy --strict, pytest
#   ./dev.sh compile            build the simulator's hot modules with mypyc into .build/compiled (optional)
set -euo pipefail
cd "$(dirname "$0")"

PY=${PYTHON:-python3}

setup() {
    if [ ! -x .venv/bin/python ]; then
        "$PY" -m venv .venv
    fi
    # Reinstall only when the package description changed since the last install.
    if [ ! -f .venv/.installed ] || [ pyproject.toml -nt .venv/.installed ]; then
        .venv/bin/python -m pip install --quiet --upgrade pip
        .venv/bin/python -m pip install --quiet -e ".[dev,analysis]"
        touch .venv/.installed
    fi
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
    nsqd)
        setup
        exec .venv/bin/nsqd "$@"
        ;;
    test)
        setup
        echo "== ruff"
        .venv/bin/ruff check .
        echo "== mypy --strict"
        .venv/bin/mypy --strict
        echo "== pytest"
        exec .venv/bin/pytest "$@"
        ;;
    compile)
        setup
        exec .venv/bin/python -m nsqsim.compiled
        ;;
    *)
        echo "usage: ./dev.sh nsqd [nsqd flags...] | ./dev.sh test [pytest args...] | ./dev.sh compile" >&2
        exit 2
        ;;
esac
