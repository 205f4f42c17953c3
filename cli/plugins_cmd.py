"""`simclr plugins list`."""

from __future__ import annotations

import argparse

from rich.table import Table

import simclr
from simclr.cli.output import out, print_json


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    plugins = subparsers.add_parser("plugins", help="installed plugins and their components")
    actions = plugins.add_subparsers(dest="plugins_command", required=True, metavar="COMMAND")
    listing = actions.add_parser("list", help="list every component with its plugin and distribution")
    listing.add_argument("--kind", choices=list(simclr.KINDS), help="only components of this kind")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(func=run_list)


def run_list(args: argparse.Namespace) -> int:
    components = simclr.available(args.kind)
    failures = simclr.plugin_failures()
    disabled = simclr.disabled_plugins()
    if args.json:
        print_json({"components": components, "failures": failures, "disabled": disabled})
        return 0
    table = Table(title="simclr components", show_lines=False)
    for column in ("kind", "name", "plugin", "distribution", "version", "description"):
        table.add_column(column, overflow="fold")
    for c in components:
        table.add_row(c["kind"], c["name"], c["plugin"], c["distribution"], c["version"], c["description"])
    out.print(table)
    if failures:
        broken = Table(title="plugins that failed to load", title_style="bold red")
        for column in ("plugin", "distribution", "stage", "error", "how to disable"):
            broken.add_column(column, overflow="fold")
        for f in failures:
            broken.add_row(f["plugin"], f["distribution"], f["stage"], f["error"], f["hint"])
        out.print(broken)
    if disabled:
        out.print(f"disabled by SIMCLR_DISABLE_PLUGINS: {', '.join(disabled)}")
    return 0
