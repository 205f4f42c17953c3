"""In-memory splits: every built-in dataset keeps its images as one uint8 tensor [N, 3, S, S]."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset


class TensorSplit(Dataset):
    """A split held in memory: items are ``(uint8 image [3, S, S], int label)``, label -1 where unknown."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor | None = None):
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be uint8 [N, 3, S, S], got {images.dtype} {tuple(images.shape)}")
        if labels is None:
            labels = torch.full((len(images),), -1, dtype=torch.int64)
        if len(labels) != len(images):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images = images
        self.labels = labels.to(torch.int64)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], int(self.labels[index])


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Per-channel mean and std of uint8 images [N, 3, S, S] scaled to [0, 1].

    Computed exactly from per-channel histograms of the 256 pixel values (no float copy of the data); the std
    is floored at 1e-3 so a flat dataset still normalises to finite values.
    """
    values = torch.arange(256, dtype=torch.float64) / 255
    means, stds = [], []
    for channel in range(3):
        counts = torch.bincount(images[:, channel].reshape(-1), minlength=256).double()
        counts /= counts.sum()
        mean = (counts * values).sum()
        means.append(float(mean))
        stds.append(max(float((counts * (values - mean) ** 2).sum().sqrt()), 1e-3))
    return (means[0], means[1], means[2]), (stds[0], stds[1], stds[2])
