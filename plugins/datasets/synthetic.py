"""Random images for tests and benchmarks: timing that does not depend on the content."""

from __future__ import annotations

import torch

from simclr.data import InMemoryImageDataset, TensorSplit
from simclr.plugins.datasets.params import SyntheticParams


class SyntheticDataset(InMemoryImageDataset):
    """``count`` uniform-noise images with random labels; pre-trains on all of them, evaluates on a 3/4 : 1/4
    split of the same images."""

    def __init__(self, params: SyntheticParams):
        generator = torch.Generator().manual_seed(params.seed)
        size = params.image_size
        images = torch.randint(0, 256, (params.count, 3, size, size), dtype=torch.uint8, generator=generator)
        labels = torch.randint(0, params.num_classes, (params.count,), generator=generator)
        self.image_size = size
        self.class_names = [f"class_{k}" for k in range(params.num_classes)]
        cut = (3 * params.count) // 4
        train, test = TensorSplit(images[:cut], labels[:cut]), TensorSplit(images[cut:], labels[cut:])
        super().__init__(TensorSplit(images, labels), (train, test))
