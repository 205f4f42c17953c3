#!/usr/bin/env bash
# One prepared GPU check: the CUDA tests, then `simclr bench` for resnet18 and resnet50 at 32 px (CIFAR-10) and
# 96 px (STL-10) and resnet18 at 32 px compiled, in one process, written as one JSON summary. Installs nothing and
# needs no network; sized for < 6 minutes on one H100. Without CUDA it runs the uncompiled benches on the CPU at
# tiny sizes, so the script itself stays tested.
#   bash benchmarks/gpu_check.sh [OUT_DIR]       (default OUT_DIR: gpu-check; GPU_CHECK_STEPS overrides the steps)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-gpu-check}"
mkdir -p "$out"
python3 -c "import torch; print(torch.__version__, torch.cuda.is_available())"

if python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  python3 -m pytest -q -p no:cacheprovider tests/test_bench.py tests/test_losses.py -k "cuda or autocast" \
    | tee "$out/tests.log"
else
  echo "no CUDA here: running the benches on the CPU at tiny sizes (a check of this script, not a measurement)"
fi

python3 benchmarks/gpu_check_benches.py "$out" ${GPU_CHECK_STEPS:+--steps "$GPU_CHECK_STEPS"}
cat "$out/summary.json"
