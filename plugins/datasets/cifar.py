"""CIFAR-10 through torchvision's loader: 50,000 train / 10,000 test images, 32x32, 10 classes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torchvision

from simclr.data import InMemoryImageDataset, TensorSplit
from simclr.plugins.datasets.files import load, require_files
from simclr.plugins.datasets.params import CIFAR10Params

CIFAR10 = torchvision.datasets.CIFAR10
FILES = [name for name, _ in CIFAR10.train_list + CIFAR10.test_list] + [CIFAR10.meta["filename"]]


def _split(root: Path, train: bool, download: bool) -> tuple[TensorSplit, list[str]]:
    folder = root / CIFAR10.base_folder
    checksums = [*CIFAR10.train_list, *CIFAR10.test_list, (CIFAR10.meta["filename"], CIFAR10.meta["md5"])]
    data = load(
        "CIFAR-10", folder, CIFAR10.url, download, lambda: CIFAR10(str(root), train, download=download), checksums
    )
    images = torch.from_numpy(data.data).permute(0, 3, 1, 2).contiguous()
    return TensorSplit(images, torch.tensor(data.targets)), list(data.classes)


class CIFAR10Dataset(InMemoryImageDataset):
    """Pre-trains on the 50,000 training images; evaluates on train / test."""

    image_size = 32

    def __init__(self, params: CIFAR10Params):
        if not params.download:
            require_files("CIFAR-10", params.root / CIFAR10.base_folder, FILES, CIFAR10.url)
        train, self.class_names = _split(params.root, True, params.download)
        test, _ = _split(params.root, False, False)
        super().__init__(train, (train, test))

    def augment_defaults(self) -> dict[str, Any]:
        return {"jitter_strength": 0.5, "blur": False}
