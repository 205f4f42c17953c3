"""The benches of `benchmarks/gpu_check.sh`, in one process: `simclr bench` on configs/quickstart.yaml with a
synthetic dataset of each shape, for resnet18 and resnet50 at 32 px (CIFAR-10) and 96 px (STL-10), plus resnet18
at 32 px with torch.compile. Writes OUT/bench-<backbone>-<size>[-compile].json and OUT/summary.json.

Without CUDA it runs the same benches (not the compiled one, which takes minutes to compile on a CPU) at tiny
sizes on the CPU: a check of the script, not a measurement.

    python benchmarks/gpu_check_benches.py OUT_DIR [--steps N]
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from pathlib import Path
from typing import Any

import torch

from simclr import config
from simclr.bench import run_bench

EXPERIMENT = Path(__file__).resolve().parent.parent / "configs" / "quickstart.yaml"


def cases(cuda: bool) -> list[tuple[str, int, int, bool]]:
    """(backbone, image size, batch, compile) of each bench."""
    shapes = [(32, 512), (96, 256)] if cuda else [(16, 8), (32, 8)]
    rows = [(backbone, size, batch, False) for backbone in ("resnet18", "resnet50") for size, batch in shapes]
    if cuda:
        rows.append(("resnet18", 32, 512, True))
    return rows


def bench(backbone: str, size: int, batch: int, compile_model: bool, steps: int, warmup: int) -> dict[str, Any]:
    experiment = config.load_experiment(
        EXPERIMENT,
        [
            f"data.dataset={{name: synthetic, image_size: {size}, count: {batch}}}",
            f"model.backbone={{name: {backbone}}}",
            f"data.batch_size={batch}",
            "train.precision=auto",
            "train.channels_last=null",
            f"train.compile={str(compile_model).lower()}",
        ],
    )
    return run_bench(experiment, steps, warmup, "cuda" if torch.cuda.is_available() else "cpu")


def summarise(result: dict[str, Any]) -> dict[str, Any]:
    keys = ("device_name", "batch_size", "image_size", "images_per_sec", "pipeline_efficiency", "achieved_tflops")
    optional = ("matmul_bf16_tflops", "compile_speedup", "compile_seconds")
    # an epoch-equivalent: CIFAR-10's 50,000 training images at 32 px, STL-10's 100,000 unlabeled ones at 96 px
    epoch_images = 50_000 if result["image_size"] <= 32 else 100_000
    return {
        **{key: result[key] for key in keys},
        **{key: result[key] for key in optional if key in result},
        "epoch_seconds": epoch_images / result["images_per_sec"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--steps", type=int, help="timed repetitions (default 30 on CUDA, 1 on the CPU)")
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    steps, warmup = (args.steps or 30, 5) if cuda else (args.steps or 1, 0)
    args.out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, dict] = {}
    for backbone, size, batch, compile_model in cases(cuda):
        name = f"bench-{backbone}-{size}" + ("-compile" if compile_model else "")
        try:  # one bench that fails (say, torch.compile) must not cost the others' figures
            result = bench(backbone, size, batch, compile_model, steps, warmup)
        except Exception as exc:
            summary[name] = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
            traceback.print_exc()
        else:
            (args.out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
            summary[name] = summarise(result)
        print(name, json.dumps(summary[name]), flush=True)
        # after each bench: a check stopped at its time limit still leaves the figures it has
        (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        if cuda:
            torch.cuda.empty_cache()
    return 1 if any("error" in entry for entry in summary.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
