"""scikit-learn's handwritten digits (1,797 real 8x8 images, 10 classes): offline; the quickstart uses it."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from simclr.data import InMemoryImageDataset, TensorSplit
from simclr.plugins.datasets.params import DigitsParams


def digit_images(image_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """All 1,797 digits as uint8 [N, 3, S, S] (ink 0..16 scaled to 0..255, upscaled, grey in 3 channels)
    and their labels."""
    from sklearn.datasets import load_digits  # here: importing scikit-learn takes seconds

    digits = load_digits()
    small = torch.from_numpy(digits.images).float().mul(255 / 16).unsqueeze(1)
    large = F.interpolate(small, size=(image_size, image_size), mode="bilinear", align_corners=False)
    images = large.round().clamp(0, 255).to(torch.uint8).expand(-1, 3, -1, -1).contiguous()
    return images, torch.from_numpy(digits.target).long()


class DigitsDataset(InMemoryImageDataset):
    """Pre-trains on the stratified train split (75% by default); evaluates on train / test."""

    class_names = [str(digit) for digit in range(10)]

    def __init__(self, params: DigitsParams):
        self.image_size = params.image_size
        from sklearn.model_selection import train_test_split

        images, labels = digit_images(params.image_size)
        train_idx, test_idx = train_test_split(
            torch.arange(len(labels)).numpy(),
            test_size=params.test_fraction,
            stratify=labels.numpy(),
            random_state=0,
        )
        train_idx, test_idx = torch.from_numpy(train_idx), torch.from_numpy(test_idx)
        train = TensorSplit(images[train_idx], labels[train_idx])
        super().__init__(train, (train, TensorSplit(images[test_idx], labels[test_idx])))

    def augment_defaults(self) -> dict[str, Any]:
        # an 8x8 digit cropped to 8% of its area keeps about 2x2 of its pixels: crop no smaller than 25%
        return {"crop_scale": (0.25, 1.0), "jitter_strength": 0.5, "blur": False}
