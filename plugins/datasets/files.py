"""Finding, downloading and loading a dataset's files through torchvision, with errors that say what to do."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from torchvision.datasets.utils import check_integrity

import simclr

T = TypeVar("T")


def require_files(dataset: str, folder: Path, files: list[str], url: str, also: str = "") -> None:
    """Raise a UserError listing the files of ``dataset`` missing from ``folder`` and how to get them (``also``:
    a sentence on the files needed later, said with them)."""
    missing = [name for name in files if not (folder / name).is_file()]
    if not missing:
        return
    inside = all((folder.parent / name).is_file() for name in files)  # root given as the files' own folder
    where = (
        f"The files are in {folder.parent.resolve()} itself: set data.dataset.root to the folder above it"
        if inside
        else f"Set data.dataset.root to the folder that holds {folder.name}/, set `download: true` to fetch them"
    )
    raise simclr.UserError(
        f"{dataset} not found: expected the files {', '.join(files)} in {folder.resolve()} "
        f"(missing: {', '.join(missing)}){'; ' + also if also else ''}. {where}, or download {url} and extract it "
        f"into {folder.parent.resolve()}."
    )


def load(
    dataset: str, folder: Path, url: str, download: bool, build: Callable[[], T], checksums: list[tuple[str, str]]
) -> T:
    """Run a torchvision loader, turning its failed md5 check (or failed download) into a UserError that names
    the files of ``checksums`` (name, md5) that failed it."""
    try:
        return build()
    except RuntimeError as exc:
        if "corrupted" not in str(exc):
            raise
        failed = [name for name, md5 in checksums if not check_integrity(str(folder / name), md5)] or ["one of them"]
        raise simclr.UserError(
            f"{dataset} files in {folder.resolve()} failed torchvision's md5 check: {', '.join(failed)} "
            "(corrupted, partly downloaded, or not the original files: re-packed copies and subsets are refused). "
            f"Delete them and set `download: true`, or extract {url} there again."
        ) from None
    except OSError as exc:
        if not download:
            raise
        raise simclr.UserError(
            f"could not download {dataset} from {url}: {exc}. Download and extract it into "
            f"{folder.parent.resolve()} by hand, then set `download: false`."
        ) from None
