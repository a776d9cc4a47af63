#!/usr/bin/env bash
# Install whatever is missing (scripts/setup.sh), then run the whole test suite.
# Extra arguments go to pytest, e.g. scripts/test.sh -m unit  or  scripts/test.sh tests/asr
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
