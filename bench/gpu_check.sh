#!/usr/bin/env bash
# The command for a GPU machine:  bash bench/gpu_check.sh OUT_DIR [bench/gpu_check.py options]
#
# A machine without registry access may lack this project's pure-Python dependencies (the workplace's
# GPU image has torch, torchvision, scipy, tensorboard, pytest, but not easydict or torch-fidelity).
# Wheels placed in .whl/ at the repository root (docs/SCALING.md, "Checking on a GPU") are installed
# into /tmp/site first; every process gpu_check.py starts inherits PYTHONPATH.
set -u
cd "$(dirname "$0")/.."
if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONUNBUFFERED=1
exec python3 bench/gpu_check.py "$@"
