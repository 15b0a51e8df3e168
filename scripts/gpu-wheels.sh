#!/usr/bin/env bash
# The small wheels the GPU check needs beyond the GPU machine's image (torch with CUDA, numpy,
# scipy, numba, pandas, scikit-learn, typer, rich, tqdm, psutil, pyarrow): pytest and its
# dependencies. Downloaded here into .gpu-wheels/ (ignored by git), which travels with the tree.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .gpu-wheels && mkdir .gpu-wheels
python3 -m pip download --quiet --only-binary=:all: --no-deps -d .gpu-wheels \
  pytest pluggy iniconfig packaging threadpoolctl
du -sh .gpu-wheels
