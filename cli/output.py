"""Console output shared by the commands: results on stdout, messages and errors on stderr."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from rich.console import Console
from rich.markup import escape

#: piped output (a log file, CI) is not cut to rich's default of 80 columns unless COLUMNS says so
_PIPED_WIDTH = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 160

#: no markup: printed text (paths, config values, plugin errors) is shown as it is, "[italy]" and "[/a]" included
out = Console(soft_wrap=True, width=_PIPED_WIDTH, markup=False)
err = Console(stderr=True, soft_wrap=True, width=_PIPED_WIDTH, markup=False)


def print_json(data: Any) -> None:
    """Plain JSON on stdout (no rich markup), for scripts."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


def error(message: str) -> None:
    err.print(f"[bold red]error:[/] {escape(message)}", markup=True, highlight=False)
