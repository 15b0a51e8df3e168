#!/usr/bin/env bash
# The GPU check (issue 30): every GPU path of a study, run on a bare GPU machine with this tree
# copied in, in well under 10 minutes. Installs nothing from a network: the machine's own
# Python and torch (CUDA) run the tree through PYTHONPATH; the few small wheels it lacks travel
# with the tree in .gpu-wheels/ (made here by scripts/gpu-wheels.sh).
#
#   OUT=results-folder bash scripts/gpu-check.sh
#
# Steps (each logged to $OUT/<step>.log, with its exit code and seconds in $OUT/steps.jsonl):
# the machine (environment.json), the CUDA tests (cuda-tests.xml), a study of resnet20 runs on
# synthetic CIFAR-sized data with --gpus-per-run 0.25 (four runs share the GPU), in float32 and
# with --amp --channels-last (study.json: every run ok, on cuda, peak memory recorded, four at
# once), masks exactly fixed after GPU training (masks.json), and benchmarks/training.py on the
# GPU (training.json). Exit code: the number of failed steps.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-check-out}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
: > "$OUT/steps.jsonl"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export SPARSETOPO_CACHE_DIR="$OUT/cache"
if compgen -G ".gpu-wheels/*.whl" > /dev/null; then
  "$PY" -m pip install --quiet --no-index --no-deps --target /tmp/sparsetopo-gpu-deps \
    .gpu-wheels/*.whl && export PYTHONPATH="$PYTHONPATH:/tmp/sparsetopo-gpu-deps"
fi
failed=0
step() {
  local name=$1; shift
  local start=$SECONDS
  "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  printf '{"step": "%s", "rc": %d, "seconds": %d}\n' "$name" "$rc" "$((SECONDS - start))" \
    >> "$OUT/steps.jsonl"
  echo "== $name: rc $rc, $((SECONDS - start)) s"; tail -n 3 "$OUT/$name.log"
  [ "$rc" -eq 0 ] || failed=$((failed + 1))
}
step environment "$PY" scripts/gpu_check.py environment --out "$OUT"
step cuda-tests "$PY" -m pytest -q -p no:cacheprovider --junitxml "$OUT/cuda-tests.xml" \
  tests/test_training.py tests/test_data.py tests/test_study_runner.py -k "cuda or gpu or device"
step study-fp32 "$PY" -m sparsetopo study run scripts/gpu-study.toml \
  --results "$OUT/fp32.sqlite" --workers 4 --gpus-per-run 0.25 --quiet
step study-bf16 "$PY" -m sparsetopo study run scripts/gpu-study.toml \
  --results "$OUT/bf16.sqlite" --workers 4 --gpus-per-run 0.25 --amp --channels-last --quiet
step study-check "$PY" scripts/gpu_check.py study --out "$OUT" "$OUT/fp32.sqlite" \
  "$OUT/bf16.sqlite"
step masks "$PY" scripts/gpu_check.py masks --out "$OUT"
step training-benchmark "$PY" benchmarks/training.py --parallel 1 --out "$OUT/training.json"
echo "failed steps: $failed"
exit "$failed"
