"""`simclr report DIR`: the results table of every evaluated run under DIR (markdown, CSV and a bar chart)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from simclr.cli.output import err, out


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="results table of the evaluated runs under a folder",
        description="Find every eval.json under DIR (recursively) and write DIR/report.md, DIR/report.csv and "
        "DIR/report.png (linear top-1 per run, random-init baseline and reported number as markers). Accuracies "
        "in percent; train time and images/s are those of the run's training.json (every part of a resumed run).",
    )
    parser.add_argument("directory", type=Path, metavar="DIR", help="a sweep directory, or any folder of runs")
    parser.set_defaults(func=run)


def print_table(rows: list[dict[str, Any]]) -> None:
    from simclr.report import report_notes, table

    headers, cells = table(rows)
    view = Table(title="accuracy (%) of frozen features", title_justify="left")
    text_columns = ("run", "dataset", "backbone", "loss", "optimizer", "probed")
    for header in headers:
        view.add_column(header, justify="left" if header in text_columns else "right")
    for line in cells:
        view.add_row(*line)
    natural = Measurement.get(out, out.options.update(max_width=10_000), view).maximum
    # wrapping cells helps no one
    wide = Console(file=out.file, width=max(out.width, natural), soft_wrap=True, markup=False)
    wide.print(view)
    for note in report_notes(rows):
        err.print(note, highlight=False)


def run(args: argparse.Namespace) -> int:
    from simclr.report import collect, write_report

    rows = collect(args.directory)
    files = write_report(args.directory, rows)
    print_table(rows)
    err.print(f"wrote {files.markdown}, {files.csv} and {files.png}", highlight=False)
    return 0
