"""`simclr train --nproc G`: re-run the same command line under torchrun, G processes on this node."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from simclr.plugin_manager import PLUGINS_CHECKED_ENV


def _is_nproc_option(token: str) -> bool:
    """``--nproc`` or an abbreviation argparse accepts for it (``--np``, ``--npr``, ...), with or without ``=N``."""
    name = token.split("=", 1)[0]
    return name.startswith("--np") and "--nproc".startswith(name)


def torchrun_command(argv: list[str], nproc: int, out: Path | None = None) -> list[str]:
    """The torchrun command running ``simclr <argv>`` in ``nproc`` local processes, without the ``--nproc``
    option (and with ``--out out`` added, so that every rank names the same run directory)."""
    rest: list[str] = []
    skip_value = False
    for token in argv:
        if skip_value:
            skip_value = False
        elif _is_nproc_option(token):
            skip_value = "=" not in token
        else:
            rest.append(token)
    if out is not None:
        rest += ["--out", str(out)]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    return [*torchrun, "-m", "simclr", *rest]


def launch_torchrun(argv: list[str], nproc: int, out: Path | None = None) -> int:
    """Run the command under torchrun and return its exit status. Ctrl-C reaches the workers directly (same
    process group): they save a checkpoint and stop, so this process only waits for them."""
    checked = {**os.environ, PLUGINS_CHECKED_ENV: "1"}  # this process warned of plugin problems already
    process = subprocess.Popen(torchrun_command(argv, nproc, out), env=checked)
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return process.wait()
    finally:
        signal.signal(signal.SIGINT, previous)
