"""Files replaced in one step: written under a temporary name beside their place, then renamed over it, so a
crash or a kill at any moment leaves the old file or the new one, never a part of one."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

#: the temporary names' pattern; a folder's leftovers of killed writes match ``.*.tmp-*``
TEMP_SUFFIX = ".tmp-"


@contextmanager
def atomic_path(path: Path, durable: bool = False) -> Iterator[Path]:
    """A temporary path to write ``path``'s new content to; when the block ends without an error it replaces
    ``path``, otherwise it is removed. ``durable``: the content and the rename reach the disk before this
    returns (checkpoints), at the cost of two fsyncs."""
    tmp = path.with_name(f".{path.name}{TEMP_SUFFIX}{os.getpid()}")
    try:
        yield tmp
        if durable:
            _fsync(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    if durable:
        _fsync(path.parent)


def write_json(data: Any, path: Path) -> None:
    """``data`` as indented JSON in ``path``, replaced in one step."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
