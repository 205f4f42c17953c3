"""`simclr config validate|show|schema`."""

from __future__ import annotations

import argparse

from simclr import config
from simclr.cli.output import err, out, print_json


def add_set_argument(parser: argparse.ArgumentParser, example: str = "loss.temperature=0.1") -> None:
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY.PATH=VALUE",
        help=f"override a config value (repeatable), e.g. --set {example}",
    )


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("config", help="validate, show or describe experiment files")
    actions = parser.add_subparsers(dest="config_command", required=True, metavar="COMMAND")
    validate = actions.add_parser("validate", help="check experiment files (exit 0 if valid, 2 if not)")
    validate.add_argument("experiments", nargs="+", metavar="EXP.yaml")
    add_set_argument(validate)
    validate.set_defaults(func=run_validate)
    show = actions.add_parser("show", help="print the resolved experiment with every default filled in")
    show.add_argument("experiment", metavar="EXP.yaml")
    add_set_argument(show)
    show.add_argument("--json", action="store_true", help="print JSON instead of YAML")
    show.set_defaults(func=run_show)
    schema = actions.add_parser("schema", help="JSON Schema of experiment files (for editors' YAML support)")
    schema.set_defaults(func=run_schema)


def run_validate(args: argparse.Namespace) -> int:
    from simclr.errors import ConfigError

    failed: list[ConfigError] = []
    for path in args.experiments:
        try:
            config.load_experiment(path, args.overrides)
            err.print(f"{path}: valid", highlight=False)
        except ConfigError as exc:
            failed.append(exc)
    if failed:
        raise ConfigError([issue for exc in failed for issue in exc.issues])
    return 0


def run_show(args: argparse.Namespace) -> int:
    experiment = config.load_experiment(args.experiment, args.overrides)
    if args.json:
        print_json(config.resolved_dict(experiment))
    else:
        out.print(config.dump_yaml(experiment), end="", markup=False, highlight=False)
    return 0


def run_schema(args: argparse.Namespace) -> int:
    print_json(config.json_schema())
    return 0
