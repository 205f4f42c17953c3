"""Random images for tests and benchmarks: timing that does not depend on the content."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from simclr.data import ImageDataset

from .params import SyntheticParams
from .splits import TensorSplit, channel_stats


class SyntheticDataset(ImageDataset):
    """``count`` uniform-noise images with random labels; pre-trains on all of them, evaluates on a 3/4 : 1/4
    split of the same images."""

    def __init__(self, params: SyntheticParams):
        generator = torch.Generator().manual_seed(params.seed)
        size = params.image_size
        images = torch.randint(0, 256, (params.count, 3, size, size), dtype=torch.uint8, generator=generator)
        labels = torch.randint(0, params.num_classes, (params.count,), generator=generator)
        self.image_size = size
        self.class_names = [f"class_{k}" for k in range(params.num_classes)]
        self.all = TensorSplit(images, labels)
        cut = (3 * params.count) // 4
        self.train = TensorSplit(images[:cut], labels[:cut])
        self.test = TensorSplit(images[cut:], labels[cut:])
        self.mean, self.std = channel_stats(images)

    def pretrain_split(self) -> Dataset:
        return self.all

    def eval_splits(self) -> tuple[Dataset, Dataset]:
        return self.train, self.test

    def pretrain_tensor(self) -> torch.Tensor:
        return self.all.images
