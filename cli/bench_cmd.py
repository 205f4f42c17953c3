"""`simclr bench [EXP.yaml] [--steps N] [--json]`."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.table import Table

from simclr import config
from simclr.cli.config_cmd import add_set_argument
from simclr.cli.output import out, print_json

DEFAULT_EXPERIMENT = "configs/quickstart.yaml"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="time views, model step, loss and full step on random images of the experiment's shape",
        description="Time, in one process and on random images of the experiment's shape (the dataset is built "
        "for its image size only; its images are not read), "
        "view generation, the model step (forward + backward + optimizer on fixed views), the loss alone and the "
        "full training step; report images/s, each part's share, the pipeline efficiency and TFLOP/s. With "
        "--set train.compile=true the compiled model step is timed beside the eager one.",
    )
    parser.add_argument(
        "experiment",
        nargs="?",
        metavar="EXP.yaml",
        help=f"experiment file (default: {DEFAULT_EXPERIMENT}, from the current folder)",
    )
    add_set_argument(parser)
    parser.add_argument("--steps", type=int, default=20, help="timed repetitions of each part (median reported)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed repetitions of each part first (at least 1)")
    parser.add_argument("--device", help="override train.device")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=run)


def _default_experiment() -> Path:
    path = Path(DEFAULT_EXPERIMENT)
    if not path.is_file():
        from simclr.errors import UserError

        raise UserError(
            f"no EXP.yaml given and there is no {DEFAULT_EXPERIMENT} here (the default, in the project's folder); "
            "give an experiment file: `simclr bench EXP.yaml`"
        )
    return path


def run(args: argparse.Namespace) -> int:
    from simclr.bench import run_bench

    if args.steps < 1 or args.warmup < 1:
        from simclr.errors import UserError

        raise UserError(
            f"--steps and --warmup must be at least 1 (got {args.steps} and {args.warmup}): a part's first call pays "
            "one-time costs (optimizer state, cuDNN autotuning, allocations) that would skew the ratios"
        )
    experiment = config.load_experiment(args.experiment or _default_experiment(), args.overrides)
    result = run_bench(experiment, args.steps, args.warmup, args.device)
    if args.json:
        print_json(result)
        return 0
    table = Table(
        title=f"{result['backbone']} · {result['loss']} · {result['image_size']} px · batch {result['batch_size']} "
        f"· {result['device_name']} · {result['precision']}"
    )
    for column in ("part", "ms (median)", "share of full step"):
        table.add_column(column)
    for name, seconds in result["seconds"].items():
        share = result["share_of_full_step"].get(name)
        table.add_row(name, f"{seconds * 1000:.1f}", f"{share:.0%}" if share is not None else "")
    out.print(table)
    out.print(
        f"images/s {result['images_per_sec']:.0f} (model only {result['model_only_images_per_sec']:.0f}) · "
        f"pipeline efficiency {result['pipeline_efficiency']:.2f} · {result['achieved_tflops']:.2f} TFLOP/s achieved"
        + (f" of {result['matmul_bf16_tflops']:.0f} (bf16 matmul)" if "matmul_bf16_tflops" in result else "")
    )
    if "compile_speedup" in result:
        out.print(
            f"torch.compile: model step {result['compile_speedup']:.2f}x the eager one, "
            f"after {result['compile_seconds']:.0f} s of compiling"
        )
    return 0
