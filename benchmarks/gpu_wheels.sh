#!/usr/bin/env bash
# Run HERE (where the package registry is reachable) before carrying the tree to a GPU machine whose Python lacks
# some of simclr's dependencies: downloads them as wheels for that machine's Python into .whl/ (git-ignored),
# which benchmarks/gpu_check.sh installs offline there. The defaults fit this project's lent H200 image
# (Python 3.12, no pydantic); the versions are the ones this project is tested with. setuptools comes along to
# build simclr itself there, should that machine's Python lack it.
#   bash benchmarks/gpu_wheels.sh [PYTHON_VERSION]      (default 3.12)
set -euo pipefail
cd "$(dirname "$0")/.."
version="${1:-3.12}"
rm -rf .whl && mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$version" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
  pydantic==2.13.4 pydantic-core==2.46.4 annotated-types==0.7.0 typing-inspection==0.4.2 typing-extensions==4.15.0 \
  setuptools==80.9.0
ls .whl
