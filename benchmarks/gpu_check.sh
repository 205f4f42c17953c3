#!/usr/bin/env bash
# One prepared GPU check: the CUDA tests, then `simclr bench` for resnet18 and resnet50 at 32 px (CIFAR-10) and
# 96 px (STL-10), written as one JSON summary. Installs nothing and needs no network; sized for < 6 minutes on
# one H100. Without CUDA it runs the same benches on the CPU with tiny sizes, so the script itself stays tested.
#   bash benchmarks/gpu_check.sh [OUT_DIR]       (default OUT_DIR: gpu-check)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-gpu-check}"
mkdir -p "$out"
python3 -c "import torch; print(torch.__version__, torch.cuda.is_available())"

if python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  device=cuda; steps=${GPU_CHECK_STEPS:-30}; warmup=5; batches=(512 256); sizes=(32 96)
  python3 -m pytest -q -p no:cacheprovider tests/test_bench.py tests/test_losses.py -k "cuda or autocast" \
    | tee "$out/tests.log"
else
  device=cpu; steps=${GPU_CHECK_STEPS:-1}; warmup=0; batches=(8 8); sizes=(16 32)
  echo "no CUDA here: running the benches on the CPU at tiny sizes (a check of this script, not a measurement)"
fi

for backbone in resnet18 resnet50; do
  for i in 0 1; do
    size=${sizes[$i]}; batch=${batches[$i]}
    python3 -m simclr bench configs/quickstart.yaml --device "$device" --steps "$steps" --warmup "$warmup" --json \
      --set "data.dataset={name: synthetic, image_size: $size, count: $batch}" \
      --set "model.backbone={name: $backbone}" --set data.batch_size="$batch" \
      --set train.precision=auto --set train.channels_last=null \
      > "$out/bench-$backbone-$size.json"
  done
done

python3 - "$out" <<'PY'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
runs = {p.stem: json.loads(p.read_text()) for p in sorted(out.glob("bench-*.json"))}
summary = {
    name: {
        "device_name": r["device_name"], "batch_size": r["batch_size"], "image_size": r["image_size"],
        "images_per_sec": r["images_per_sec"], "pipeline_efficiency": r["pipeline_efficiency"],
        "achieved_tflops": r["achieved_tflops"], "matmul_bf16_tflops": r.get("matmul_bf16_tflops"),
        # an epoch-equivalent: CIFAR-10's 50,000 images at 32 px, STL-10's 100,000 unlabeled at 96 px
        "epoch_seconds": (50_000 if r["image_size"] <= 32 else 100_000) / r["images_per_sec"],
    }
    for name, r in runs.items()
}
(out / "summary.json").write_text(json.dumps(summary, indent=2))
print(json.dumps(summary, indent=2))
PY
