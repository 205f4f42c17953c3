"""`simclr train EXP.yaml [--set ...] [--out DIR] [--resume DIR] [--overwrite]`."""

from __future__ import annotations

import argparse
from pathlib import Path

from simclr import config
from simclr.cli.config_cmd import add_set_argument
from simclr.cli.output import err
from simclr.errors import UserError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="pre-train a model from an experiment file",
        description="Validate the experiment, train, and leave a run directory with config.yaml, metrics.jsonl, "
        "checkpoints/ and plots/. With --resume, the experiment stored in the run directory is continued.",
    )
    parser.add_argument("experiment", nargs="?", metavar="EXP.yaml", help="experiment file (omit with --resume)")
    add_set_argument(parser)
    parser.add_argument("--out", type=Path, help="run directory (default: runs/<name>-<timestamp>)")
    parser.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue the run in RUN_DIR")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    parser.add_argument("--device", help="override train.device (auto, cpu, cuda, cuda:N, mps)")
    parser.add_argument("--strict", action="store_true", help="stop when a plugin's lifecycle hook raises")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars or step log lines")
    parser.add_argument("--nproc", type=int, metavar="G", help="launch G processes on this node with torchrun")
    parser.set_defaults(func=run)


def load(args: argparse.Namespace) -> tuple[config.Experiment, Path]:
    """The experiment and run directory the arguments ask for (bad input raises before anything is written)."""
    from simclr.checkpoint import refuse_a_folder_of_runs
    from simclr.rundir import run_dir_config

    if args.resume:
        if args.experiment or args.out:
            raise UserError("--resume RUN_DIR continues the experiment stored there: give no EXP.yaml and no --out")
        if args.resume.is_dir():
            refuse_a_folder_of_runs(args.resume)
        stored = run_dir_config(args.resume)
        experiment = config.experiment_from_dict(
            stored, args.overrides, src=str(args.resume / "config.yaml"), stored=True
        )
        return experiment, args.resume
    if not args.experiment:
        raise UserError("give an experiment file (simclr train EXP.yaml) or --resume RUN_DIR")
    experiment = config.load_experiment(args.experiment, args.overrides)
    if args.out:
        return experiment, args.out
    from simclr.rundir import default_run_dir

    return experiment, default_run_dir(experiment.name or Path(args.experiment).stem)


def run(args: argparse.Namespace) -> int:
    if args.nproc is not None:
        return launch(args)
    from simclr.trainer import Trainer

    experiment, run_dir = load(args)
    trainer = Trainer(
        experiment,
        run_dir,
        resume=bool(args.resume),
        overwrite=args.overwrite,
        strict_plugins=args.strict,
        device=args.device,
        show_progress=not args.no_progress,
    )
    record = trainer.fit()
    if not trainer.runtime.is_main:
        return 0
    err.print(f"run directory: {run_dir}", highlight=False)
    if record:
        err.print(f"final epoch loss {record.get('loss', float('nan')):.4f}", highlight=False)
    if not experiment.eval.after_train:
        _warn_of_a_stale_evaluation(run_dir, trainer.epoch)
        return 0
    from simclr.cli.eval_cmd import evaluate_and_report
    from simclr.runtime import free_memory

    built = (experiment.data.dataset.model_dump(mode="json"), trainer.dataset)
    device = trainer.runtime.device
    del trainer  # the model, optimizer state and device-resident images are not needed to evaluate
    free_memory(device)
    evaluate_and_report(run_dir, device=args.device, built=built)
    return 0


def _warn_of_a_stale_evaluation(run_dir: Path, epoch: int) -> None:
    """A resume that trained on leaves the run's eval.json describing an earlier epoch."""
    from simclr.rundir import EVAL_FILE, read_json_object

    evaluated = (read_json_object(run_dir / EVAL_FILE) or {}).get("epoch")
    if isinstance(evaluated, int) and evaluated < epoch:
        err.print(
            f"{run_dir / EVAL_FILE} is the evaluation of epoch {evaluated}, not of the {epoch} trained now; "
            f"update it with `simclr eval {run_dir}`",
            highlight=False,
        )


def launch(args: argparse.Namespace) -> int:
    """``--nproc G``: check the input here, then re-run this command line (``sys.argv``) under torchrun."""
    import os
    import sys

    from simclr.cli.launch import launch_torchrun

    if "LOCAL_RANK" in os.environ:
        raise UserError("--nproc starts torchrun itself; when launching with torchrun, leave --nproc out")
    if args.nproc < 1:
        raise UserError(f"--nproc must be at least 1, got {args.nproc}")
    _, run_dir = load(args)
    return launch_torchrun(sys.argv[1:], args.nproc, None if args.resume or args.out else run_dir)
