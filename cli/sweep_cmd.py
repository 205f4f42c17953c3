"""`simclr sweep SWEEP.yaml [--set ...] [--out DIR] [--only NAME ...] [--parallel-gpus N] [--dry-run]`."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from rich.table import Table

from simclr.cli.config_cmd import add_set_argument
from simclr.cli.output import err, out
from simclr.errors import SimCLRError, UserError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sweep",
        help="run every combination of a sweep file, then write the report",
        description="Validate every combination of the sweep file first (any problem: exit 2, nothing run), then "
        "train and evaluate each into <sweep dir>/<run name>/. Run it again to continue an interrupted sweep: "
        "finished runs are skipped, an interrupted one resumes from its checkpoint, failed ones are skipped "
        "(remove their directory to retry). Ends with report.md/.csv/.png in the sweep directory.",
    )
    parser.add_argument("sweep", type=Path, metavar="SWEEP.yaml", help="sweep file")
    add_set_argument(parser)
    parser.add_argument("--out", type=Path, help="sweep directory (default: the file's out:, else runs/<stem>)")
    parser.add_argument("--only", nargs="+", default=[], metavar="NAME", help="run only these combinations")
    parser.add_argument("--device", help="override train.device and the evaluation device (sequential runs only)")
    parser.add_argument(
        "--parallel-gpus",
        type=int,
        default=0,
        metavar="N",
        help="run up to N combinations at once, one per visible GPU, each in its own process",
    )
    parser.add_argument("--dry-run", action="store_true", help="validate and list the combinations; run nothing")
    parser.add_argument("--no-report", action="store_true", help="do not write the report at the end")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars or step log lines")
    parser.set_defaults(func=run)


def _plan(sweep, combos) -> Table:
    from simclr.sweep import run_state

    table = Table(title=f"{sweep.path}: {len(combos)} runs into {sweep.out}", title_justify="left")
    for column in ("#", "run", "state", "experiment", "overrides"):
        table.add_column(column)
    for combo in combos:
        state = run_state(combo, sweep.evaluate)
        table.add_row(str(combo.index + 1), combo.name, state, str(combo.experiment_file), " ".join(combo.overrides))
    return table


def run(args: argparse.Namespace) -> int:
    from simclr.sweep import (
        check_run_dirs,
        child_command,
        load_sweep,
        refresh_records,
        run_parallel,
        run_sequential,
        visible_gpus,
    )

    if args.parallel_gpus < 0:
        raise UserError("--parallel-gpus must be >= 0 (0, the default: one run after another)")
    if args.parallel_gpus and args.device:
        raise UserError("--device cannot be combined with --parallel-gpus: each process gets one GPU")
    if args.device:  # whether it is here is for the runs to find out: a sweep for a GPU validates without one
        from simclr.runtime import check_device_name

        check_device_name(args.device, "--device")
    sweep = load_sweep(args.sweep, args.overrides, args.out)
    sweep.command = _command_line(args)
    combos = sweep.select(args.only)
    check_run_dirs(sweep, combos)
    if args.dry_run:
        out.print(_plan(sweep, combos))
        return 0
    refresh_records(sweep)
    gpus = visible_gpus()[: args.parallel_gpus] if args.parallel_gpus else []
    if args.parallel_gpus and len(gpus) < 2:
        seen = "no GPU is visible" if not gpus else "only one GPU is visible"
        err.print(f"--parallel-gpus {args.parallel_gpus}: {seen}; running the combinations one after another")
    if len(gpus) >= 2:
        states = run_parallel(sweep, combos, gpus, lambda combo: child_command(sweep, combo, args.overrides))
    else:
        states = run_sequential(sweep, combos, args.device, show_progress=not args.no_progress)
    if not args.no_report:
        _report(sweep.out)
    failed = [name for name, state in states.items() if state != "finished"]
    if failed:
        raise SimCLRError(f"{len(failed)} of {len(states)} runs did not finish: {', '.join(failed)}")
    return 0


def _command_line(args: argparse.Namespace) -> str:
    """The `simclr sweep` command ``args`` came from, with the options that decide what it runs and where."""
    words = ["simclr", "sweep", str(args.sweep)]
    words += ["--out", str(args.out)] if args.out else []
    for text in args.overrides:
        words += ["--set", text]
    words += ["--only", *args.only] if args.only else []
    words += ["--device", args.device] if args.device else []
    words += ["--parallel-gpus", str(args.parallel_gpus)] if args.parallel_gpus else []
    return shlex.join(words)


def _report(directory: Path) -> None:
    from simclr.cli.report_cmd import print_table
    from simclr.report import collect, write_report

    try:
        rows = collect(directory)
    except UserError as exc:
        err.print(f"no report: {exc}", highlight=False)
        return
    files = write_report(directory, rows)
    print_table(rows)
    err.print(f"report: {files.markdown}, {files.csv}, {files.png}", highlight=False)
