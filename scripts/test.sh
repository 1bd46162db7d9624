#!/usr/bin/env bash
# Install what the project needs and run the whole test suite (CPU only, ~17 min on 2 cores; the
# everyday loop is `python -m pytest -q -m "not slow"`, under 3 min).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q -r requirements.txt -r requirements-app.txt -r requirements-ablation.txt
# The optional LPIPS metric (IS.py --lpips), so its tests run instead of skipping (docs/EVALUATION.md).
python -m pip install -q --no-deps "lpips>=0.1.4,<0.2"
# The machine first: float results depend on its kernel family, so a red log must say which it ran on.
python scripts/machine_info.py
# tests/test_page_browser.py also needs a headless Chromium (Debian: apt-get install -y chromium
# chromium-driver); without it that test is skipped with this hint.
python -m pytest -q "$@"
