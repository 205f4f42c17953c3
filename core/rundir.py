"""The run directory: where a run leaves config.yaml, checkpoints/, eval.json and its callbacks' files
(metrics.jsonl, plots/, ...). Its first file is a marker, so that ``--overwrite`` only ever deletes a folder a run
made."""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import time
from pathlib import Path
from typing import IO, Any

import yaml

from simclr.errors import UserError

log = logging.getLogger("simclr")

#: refuse to start a run with less free space than this in the run directory's file system
MIN_FREE_BYTES = 200 * 1024**2

CONFIG_FILE = "config.yaml"
CHECKPOINTS = "checkpoints"
LAST_CHECKPOINT = "last.pt"
#: how far the run has trained and what it took (epochs, steps, seconds, images), rewritten with each checkpoint
TRAINING_FILE = "training.json"
#: the run's own evaluation (its last checkpoint, as its config says), which `simclr report` and sweeps read
EVAL_FILE = "eval.json"
#: written first into every new run directory
RUN_MARKER = ".simclr-run"
#: the sections every stored experiment config has (runs made before the marker existed are known by these)
EXPERIMENT_SECTIONS = frozenset({"data", "model", "loss", "optimizer", "train"})


#: held (an exclusive flock) by the process that trains the run, so that a second one cannot train it at once
LOCK_FILE = ".simclr-lock"


def lock_run_dir(path: Path) -> IO[str] | None:
    """Take the run directory's lock, or raise a UserError naming the process that holds it. The lock lasts as long
    as the returned file stays open, and ends with its process, however that ends. None where there is no lock to
    take (no flock, as on Windows, or a file system that refuses it, which is warned of): there, nothing stops a
    second process."""
    try:
        import fcntl
    except ImportError:
        return None
    try:
        handle = open(path / LOCK_FILE, "a+")
    except OSError as exc:
        log.warning("%s: cannot create its lock file (%s); a second process could train it at once", path, exc)
        return None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise UserError(f"{path} is being trained by {holder} right now; wait for it to finish, or stop it") from None
    except OSError as exc:  # a file system without locks (some NFS, FUSE or Lustre mounts)
        handle.close()
        log.warning("%s: its file system refuses locks (%s); a second process could train it at once", path, exc)
        return None
    handle.seek(0)
    handle.truncate()
    handle.write(f"process {os.getpid()} on {socket.gethostname()}\n")
    handle.flush()
    return handle


def training_process(path: Path) -> str | None:
    """The process training the run in ``path`` right now (``process N on HOST``), or None; read-only (a shared
    lock tried and let go), so it works on a run that cannot be written."""
    try:
        import fcntl

        handle = open(path / LOCK_FILE)
    except (ImportError, OSError):
        return None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return handle.read().strip() or "another process"
        except OSError:
            return None
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None


def default_run_dir(name: str, root: Path = Path("runs")) -> Path:
    return root / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def is_run_dir(path: Path) -> bool:
    """Whether ``path`` is a directory a run made: it holds the run marker, or (a run made before the marker
    existed) both a checkpoints/ folder and a config.yaml that is a stored experiment. An experiment file saved as
    config.yaml, a checkpoints/ folder or another tool's config.yaml alone does not make a run directory."""
    if (path / RUN_MARKER).is_file():
        return True
    if not (path / CHECKPOINTS).is_dir():
        return False
    try:
        stored = yaml.safe_load((path / CONFIG_FILE).read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False
    return isinstance(stored, dict) and EXPERIMENT_SECTIONS <= stored.keys()


def is_unused(path: Path) -> bool:
    """Nothing in ``path`` but what a run directory starts with: its marker and empty folders (safe to reuse)."""
    return all(
        (p.name in (RUN_MARKER, LOCK_FILE) and p.is_file()) or (p.is_dir() and not any(p.iterdir()))
        for p in path.iterdir()
    )


def check_new_run_dir(path: Path, overwrite: bool) -> None:
    """A new run must not clobber an existing one, ``--overwrite`` replaces only a run directory, and the file
    system must be writable with room to spare."""
    if path.exists() and not path.is_dir():
        raise UserError(f"{path} exists and is not a directory; choose another --out directory")
    if path.exists() and not is_unused(path):
        if not is_run_dir(path):
            raise UserError(
                f"{path} is not empty and is not a run directory (it has no {RUN_MARKER}); "
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
    """Make the run directory; ``overwrite``: empty an existing one first, all but its lock file, which the caller
    holds while it replaces the run."""
    if overwrite and path.exists():
        for child in path.iterdir():
            if child.name == LOCK_FILE:
                continue
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    path.mkdir(parents=True, exist_ok=True)
    (path / RUN_MARKER).write_text("made by simclr train; marks this folder as a run directory\n")
    (path / CHECKPOINTS).mkdir(exist_ok=True)


def last_checkpoint(run_dir: Path) -> Path:
    return run_dir / CHECKPOINTS / LAST_CHECKPOINT


def read_json_object(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``; None where there is none: no file, an unreadable one, or one that is not a
    JSON object (damaged, or not simclr's)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # ValueError: not JSON, or not UTF-8
        return None
    return data if isinstance(data, dict) else None


def run_dir_config(run_dir: Path) -> dict[str, Any]:
    """The resolved config a run directory was started with (or last resumed with)."""
    path = run_dir / CONFIG_FILE
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        raise UserError(
            f"{run_dir} is not a run directory (no readable {CONFIG_FILE}); give the run's folder"
        ) from None
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML ({exc}); the run directory is damaged") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: not an experiment (expected a mapping of sections)")
    return data
