#!/usr/bin/env bash
# The project's two entry points for a fresh machine (see README):
#   ./dev.sh nsqd [flags...]   install nsqd's runtime dependencies only into .venv-run and start nsqd
#                              (Go nsqd's defaults)
#   ./dev.sh test [pytest args] install with the dev and analysis tools into .venv (and Debian's chromium,
#                              for nsqadmin's browser test, when run as root) and run every check:
#                              ruff, mypy --strict, pytest
#   ./dev.sh compile            build the simulator's hot modules with mypyc into .build/compiled (optional)
# Two environments, so that running the daemon never pulls in the test and notebook stack.
# NSQSIM_RUN_VENV moves the run environment (the tests build one in a temporary directory).
set -euo pipefail
cd "$(dirname "$0")"

PY=${PYTHON:-python3}
RUN_VENV=${NSQSIM_RUN_VENV:-.venv-run}
RUN_SPEC="."                  # the package and its runtime dependencies, no extras
TEST_VENV=.venv
TEST_SPEC=".[dev,analysis]"

# setup VENV SPEC: an editable install of SPEC in VENV, redone only when pyproject.toml changed.
setup() {
    local venv=$1 spec=$2
    if [ ! -x "$venv/bin/python" ]; then
        "$PY" -m venv "$venv"
    fi
    if [ ! -f "$venv/.installed" ] || [ pyproject.toml -nt "$venv/.installed" ]; then
        "$venv/bin/python" -m pip install --quiet --upgrade pip
        "$venv/bin/python" -m pip install --quiet -e "$spec"
        touch "$venv/.installed"
    fi
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
    nsqd)
        setup "$RUN_VENV" "$RUN_SPEC"
        exec "$RUN_VENV/bin/nsqd" "$@"
        ;;
    test)
        setup "$TEST_VENV" "$TEST_SPEC"
        # nsqadmin's browser test drives Debian's Chromium (tests/integration/test_nsqadmin_browser.py)
        if ! command -v chromium >/dev/null; then
            if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
                apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium
            else
                echo "dev.sh: the browser test needs Debian's chromium: sudo apt-get install chromium" >&2
            fi
        fi
        echo "== ruff"
        "$TEST_VENV/bin/ruff" check .
        echo "== mypy --strict"
        "$TEST_VENV/bin/mypy" --strict
        echo "== pytest"
        exec "$TEST_VENV/bin/pytest" "$@"
        ;;
    compile)
        setup "$TEST_VENV" "$TEST_SPEC"
        exec "$TEST_VENV/bin/python" -m nsqsim.compiled
        ;;
    *)
        echo "usage: ./dev.sh nsqd [nsqd flags...] | ./dev.sh test [pytest args...] | ./dev.sh compile" >&2
        exit 2
        ;;
esac
