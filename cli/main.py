"""Entry point of the `simclr` command: builds the parser from the command modules and maps errors to exit codes.

Exit status: 0 success, 2 bad input (nothing written), 1 failure at run time, 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback

from simclr import __version__
from simclr.cli import bench_cmd, config_cmd, eval_cmd, export_cmd, plugins_cmd, report_cmd, sweep_cmd, train_cmd
from simclr.cli.launch import report_error
from simclr.cli.output import error
from simclr.errors import SimCLRError
from simclr.interrupts import sigterm_as_interrupt
from simclr.plugin_manager import warn_of_plugin_failures


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="simclr",
        description="SimCLR experiments from YAML files: train, evaluate, sweep, and manage plugins.",
        epilog="Set SIMCLR_DEBUG=1 to see tracebacks; SIMCLR_DISABLE_PLUGINS=a,b to disable plugins.",
    )
    parser.add_argument("--version", action="version", version=f"simclr {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in _command_modules():
        module.add_parser(subparsers)
    _remember_parsers(parser)
    return parser


def _remember_parsers(parser: argparse.ArgumentParser) -> None:
    """Give every (sub)command's parsed arguments its own parser, so that an unknown option is reported with the
    usage of the command it was given to (argparse reports it with the top-level usage)."""
    parser.set_defaults(parser=parser)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for subparser in action.choices.values():
                _remember_parsers(subparser)


#: the commands that build components: each warns of a plugin that failed to load (`plugins list` shows them)
BUILDING_COMMANDS = ("train", "eval", "sweep", "bench")


def _command_modules() -> list:
    return [train_cmd, eval_cmd, sweep_cmd, report_cmd, export_cmd, bench_cmd, plugins_cmd, config_cmd]


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        # reported by the (sub)command it was given to, or by `simclr` itself when it came before the command
        before_command = unknown[0] in argv and argv.index(unknown[0]) < argv.index(args.command)
        (parser if before_command else args.parser).error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        if args.command in BUILDING_COMMANDS:
            warn_of_plugin_failures()
        with sigterm_as_interrupt():  # a scheduler's SIGTERM stops any command as Ctrl-C does: exit 130
            return args.func(args)
    except SimCLRError as exc:
        if os.environ.get("SIMCLR_DEBUG"):
            traceback.print_exc()  # the traceback as well, with the same exit status
        if report_error(exc.exit_code, str(exc)):
            error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        if report_error(130, "interrupted"):
            error("interrupted")
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
