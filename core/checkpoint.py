"""Checkpoints: written atomically (temp file, fsync, rename) and read with ``weights_only=True``, so a checkpoint
from someone else can hold tensors and plain data but never code."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from simclr.atomic import TEMP_SUFFIX, atomic_path
from simclr.errors import UserError
from simclr.rundir import CONFIG_FILE, last_checkpoint

FORMAT = "simclr-checkpoint"
VERSION = 1


def save_checkpoint(state: dict[str, Any], path: Path) -> Path:
    """Write ``state`` to ``path`` so that a crash at any moment leaves either the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, durable=True) as tmp, open(tmp, "wb") as handle:
        torch.save({"format": FORMAT, "version": VERSION, **state}, handle)
    return path


def remove_partial_writes(directory: Path) -> None:
    """Delete temp files that a killed :func:`save_checkpoint` left behind (never taken for checkpoints)."""
    for leftover in directory.glob(f".*{TEMP_SUFFIX}*"):
        leftover.unlink(missing_ok=True)


def refuse_a_folder_of_runs(path: Path) -> None:
    """A folder without a checkpoint of its own that holds runs (a sweep's, or runs/) given where one run is meant:
    a UserError naming some of them."""
    if last_checkpoint(path).is_file():
        return
    runs = sorted(child.name for child in path.iterdir() if last_checkpoint(child).is_file())
    if runs:
        listed = ", ".join(runs[:5]) + (f" and {len(runs) - 5} more" if len(runs) > 5 else "")
        raise UserError(
            f"{path} is not a run but holds runs ({listed}): give one of them, e.g. {path / runs[0]} "
            f"(`simclr report {path}` tabulates them all)"
        )


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu", mmap: bool = False) -> dict[str, Any]:
    """Read a checkpoint safely onto ``map_location``; any problem is a :class:`UserError` naming the file.
    ``mmap`` maps the tensors' data instead of reading it: cheap when only the plain data (epoch, config) is
    needed."""
    path = Path(path)
    if path.is_dir():
        if (path / CONFIG_FILE).is_file() and not last_checkpoint(path).is_file():
            raise UserError(
                f"{path}: the run stopped before its first checkpoint (written at the end of each epoch), so there "
                f"is nothing to resume or evaluate; start it again with `simclr train {path / CONFIG_FILE} "
                f"--out {path} --overwrite`"
            )
        refuse_a_folder_of_runs(path)
        path = last_checkpoint(path)
    if not path.is_file():
        raise UserError(f"{path}: no such checkpoint (expected a run directory or a .pt file written by simclr)")
    with open(path, "rb") as handle:
        magic = handle.read(4)
    if magic != b"PK\x03\x04" and not magic.startswith(b"\x80"):  # torch.save's zip format, or a legacy pickle
        raise UserError(f"{path}: not a checkpoint file (not written by torch.save)")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        detail = str(exc).split("WeightsUnpickler error:")[-1].strip().split(". ")[0]
        raise UserError(
            f"{path}: refused to load: the file holds objects other than tensors and plain data "
            f"(weights_only=True), so it may carry code ({detail}). Only load checkpoints written by simclr."
        ) from None
    except Exception as exc:  # a damaged file can make the unpickler raise nearly anything (IndexError, KeyError...)
        raise UserError(f"{path}: not a readable checkpoint (truncated or not a checkpoint file): {exc}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise UserError(f"{path}: not a simclr checkpoint (no '{FORMAT}' marker)")
    if state.get("version", 0) > VERSION:
        raise UserError(f"{path}: written by a newer simclr (checkpoint version {state['version']})")
    return state
