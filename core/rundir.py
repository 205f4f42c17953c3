"""The run directory: where a run leaves config.yaml, checkpoints/, eval.json and its callbacks' files
(metrics.jsonl, plots/, ...)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from simclr.errors import UserError

#: refuse to start a run with less free space than this in the run directory's file system
MIN_FREE_BYTES = 200 * 1024**2

CONFIG_FILE = "config.yaml"
CHECKPOINTS = "checkpoints"
LAST_CHECKPOINT = "last.pt"


def default_run_dir(name: str, root: Path = Path("runs")) -> Path:
    return root / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def is_run_dir(path: Path) -> bool:
    """Whether ``path`` is a directory a run left: it makes checkpoints/ first, then writes config.yaml."""
    return (path / CONFIG_FILE).is_file() or (path / CHECKPOINTS).is_dir()


def check_new_run_dir(path: Path, overwrite: bool) -> None:
    """A new run must not clobber an existing one, ``--overwrite`` replaces only a run directory, and the file
    system must be writable with room to spare."""
    if path.exists() and not path.is_dir():
        raise UserError(f"{path} exists and is not a directory; choose another --out directory")
    if path.exists() and any(path.iterdir()):
        if not is_run_dir(path):
            raise UserError(
                f"{path} is not empty and is not a run directory (it has no {CONFIG_FILE} or {CHECKPOINTS}/); "
                "a run never writes into or deletes such a folder: choose another --out directory"
            )
        if not overwrite and last_checkpoint(path).is_file():
            raise UserError(
                f"{path} already holds a run; pass --resume {path} to continue it, "
                "--overwrite to replace it, or --out to choose another directory"
            )
        if not overwrite:
            raise UserError(
                f"{path} already holds a run that stopped before its first checkpoint, so it cannot be resumed; "
                "pass --overwrite to start it again, or --out to choose another directory"
            )
    check_writable(path)


def check_writable(path: Path) -> None:
    parent = path
    while not parent.exists():
        parent = parent.parent
    try:
        probe = parent / f".simclr-write-probe-{time.time_ns()}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise UserError(f"cannot write in {parent}: {exc.strerror}; choose another --out directory") from None
    free = shutil.disk_usage(parent).free
    if free < MIN_FREE_BYTES:
        raise UserError(
            f"only {free / 1024**2:.0f} MiB free under {parent}; a run needs at least "
            f"{MIN_FREE_BYTES / 1024**2:.0f} MiB for checkpoints"
        )


def create_run_dir(path: Path, overwrite: bool) -> None:
    if overwrite and path.exists():
        shutil.rmtree(path)
    (path / CHECKPOINTS).mkdir(parents=True, exist_ok=True)


def last_checkpoint(run_dir: Path) -> Path:
    return run_dir / CHECKPOINTS / LAST_CHECKPOINT
