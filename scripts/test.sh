#!/usr/bin/env bash
# Install what the project needs and run the whole test suite (CPU only, a few minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q -r requirements.txt
python -m pytest -q "$@"
