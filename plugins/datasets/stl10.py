"""STL-10 through torchvision's loader: 100,000 unlabelled + 5,000 / 8,000 labelled images, 96x96."""

from __future__ import annotations

import functools
import os
from typing import Any, ClassVar

import numpy as np
import torch
import torchvision
from torch.utils.data import ConcatDataset, Dataset
from torchvision.datasets.utils import check_integrity

from simclr.data import LazyStatsImageDataset, TensorSplit
from simclr.plugins.datasets.files import load, require_files
from simclr.plugins.datasets.params import STL10Params

CLASS_NAMES = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]


class _STL10(torchvision.datasets.STL10):
    """torchvision's STL-10 loader, md5-checking only the files its split reads (the 2.5 GB unlabelled file only
    for pre-training: an evaluation needs the labelled files alone), once per folder and process."""

    _verified: ClassVar[set[tuple[str, ...]]] = set()

    def _check_integrity(self) -> bool:
        folder = os.path.abspath(os.path.join(self.root, self.base_folder))
        files = _checksums(self.split)
        key = (folder, *(name for name, _ in files))
        if key not in self._verified and all(check_integrity(os.path.join(folder, n), md5) for n, md5 in files):
            self._verified.add(key)
        return key in self._verified


FILES = [name for name, _ in _STL10.train_list + _STL10.test_list]
UNLABELLED_FILES = [name for name in FILES if name.startswith("unlabeled")]
LABELLED_FILES = [name for name in FILES if name not in UNLABELLED_FILES]


def _files_of(split: str) -> list[str]:
    """The files torchvision's STL-10 ``split`` reads."""
    return (UNLABELLED_FILES if "unlabeled" in split else []) + (LABELLED_FILES if split != "unlabeled" else [])


def _checksums(split: str) -> list[tuple[str, str]]:
    """(file name, md5) of each file torchvision's STL-10 ``split`` reads."""
    return [(name, md5) for name, md5 in _STL10.train_list + _STL10.test_list if name in _files_of(split)]


def _tensor_split(data: _STL10) -> TensorSplit:
    return TensorSplit(torch.from_numpy(data.data), torch.from_numpy(data.labels.astype(np.int64)))


class STL10Dataset(LazyStatsImageDataset):
    """Pre-trains on ``unlabeled`` (+ ``train``); evaluates on ``train`` / ``test``. Splits load on first use;
    mean and std come from the labelled train split."""

    image_size = 96

    def __init__(self, params: STL10Params):
        self.root = params.root
        self.folder = params.root / _STL10.base_folder
        self.pretrain_on_train = params.pretrain_on_train
        self.download = params.download
        if not params.download:
            also = f"pre-training also reads {', '.join(UNLABELLED_FILES)} (an evaluation does not)"
            require_files("STL-10", self.folder, LABELLED_FILES, _STL10.url, also)
        # loading the small test split now downloads (if asked) and checks the labelled files before anything runs
        test = self._torchvision("test", params.download)
        self.test = _tensor_split(test)
        self.class_names = list(getattr(test, "classes", CLASS_NAMES))

    def _torchvision(self, split: str, download: bool = False) -> _STL10:
        return load(
            "STL-10",
            self.folder,
            _STL10.url,
            download,
            lambda: _STL10(str(self.root), split, download=download),
            _checksums(split),
        )

    @functools.cached_property
    def train(self) -> TensorSplit:
        return _tensor_split(self._torchvision("train"))

    @functools.cached_property
    def unlabeled(self) -> TensorSplit:
        """Read when pre-training (the trainer asks for it before writing anything), never by an evaluation."""
        if not self.download:
            require_files("STL-10", self.folder, FILES, _STL10.url)
        return _tensor_split(self._torchvision("unlabeled"))

    def stats_images(self) -> torch.Tensor:
        return self.train.images

    def augment_defaults(self) -> dict[str, Any]:
        return {"jitter_strength": 1.0, "blur": True}

    def pretrain_split(self) -> Dataset:
        if self.pretrain_on_train:
            return ConcatDataset([self.unlabeled, self.train])
        return self.unlabeled

    def eval_splits(self) -> tuple[Dataset, Dataset]:
        return self.train, self.test

    def pretrain_tensor(self) -> torch.Tensor:
        if self.pretrain_on_train:
            return torch.cat([self.unlabeled.images, self.train.images])
        return self.unlabeled.images
