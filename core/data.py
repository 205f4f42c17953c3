"""The dataset contract: what a dataset plugin's factory returns."""

from __future__ import annotations

import abc
from typing import Any

import torch
from torch.utils.data import Dataset

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ImageDataset(abc.ABC):
    """A dataset for SimCLR: an unlabelled pre-training split and (optionally) labelled evaluation splits.

    Every split is a ``torch.utils.data.Dataset`` whose items are ``(image, label)``: ``image`` a uint8 tensor
    ``[3, image_size, image_size]`` and ``label`` an int (-1 where unknown). Views and evaluation transforms are
    made from these uint8 images by the core, so every dataset feeds every augmentation backend.

    A factory that cannot find its files raises :class:`simclr.UserError` saying which files it expected where.
    """

    #: side length in pixels of every image the splits return
    image_size: int
    #: class names of the labelled splits, index = label
    class_names: list[str]
    #: per-channel mean and std used to normalise images scaled to [0, 1]
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def augment_defaults(self) -> dict[str, Any]:
        """Defaults for the ``data.augment`` fields the user left unset (e.g. CIFAR: jitter 0.5, no blur)."""
        return {}

    @abc.abstractmethod
    def pretrain_split(self) -> Dataset:
        """The images SimCLR trains on (labels not needed)."""

    def eval_splits(self) -> tuple[Dataset, Dataset] | None:
        """Labelled (train, test) splits for linear evaluation, or None when the dataset has no labels."""
        return None

    def pretrain_tensor(self) -> torch.Tensor | None:
        """The whole pre-training split as one uint8 tensor [N, 3, S, S] when it is already in memory
        (lets the engine put it on the GPU without a pass through a DataLoader); None otherwise."""
        return None
