#!/usr/bin/env bash
# One prepared GPU check: the CUDA tests, then `simclr bench` for resnet18 and resnet50 at 32 px (CIFAR-10) and
# 96 px (STL-10) and resnet18 at 32 px compiled, in one process, written as one JSON summary. Needs no network;
# sized for < 6 minutes on one H100. Without CUDA it runs the uncompiled benches on the CPU at tiny sizes, so the
# script itself stays tested.
#   bash benchmarks/gpu_check.sh [OUT_DIR]       (default OUT_DIR: gpu-check; GPU_CHECK_STEPS overrides the steps)
# Where simclr is not installed (a bare GPU machine), it is installed offline into a temporary folder from this
# tree, with the dependencies that machine lacks from the wheels in .whl/ (made here by benchmarks/gpu_wheels.sh).
# A failing test or bench is reported in the exit status but does not stop the rest.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-gpu-check}"
mkdir -p "$out"
rm -f "$out"/summary.json "$out"/bench-*.json "$out"/tests.log "$out"/install.log  # never shown as this check's

if ! python3 -c "import simclr.cli.main" 2>/dev/null; then
  site="${TMPDIR:-/tmp}/simclr-gpu-check-site"
  echo "simclr is not importable here: installing this tree offline into $site"
  # the carried wheels that this Python lacks, or has in an older version
  mkdir -p "$site"
  needed="$site/carried-wheels.txt"
  python3 - > "$needed" <<'PY' || exit 2
import glob, importlib.metadata, os
from pip._vendor.packaging.version import Version  # pip's own copy: the packaging distribution may be absent
for wheel in sorted(glob.glob(".whl/*.whl")):
    name, version = os.path.basename(wheel).split("-")[:2]
    try:
        if Version(importlib.metadata.version(name)) >= Version(version):
            continue
    except importlib.metadata.PackageNotFoundError:
        pass
    print(wheel)
PY
  mapfile -t wheels < "$needed"
  echo "carried wheels to install: ${wheels[*]:-none}"
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"  # also lets the build below find a carried setuptools
  install_failed() { cat "$out/install.log"; echo "the offline install failed: see above"; exit 2; }
  : > "$out/install.log"
  if [ ${#wheels[@]} -gt 0 ]; then
    python3 -m pip install --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" \
      "${wheels[@]}" >> "$out/install.log" 2>&1 || install_failed
  fi
  python3 -m pip install --no-index --no-deps --no-compile --no-cache-dir --no-build-isolation --upgrade \
    --target "$site" . >> "$out/install.log" 2>&1 || install_failed
fi
if ! python3 -c "import torch, simclr; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), \
'simclr', simclr.__version__, 'losses', simclr.names('loss'))"; then
  echo "simclr cannot be imported here (see above): a dependency is missing; run benchmarks/gpu_wheels.sh where" \
    "the package registry is reachable and carry .whl/ along"
  exit 2
fi
listed=$(nvidia-smi -L 2> /dev/null || true)  # read whole: grep -q could end the pipe early under pipefail
if grep -q "^GPU" <<< "$listed" \
  && ! python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "$listed"
  echo "nvidia-smi lists a GPU but torch cannot use it (a CUDA build that does not fit the driver?): stopping" \
    "rather than measuring the CPU"
  exit 1
fi

tests_status=0
if python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  timeout 240 python3 -m pytest -q -p no:cacheprovider tests/test_bench.py tests/test_losses.py tests/test_runtime.py \
    -k "cuda or autocast" > "$out/tests.log" 2>&1 || tests_status=$?
  tail -n 30 "$out/tests.log"
else
  echo "no CUDA here: running the benches on the CPU at tiny sizes (a check of this script, not a measurement)"
fi

bench_status=0
python3 benchmarks/gpu_check_benches.py "$out" ${GPU_CHECK_STEPS:+--steps "$GPU_CHECK_STEPS"} || bench_status=$?
if [ -f "$out/summary.json" ]; then
  cat "$out/summary.json"
else
  echo "no summary: the benches failed (exit $bench_status); each finished bench left OUT/<name>.json"
fi
if [ "$tests_status" -ne 0 ]; then
  echo "the CUDA tests failed (exit $tests_status): see $out/tests.log"
fi
[ "$tests_status" -eq 0 ] && [ "$bench_status" -eq 0 ]
