"""`simclr train --nproc G`: re-launch the same command under torchrun on this node."""

from __future__ import annotations

import argparse
import subprocess
import sys


def launch_torchrun(args: argparse.Namespace) -> int:
    argv = [a for a in sys.argv[1:]]
    if "--nproc" in argv:
        i = argv.index("--nproc")
        del argv[i : i + 2]
    else:
        argv = [a for a in argv if not a.startswith("--nproc=")]
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc_per_node={args.nproc}",
        "-m",
        "simclr",
        *argv,
    ]
    return subprocess.call(command)
