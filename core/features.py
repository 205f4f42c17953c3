"""Frozen-backbone features: batched extraction with a progress bar, and an on-disk cache in the run directory."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import sys
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch import nn
from torch.utils.data import DataLoader, Dataset

from simclr.atomic import atomic_path

log = logging.getLogger("simclr")

#: bump when what a cache file holds changes, so old files are not read
CACHE_VERSION = 2
FEATURES_DIR = "features"
#: a cache directory keeps the files of this many most recently used feature sets (a feature set of a checkpoint
#: that has since been overwritten is never read again; at CIFAR-10 scale each file is about 120 MB)
CACHE_KEEP = 6


@dataclass
class FeatureSet:
    """Features and labels of the labelled train and test splits."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor

    def to(self, device: torch.device | str) -> FeatureSet:
        return FeatureSet(*(t.to(device) for t in (self.train_x, self.train_y, self.test_x, self.test_y)))


def _progress_bar(enabled: bool) -> Progress | None:
    console = Console(file=sys.stderr)
    if not (enabled and console.is_terminal):
        return None
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )


def uses_channels_last(module: nn.Module) -> bool:
    """Whether ``module``'s convolution weights are channels-last (a 1x1 one is both layouts at once)."""
    return any(
        p.dim() == 4 and not p.is_contiguous() and p.is_contiguous(memory_format=torch.channels_last)
        for p in module.parameters()
    )


def extract_features(
    backbone: nn.Module,
    split: Dataset,
    mean: tuple[float, float, float],
    std: tuple[float, float, float],
    device: torch.device | str,
    batch_size: int,
    progress: bool = True,
    *,
    description: str = "features",
    num_workers: int = 0,
    keep_on_device: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``backbone`` features of every image of ``split`` (plain normalisation, no augmentation), in eval mode:
    (float32 [N, F], int64 labels [N]), on the CPU unless ``keep_on_device``. The backbone's train/eval mode is
    restored afterwards. Images are given in the backbone's memory layout (channels-last where its convolutions
    are)."""
    from simclr.views import normalize

    device = torch.device(device)
    layout = torch.channels_last if uses_channels_last(backbone) else torch.contiguous_format
    loader = DataLoader(split, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    bar = _progress_bar(progress)
    task = bar.add_task(description, total=len(loader)) if bar else None
    features, labels = [], []
    was_training = backbone.training
    backbone.eval()
    try:
        with torch.no_grad(), bar or nullcontext():
            for images, targets in loader:
                images = normalize(images.to(device, non_blocking=True), mean, std).contiguous(memory_format=layout)
                batch = backbone(images).float()
                features.append(batch if keep_on_device else batch.cpu())
                labels.append(torch.as_tensor(targets, dtype=torch.int64))
                if bar:
                    bar.advance(task)
    finally:
        backbone.train(was_training)
    if not features:
        raise ValueError("cannot extract features of an empty split")
    return torch.cat(features), torch.cat(labels).to(features[0].device)


def cache_key(parts: dict[str, Any]) -> str:
    """A short stable hash of JSON-serialisable ``parts`` (what the features depend on)."""
    text = json.dumps({"version": CACHE_VERSION, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _read(path: Path) -> FeatureSet | None:
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
        return FeatureSet(data["train_x"], data["train_y"], data["test_x"], data["test_y"])
    except Exception as exc:  # a damaged cache is recomputed, never fatal
        log.warning("ignoring unreadable feature cache %s (%s); extracting again", path, exc)
        return None


def _write(features: FeatureSet, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(vars(features), tmp)


def cached_features(cache_dir: Path | None, parts: dict[str, Any], compute: Callable[[], FeatureSet]) -> FeatureSet:
    """``compute()``'s features, read from ``cache_dir/<cache_key(parts)>.pt`` when present and written there
    otherwise. ``cache_dir=None`` turns the cache off."""
    if cache_dir is None:
        return compute()
    path = cache_dir / f"{cache_key(parts)}.pt"
    if path.is_file():
        cached = _read(path)
        if cached is not None:
            log.info("using cached features %s", path)
            with contextlib.suppress(OSError):  # its age is the time of its last use
                path.touch()
            return cached
    features = compute()
    try:
        _write(features, path)
    except OSError as exc:
        log.warning("could not write the feature cache %s: %s", path, exc.strerror)
        return features
    _prune(cache_dir, CACHE_KEEP)
    return features


def _prune(cache_dir: Path, keep: int) -> None:
    """Delete all but the ``keep`` most recently used cache files of ``cache_dir``; a file another process
    removed meanwhile is skipped, one that cannot be removed is reported and kept."""

    def last_used(file: Path) -> int:
        try:
            return file.stat().st_mtime_ns
        except OSError:
            return -1

    files = sorted(cache_dir.glob("*.pt"), key=last_used, reverse=True)
    for stale in files[keep:]:
        log.info("removing the least recently used feature cache %s", stale)
        try:
            stale.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("could not remove the old feature cache %s: %s", stale, exc.strerror)
