"""CIFAR-10 through torchvision's loader: 50,000 train / 10,000 test images, 32x32, 10 classes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torchvision
from torch.utils.data import Dataset

from simclr.data import ImageDataset

from .files import load, require_files
from .params import CIFAR10Params
from .splits import TensorSplit, channel_stats

CIFAR10 = torchvision.datasets.CIFAR10
FILES = [name for name, _ in CIFAR10.train_list + CIFAR10.test_list] + [CIFAR10.meta["filename"]]


def _split(root: Path, train: bool, download: bool) -> tuple[TensorSplit, list[str]]:
    folder = root / CIFAR10.base_folder
    data = load("CIFAR-10", folder, CIFAR10.url, download, lambda: CIFAR10(str(root), train, download=download))
    images = torch.from_numpy(data.data).permute(0, 3, 1, 2).contiguous()
    return TensorSplit(images, torch.tensor(data.targets)), list(data.classes)


class CIFAR10Dataset(ImageDataset):
    """Pre-trains on the 50,000 training images; evaluates on train / test."""

    image_size = 32

    def __init__(self, params: CIFAR10Params):
        if not params.download:
            require_files("CIFAR-10", params.root / CIFAR10.base_folder, FILES, CIFAR10.url)
        self.train, self.class_names = _split(params.root, True, params.download)
        self.test, _ = _split(params.root, False, False)
        self.mean, self.std = channel_stats(self.train.images)

    def augment_defaults(self) -> dict[str, Any]:
        return {"jitter_strength": 0.5, "blur": False}

    def pretrain_split(self) -> Dataset:
        return self.train

    def eval_splits(self) -> tuple[Dataset, Dataset]:
        return self.train, self.test

    def pretrain_tensor(self) -> torch.Tensor:
        return self.train.images
